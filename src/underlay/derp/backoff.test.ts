import { describe, expect, it } from 'vitest'
import { ReconnectBackoff } from './backoff.ts'

describe('ReconnectBackoff', () => {
  it('grows exponentially with full jitter up to the cap', () => {
    const backoff = new ReconnectBackoff({ baseMs: 100, capMs: 30_000, random: () => 0.999999 })
    const delays = Array.from({ length: 12 }, (_, i) => backoff.nextDelay(i))
    expect(delays.slice(0, 4)).toEqual([99, 199, 399, 799])
    expect(Math.max(...delays)).toBe(29_999)
    const zero = new ReconnectBackoff({ random: () => 0 })
    expect(zero.nextDelay(0)).toBe(0)
  })

  it('resets only after a connection stayed up for the healthy minute', () => {
    const backoff = new ReconnectBackoff({ baseMs: 100, random: () => 0.5 })
    for (let i = 0; i < 5; i++) backoff.nextDelay(0)
    backoff.connected(1000)
    expect(backoff.nextDelay(30_000)).toBe(1600) // still escalating: only 29 s up
    backoff.connected(40_000)
    expect(backoff.nextDelay(100_000)).toBe(50) // 60 s up: back to the first step
  })

  it('honours a Restarting frame, then falls back to backoff after tryFor', () => {
    const backoff = new ReconnectBackoff({ baseMs: 100, random: () => 0.5 })
    backoff.connected(0)
    backoff.restarting(2000, 10_000, 1000)
    expect(backoff.nextDelay(1000)).toBe(2000)
    expect(backoff.nextDelay(3100)).toBe(500)
    expect(backoff.nextDelay(20_000)).toBe(50)
  })
})
