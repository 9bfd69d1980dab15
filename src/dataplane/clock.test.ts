import { afterEach, describe, expect, it, vi } from 'vitest'
import { systemClock } from './clock.ts'

afterEach(() => {
  vi.restoreAllMocks()
  vi.useRealTimers()
})

describe('systemClock', () => {
  it('fires at its instant, never before', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const at = performance.now() + 25_000.5
    let firedAt: number | undefined
    systemClock.setTimer(at, () => (firedAt = performance.now()))
    vi.advanceTimersByTime(25_000)
    expect(firedAt).toBeUndefined()
    vi.advanceTimersByTime(1)
    expect(firedAt).toBeGreaterThanOrEqual(at)
  })

  it('waits out an instant beyond what setTimeout can hold in long sleeps, not in 1 ms retries', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const arm = vi.spyOn(globalThis, 'setTimeout')
    const at = performance.now() + 2 ** 31 + 5000
    let fired = 0
    systemClock.setTimer(at, () => fired++)
    vi.advanceTimersByTime(100)
    expect(arm.mock.calls.length).toBe(1)
    vi.advanceTimersByTime(2 ** 31 + 4900)
    expect(fired).toBe(1)
    expect(arm.mock.calls.length).toBe(2)
  })

  it('does not fire once cleared', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    let fired = 0
    systemClock.setTimer(performance.now() + 10, () => fired++).clear()
    vi.advanceTimersByTime(100)
    expect(fired).toBe(0)
  })
})
