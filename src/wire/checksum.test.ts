import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checksumWordSum, finishChecksum, internetChecksum, onesComplementSum, onesComplementSumOf, pseudoHeaderSum, transportChecksum } from './checksum.ts'
import { hex } from './testing.ts'

describe('Internet checksum (RFC 1071)', () => {
  it('reproduces the RFC 1071 §3 worked example', () => {
    // 0001 + f203 + f4f5 + f6f7 = 2ddf0, folded ddf2, complemented 220d
    const data = hex('0001f203f4f5f6f7')
    expect(onesComplementSum(data)).toBe(0x2ddf0)
    expect(internetChecksum(data)).toBe(0x220d)
  })

  it('pads an odd trailing byte with zero', () => {
    expect(internetChecksum(hex('0001f203f4f5f6f7ab'))).toBe(internetChecksum(hex('0001f203f4f5f6f7ab00')))
  })

  it('computes the IPv4 header checksum of the classic example header as b861', () => {
    expect(internetChecksum(hex('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7'))).toBe(0xb861)
  })

  it('is zero over data that includes its own checksum', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (body) => {
        const data = new Uint8Array(body.length + (body.length & 1) + 2)
        data.set(body)
        const sum = internetChecksum(data)
        data[data.length - 2] = sum >> 8
        data[data.length - 1] = sum & 0xff
        expect(internetChecksum(data)).toBe(0)
      }),
    )
  })

  it('accumulates across even-length chunks like one pass', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (data, cut) => {
        const at = (cut % (data.length + 1)) & ~1
        const chained = onesComplementSum(data.subarray(at), onesComplementSum(data.subarray(0, at)))
        expect(finishChecksum(chained)).toBe(internetChecksum(data))
      }),
    )
  })

  it('sums by 32-bit words to the same checksum as by 16-bit words, at any offset and alignment', () => {
    const arbBytes = fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ min: 0xf0, maxLength: 300 }), fc.uint8Array({ max: 0, maxLength: 40 }))
    fc.assert(
      fc.property(arbBytes, fc.nat(7), fc.nat(), fc.nat(), fc.oneof(fc.constant(0), fc.nat({ max: 0x3fffe })), (bytes, skew, a, b, initial) => {
        const backing = new Uint8Array(bytes.length + skew)
        backing.set(bytes, skew)
        const data = backing.subarray(skew) // exercises a byteOffset that is not word-aligned
        const start = a % (data.length + 1)
        const end = start + (b % (data.length - start + 1))
        expect(finishChecksum(checksumWordSum(data, start, end, initial))).toBe(finishChecksum(onesComplementSumOf(data, start, end, initial)))
      }),
      { numRuns: 500 },
    )
    const allOnes = new Uint8Array(65535).fill(0xff)
    expect(finishChecksum(checksumWordSum(allOnes, 0, allOnes.length, 0xffff))).toBe(finishChecksum(onesComplementSum(allOnes, 0xffff)))
  })

  it('sums 64 KiB segments by native 32-bit words to the 16-bit reference checksum at every byte alignment', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 65000, maxLength: 65536 }), fc.nat(7), fc.nat(5), (bytes, skew, trim) => {
        const backing = new Uint8Array(bytes.length + skew)
        backing.set(bytes, skew)
        const data = backing.subarray(skew)
        expect(finishChecksum(checksumWordSum(data, trim, data.length, 0))).toBe(finishChecksum(onesComplementSumOf(data, trim, data.length, 0)))
      }),
      { numRuns: 40 },
    )
  })

  it('never returns more than 16 bits and never loses carries', () => {
    expect(finishChecksum(0)).toBe(0xffff)
    expect(finishChecksum(0xffff)).toBe(0)
    expect(finishChecksum(0x1fffe)).toBe(0) // 0xfffe + 1 = 0xffff
    expect(finishChecksum(2 ** 48 + 5)).toBe(~(5 + 1) & 0xffff) // 2^16 ≡ 1 in ones-complement, so 2^48 folds to 1
  })
})

describe('pseudo-header', () => {
  it('matches an explicitly laid out IPv4 pseudo-header', () => {
    const src = hex('c0a80001')
    const dst = hex('c0a800c7')
    const layout = hex('c0a80001 c0a800c7 00 11 0123')
    expect(finishChecksum(pseudoHeaderSum(src, dst, 17, 0x123))).toBe(internetChecksum(layout))
  })

  it('matches an explicitly laid out IPv6 pseudo-header (32-bit length, next header last)', () => {
    const src = hex('20010db8000000000000000000000001')
    const dst = hex('20010db8000000000000000000000002')
    const layout = new Uint8Array(40)
    layout.set(src, 0)
    layout.set(dst, 16)
    layout.set(hex('00012345 000000 3a'), 32)
    expect(finishChecksum(pseudoHeaderSum(src, dst, 58, 0x12345))).toBe(internetChecksum(layout))
  })

  it('verifies a captured IPv4 TCP segment (checksum 37a6)', () => {
    const packet = hex(`4500 0034 eda5 4000 4006 4eb6 ac16 686d 4a7d 9f67 af1f 0050 e833 8b62 fc13 da66
                        8010 005c 37a6 0000 0101 080a 04b8 66f7 4add 9045`)
    expect(transportChecksum(packet.subarray(20), packet.subarray(12, 16), packet.subarray(16, 20), 6)).toBe(0)
  })
})
