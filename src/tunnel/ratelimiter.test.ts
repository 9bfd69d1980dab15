import { describe, expect, it } from 'vitest'
import { HANDSHAKE_BURST, HANDSHAKES_PER_SECOND, HandshakeRateLimiter } from './ratelimiter.ts'

describe('HandshakeRateLimiter', () => {
  it('allows a burst of 5 from one source, then 20 a second', () => {
    const limiter = new HandshakeRateLimiter()
    let allowed = 0
    for (let i = 0; i < 100; i++) if (limiter.allow('a', 1000)) allowed++
    expect(allowed).toBe(HANDSHAKE_BURST)
    allowed = 0
    // 10 s of a flood at 1000 per second: the sustained rate is what gets through.
    for (let t = 1001; t <= 11_000; t++) if (limiter.allow('a', t)) allowed++
    expect(allowed).toBe(10 * HANDSHAKES_PER_SECOND)
  })

  it('keeps sources apart: one flooder does not use up another source', () => {
    const limiter = new HandshakeRateLimiter()
    for (let i = 0; i < 1000; i++) limiter.allow('flooder', 5000)
    expect(limiter.allow('flooder', 5000)).toBe(false)
    expect(limiter.allow('honest', 5000)).toBe(true)
  })

  it('refills to at most the burst however long a source was quiet', () => {
    const limiter = new HandshakeRateLimiter()
    limiter.allow('a', 0)
    let allowed = 0
    for (let i = 0; i < 100; i++) if (limiter.allow('a', 500)) allowed++ // 0.5 s idle: still under a second, entry kept
    expect(allowed).toBe(HANDSHAKE_BURST)
  })

  it('forgets sources not seen for a second, and refuses new ones past its table size', () => {
    const limiter = new HandshakeRateLimiter(3)
    for (const s of ['a', 'b', 'c']) expect(limiter.allow(s, 0)).toBe(true)
    expect(limiter.allow('d', 10)).toBe(false)
    expect(limiter.size).toBe(3)
    expect(limiter.allow('d', 1500)).toBe(true)
    expect(limiter.size).toBe(1)
  })
})
