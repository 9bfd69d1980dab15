import { describe, expect, it } from 'vitest'
import { TokenBucket } from './token-bucket.ts'

describe('TokenBucket (manual clock)', () => {
  it('starts full, refuses what it does not hold without taking anything, and refills at its rate', () => {
    const bucket = new TokenBucket(100, 50, 1000)
    expect(bucket.take(50, 1000)).toBe(true)
    expect(bucket.take(1, 1000)).toBe(false)
    expect(bucket.available(1000)).toBe(0)
    expect(bucket.take(10, 1050)).toBe(false) // 5 tokens after 50 ms: not enough, and none taken
    expect(bucket.available(1050)).toBe(5)
    expect(bucket.take(10, 1100)).toBe(true)
  })

  it('never holds more than its burst, however long it sat idle', () => {
    const bucket = new TokenBucket(100, 50, 0)
    bucket.take(50, 0)
    expect(bucket.available(3_600_000)).toBe(50)
  })

  it('ignores a clock that goes backwards', () => {
    const bucket = new TokenBucket(100, 50, 1000)
    bucket.take(50, 1000)
    expect(bucket.available(500)).toBe(0)
    expect(bucket.available(1100)).toBe(10)
  })

  it('rejects a rate or burst that is not positive', () => {
    expect(() => new TokenBucket(0, 10, 0)).toThrow(RangeError)
    expect(() => new TokenBucket(10, -1, 0)).toThrow(RangeError)
  })
})
