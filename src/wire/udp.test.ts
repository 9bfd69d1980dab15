import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAddress } from './address.ts'
import { buildUdp, parseUdp } from './udp.ts'
import { arbAddress, arbAddressPair, expectWireError, hex, throwsOnlyWireError } from './testing.ts'

const LOOPBACK4 = parseAddress('127.0.0.1')
const LOOPBACK6 = parseAddress('::1')
// Datagrams captured from Linux on loopback (`sendto(b'burrow', 127.0.0.1:5003)`, `sendto(b'burrow!', [::1]:5004)`).
// Loopback leaves checksums to "hardware", so the checksum fields here were computed separately with Python:
// 0x0da3 (IPv4) and 0xea9f (IPv6).
const UDP4 = hex('9c42 138b 000e 0da3 627572726f77')
const UDP6 = hex('9c43 138c 000f ea9f 627572726f7721')
const text = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('UDP', () => {
  it('builds the captured datagrams byte for byte', () => {
    expect(buildUdp({ srcPort: 0x9c42, dstPort: 5003, payload: text('burrow') }, LOOPBACK4, LOOPBACK4)).toEqual(UDP4)
    expect(buildUdp({ srcPort: 0x9c43, dstPort: 5004, payload: text('burrow!') }, LOOPBACK6, LOOPBACK6)).toEqual(UDP6)
  })

  it('parses them back, payload as a view', () => {
    const d = parseUdp(UDP6, LOOPBACK6, LOOPBACK6)
    expect(d).toEqual({ srcPort: 0x9c43, dstPort: 5004, payload: text('burrow!') })
    expect(d.payload.buffer).toBe(UDP6.buffer)
  })

  it('accepts a zero checksum over IPv4 only', () => {
    const unchecked4 = UDP4.slice()
    unchecked4.set([0, 0], 6)
    expect(parseUdp(unchecked4, LOOPBACK4, LOOPBACK4).payload).toEqual(text('burrow'))
    const unchecked6 = UDP6.slice()
    unchecked6.set([0, 0], 6)
    expectWireError(() => parseUdp(unchecked6, LOOPBACK6, LOOPBACK6), 'bad-checksum')
  })

  it('sends a computed zero checksum as ffff, which verifies', () => {
    const probe = buildUdp({ srcPort: 1, dstPort: 2, payload: new Uint8Array(2) }, LOOPBACK4, LOOPBACK4)
    // Putting the probe's checksum in the payload makes the real sum come out as exactly zero.
    const payload = probe.slice(6, 8)
    const datagram = buildUdp({ srcPort: 1, dstPort: 2, payload }, LOOPBACK4, LOOPBACK4)
    expect(datagram.subarray(6, 8)).toEqual(hex('ffff'))
    expect(parseUdp(datagram, LOOPBACK4, LOOPBACK4).payload).toEqual(payload)
  })

  it('uses the length field, ignoring trailing bytes, and rejects inconsistent lengths', () => {
    const padded = new Uint8Array(UDP4.length + 4)
    padded.set(UDP4)
    expect(parseUdp(padded, LOOPBACK4, LOOPBACK4).payload).toEqual(text('burrow'))
    expectWireError(() => parseUdp(UDP4.subarray(0, 7), LOOPBACK4, LOOPBACK4), 'truncated')
    expectWireError(() => parseUdp(UDP4.subarray(0, 13), LOOPBACK4, LOOPBACK4), 'truncated')
    const tooShort = UDP4.slice()
    tooShort[5] = 7
    expectWireError(() => parseUdp(tooShort, LOOPBACK4, LOOPBACK4), 'bad-length')
  })

  it('catches a flipped bit, and a wrong pseudo-header address', () => {
    const flipped = UDP6.slice()
    flipped[9]! ^= 0x10
    expectWireError(() => parseUdp(flipped, LOOPBACK6, LOOPBACK6), 'bad-checksum')
    expectWireError(() => parseUdp(UDP4, parseAddress('127.0.0.2'), LOOPBACK4), 'bad-checksum')
    expectWireError(() => parseUdp(UDP4, LOOPBACK4, LOOPBACK6), 'bad-address')
  })

  it('refuses ports that do not fit 16 bits', () => {
    expectWireError(() => buildUdp({ srcPort: 65536, dstPort: 1, payload: new Uint8Array(0) }, LOOPBACK4, LOOPBACK4), 'bad-length')
    expectWireError(() => buildUdp({ srcPort: 1, dstPort: 1.5, payload: new Uint8Array(0) }, LOOPBACK4, LOOPBACK4), 'bad-length')
  })

  it('round-trips any datagram', () => {
    fc.assert(
      fc.property(arbAddressPair, fc.nat(0xffff), fc.nat(0xffff), fc.uint8Array({ maxLength: 200 }), ({ src, dst }, srcPort, dstPort, payload) => {
        expect(parseUdp(buildUdp({ srcPort, dstPort, payload }, src, dst), src, dst)).toEqual({ srcPort, dstPort, payload })
      }),
    )
  })

  it('throws nothing but WireError for arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), arbAddress, arbAddress, (bytes, src, dst) => throwsOnlyWireError(() => parseUdp(bytes, src, dst))))
  })
})
