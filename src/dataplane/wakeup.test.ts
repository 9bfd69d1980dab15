import { describe, expect, it } from 'vitest'
import { MAX_IDLE_SLEEP, nextWakeup } from './wakeup.ts'

describe('nextWakeup', () => {
  it('is 5 s', () => {
    expect(MAX_IDLE_SLEEP).toBe(5000)
  })

  it('wakes on the idle floor when nothing is scheduled (never forever)', () => {
    expect(nextWakeup(undefined, 1000, MAX_IDLE_SLEEP)).toBe(6000)
    expect(nextWakeup(undefined, 1000)).toBe(6000)
  })

  it('honours a near deadline exactly', () => {
    expect(nextWakeup(1050, 1000, MAX_IDLE_SLEEP)).toBe(1050)
  })

  it('honours a far deadline exactly, not clamped to the floor', () => {
    expect(nextWakeup(1000 + 3_600_000, 1000, MAX_IDLE_SLEEP)).toBe(1000 + 3_600_000)
  })

  it('sleeps straight to a 25 s keepalive: one wake-up, well past the floor', () => {
    const now = 7_777
    const woke = nextWakeup(now + 25_000, now, MAX_IDLE_SLEEP)
    expect(woke).toBe(now + 25_000)
    expect(woke).toBeGreaterThan(now + MAX_IDLE_SLEEP)
  })

  it('never returns now or earlier when idle, whatever the base instant', () => {
    for (const now of [0, 1, 250, 5_000, 60_000, 1e12]) {
      const woke = nextWakeup(undefined, now, MAX_IDLE_SLEEP)
      expect(woke).toBeGreaterThan(now)
      expect(woke).toBe(now + MAX_IDLE_SLEEP)
    }
  })

  it('refuses a non-positive idle floor, which would spin', () => {
    expect(() => nextWakeup(undefined, 0, 0)).toThrow(RangeError)
    expect(() => nextWakeup(undefined, 0, Number.NaN)).toThrow(RangeError)
  })
})
