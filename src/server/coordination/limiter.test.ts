import { describe, expect, it } from 'vitest'
import { KeyedLimiter, TokenBucket } from './limiter.ts'

describe('TokenBucket', () => {
  it('allows a burst, then one per interval, and says when the next one is allowed', () => {
    const bucket = new TokenBucket(3, 1000, 0)
    expect([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([true, true, true, false])
    expect(bucket.readyAt(0)).toBe(1000)
    expect(bucket.take(999)).toBe(false)
    expect(bucket.readyAt(999)).toBe(1000)
    expect(bucket.take(1000)).toBe(true)
    expect(bucket.take(1000)).toBe(false)
    // Idle time refills up to the burst, never past it.
    expect(bucket.available(100_000)).toBe(3)
    expect(bucket.full(100_000)).toBe(true)
  })

  it('holds to its rate over many fractional refills: take agrees with readyAt despite float error', () => {
    const bucket = new TokenBucket(40, 250, 0)
    let taken = 0
    // Ten callers every 20 ms for 8 s: the burst plus one per 250 ms, no more.
    for (let t = 0; t < 8000; t += 20) {
      for (let i = 0; i < 10; i++) {
        if (bucket.readyAt(t) <= t) {
          expect(bucket.take(t)).toBe(true)
          taken++
        }
      }
    }
    expect(taken).toBeLessThanOrEqual(40 + 8000 / 250)
    expect(taken).toBeGreaterThanOrEqual(40 + 8000 / 250 - 1)
  })

  it('does not refill when the clock goes backwards', () => {
    const bucket = new TokenBucket(1, 1000, 5000)
    expect(bucket.take(5000)).toBe(true)
    expect(bucket.take(4000)).toBe(false)
    expect(bucket.readyAt(5000)).toBe(6000)
  })

  it('refuses a nonsensical configuration', () => {
    expect(() => new TokenBucket(0, 1000, 0)).toThrow(RangeError)
    expect(() => new TokenBucket(1, 0, 0)).toThrow(RangeError)
  })
})

describe('KeyedLimiter', () => {
  it('keeps one bucket per key and forgets the ones that are full again', () => {
    const limiter = new KeyedLimiter<string>(2, 500)
    expect([limiter.take('a', 0), limiter.take('a', 0), limiter.take('a', 0)]).toEqual([true, true, false])
    expect(limiter.take('b', 0)).toBe(true)
    expect(limiter.readyAt('a', 0)).toBe(500)
    expect(limiter.readyAt('never-seen', 0)).toBe(0)
    expect(limiter.size).toBe(2)
    limiter.prune(600) // b is full again at 500, a is not (one token back)
    expect(limiter.size).toBe(1)
    limiter.prune(1000)
    expect(limiter.size).toBe(0)
  })
})
