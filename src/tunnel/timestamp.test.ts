import { describe, expect, it } from 'vitest'
import { toHex } from '../crypto/index.ts'
import { encodeTai64n, isAfter, Tai64nClock } from './timestamp.ts'

describe('TAI64N', () => {
  it('encodes 2^62 + 10 + Unix seconds big-endian, then nanoseconds big-endian', () => {
    expect(toHex(encodeTai64n(0n, 0n))).toBe('400000000000000a00000000')
    expect(toHex(encodeTai64n(1_700_000_000n, 999_999_999n))).toBe('400000006553f10a3b9ac9ff')
  })

  it('maps now + wall clock offset to wall time', () => {
    const clock = new Tai64nClock(1_700_000_000_000)
    expect(toHex(clock.stamp(1_500.25))).toBe(toHex(encodeTai64n(1_700_000_001n, 500_250_000n)))
  })

  it('never repeats or goes back, even within one millisecond or when now goes backwards', () => {
    const clock = new Tai64nClock(1_700_000_000_000)
    const first = clock.stamp(1000)
    const second = clock.stamp(1000)
    const third = clock.stamp(999)
    expect(isAfter(second, first)).toBe(true)
    expect(isAfter(third, second)).toBe(true)
    expect(isAfter(first, first)).toBe(false)
    expect(isAfter(first, undefined)).toBe(true)
  })

  it('keeps sub-millisecond precision of now', () => {
    const clock = new Tai64nClock(0)
    expect(toHex(clock.stamp(1234.5))).toBe(toHex(encodeTai64n(1n, 234_500_000n)))
  })
})

describe('TAI64N without an explicit offset', () => {
  it('anchors the first stamp to the wall clock whatever the monotonic origin', () => {
    const clock = new Tai64nClock()
    const before = BigInt(Math.floor(Date.now() / 1000))
    const stamp = clock.stamp(42) // e.g. a test clock starting near zero
    const seconds = new DataView(stamp.buffer).getBigUint64(0) - (1n << 62n) - 10n
    expect(seconds >= before && seconds <= before + 1n).toBe(true)
    expect(isAfter(clock.stamp(1042), stamp)).toBe(true)
  })
})
