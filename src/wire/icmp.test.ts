import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAddress } from './address.ts'
import { ICMPV4_DEST_UNREACHABLE, ICMPV6_DEST_UNREACHABLE, ICMPV6_ECHO_REQUEST, buildEcho, buildIcmp, buildIcmpError, parseEcho, parseIcmp, type Echo } from './icmp.ts'
import { arbAddress, arbAddressPair, expectWireError, hex, throwsOnlyWireError } from './testing.ts'

const LOOPBACK4 = parseAddress('127.0.0.1')
const LOOPBACK6 = parseAddress('::1')

// ICMP parts of packets captured from Linux (kernel-computed checksums, which Python verified independently):
// `ping -c1 -p abcd -s 8 127.0.0.1` / `ping -6 ... ::1`, and the port-unreachable errors the kernel sent
// back for UDP datagrams to closed ports (each quoting the offending IP packet).
const ECHO4 = hex('0800 27e3 244e 0001 abcd000000000000')
const ECHO_REPLY4 = hex('0000 2fe3 244e 0001 abcd000000000000')
const ECHO6 = hex('8000 af95 244f 0001 abcd000000000000')
const ECHO_REPLY6 = hex('8100 ae95 244f 0001 abcd000000000000')
const UDP4_PACKET = hex('4500002228c84000401114017f0000017f0000019c42138b000efe21627572726f77')
const PORT_UNREACHABLE4 = hex('0303 0aa0 00000000')
const UDP6_PACKET = hex(`600b55c8000f1140 00000000000000000000000000000001 00000000000000000000000000000001
                         9c43138c000f0022627572726f7721`)
const PORT_UNREACHABLE6 = hex('0104 21fc 00000000')

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

describe('ICMP echo', () => {
  it('parses the kernel echo request and reply, both versions', () => {
    const data = hex('abcd000000000000')
    expect(parseEcho(ECHO4, 4, LOOPBACK4, LOOPBACK4)).toEqual({ kind: 'request', id: 0x244e, seq: 1, data })
    expect(parseEcho(ECHO_REPLY4, 4, LOOPBACK4, LOOPBACK4)).toEqual({ kind: 'reply', id: 0x244e, seq: 1, data })
    expect(parseEcho(ECHO6, 6, LOOPBACK6, LOOPBACK6)).toEqual({ kind: 'request', id: 0x244f, seq: 1, data })
    expect(parseEcho(ECHO_REPLY6, 6, LOOPBACK6, LOOPBACK6)).toEqual({ kind: 'reply', id: 0x244f, seq: 1, data })
  })

  it('builds them byte for byte (ICMPv6 checksum includes the pseudo-header)', () => {
    const echo = (kind: Echo['kind'], id: number): Echo => ({ kind, id, seq: 1, data: hex('abcd000000000000') })
    expect(buildEcho(echo('request', 0x244e), 4, LOOPBACK4, LOOPBACK4)).toEqual(ECHO4)
    expect(buildEcho(echo('reply', 0x244e), 4, LOOPBACK4, LOOPBACK4)).toEqual(ECHO_REPLY4)
    expect(buildEcho(echo('request', 0x244f), 6, LOOPBACK6, LOOPBACK6)).toEqual(ECHO6)
    expect(buildEcho(echo('reply', 0x244f), 6, LOOPBACK6, LOOPBACK6)).toEqual(ECHO_REPLY6)
  })

  it('returns undefined for other types', () => {
    const error = concat(PORT_UNREACHABLE4, UDP4_PACKET)
    expect(parseEcho(error, 4, LOOPBACK4, LOOPBACK4)).toBeUndefined()
    // An ICMPv4 echo type number means nothing in ICMPv6.
    expect(parseEcho(buildIcmp({ type: 8, code: 0, body: new Uint8Array(4) }, 6, LOOPBACK6, LOOPBACK6), 6, LOOPBACK6, LOOPBACK6)).toBeUndefined()
  })

  it('rejects damaged or short messages', () => {
    const flipped = ECHO6.slice()
    flipped[10]! ^= 1
    expectWireError(() => parseEcho(flipped, 6, LOOPBACK6, LOOPBACK6), 'bad-checksum')
    // ICMPv6 is bound to its addresses; plain ICMP is not.
    expectWireError(() => parseEcho(ECHO6, 6, parseAddress('::2'), LOOPBACK6), 'bad-checksum')
    expect(parseEcho(ECHO4, 4, parseAddress('10.0.0.1'), LOOPBACK4)?.id).toBe(0x244e)
    expectWireError(() => parseIcmp(ECHO4.subarray(0, 3), 4, LOOPBACK4, LOOPBACK4), 'truncated')
    const shortEcho = buildIcmp({ type: ICMPV6_ECHO_REQUEST, code: 0, body: new Uint8Array(2) }, 6, LOOPBACK6, LOOPBACK6)
    expectWireError(() => parseEcho(shortEcho, 6, LOOPBACK6, LOOPBACK6), 'truncated')
    expectWireError(() => parseEcho(ECHO4, 6, LOOPBACK4, LOOPBACK4), 'bad-address')
  })

  it('round-trips any echo', () => {
    const arbEcho = fc.record({ kind: fc.constantFrom('request' as const, 'reply' as const), id: fc.nat(0xffff), seq: fc.nat(0xffff), data: fc.uint8Array({ maxLength: 100 }) })
    fc.assert(
      fc.property(arbAddressPair, arbEcho, ({ version, src, dst }, echo) => {
        expect(parseEcho(buildEcho(echo, version, src, dst), version, src, dst)).toEqual(echo)
      }),
    )
  })
})

describe('ICMP messages and errors', () => {
  it('builds the kernel port-unreachable errors byte for byte', () => {
    const error4 = buildIcmpError({ type: ICMPV4_DEST_UNREACHABLE, code: 3, original: UDP4_PACKET }, 4, LOOPBACK4, LOOPBACK4)
    expect(error4).toEqual(concat(PORT_UNREACHABLE4, UDP4_PACKET))
    const error6 = buildIcmpError({ type: ICMPV6_DEST_UNREACHABLE, code: 4, original: UDP6_PACKET }, 6, LOOPBACK6, LOOPBACK6)
    expect(error6).toEqual(concat(PORT_UNREACHABLE6, UDP6_PACKET))
  })

  it('quotes no more than the minimum MTU allows', () => {
    const big = new Uint8Array(3000)
    const src4 = parseAddress('10.0.0.1')
    expect(buildIcmpError({ type: 3, code: 4, rest: 1400, original: big }, 4, src4, src4).length).toBe(576 - 20)
    expect(buildIcmpError({ type: 2, code: 0, rest: 1280, original: big }, 6, LOOPBACK6, LOOPBACK6).length).toBe(1280 - 40)
    const tooBig = parseIcmp(buildIcmpError({ type: 2, code: 0, rest: 1280, original: big }, 6, LOOPBACK6, LOOPBACK6), 6, LOOPBACK6, LOOPBACK6)
    expect(tooBig.body.subarray(0, 4)).toEqual(hex('00000500'))
  })

  it('round-trips any message', () => {
    fc.assert(
      fc.property(arbAddressPair, fc.nat(255), fc.nat(255), fc.uint8Array({ maxLength: 100 }), ({ version, src, dst }, type, code, body) => {
        expect(parseIcmp(buildIcmp({ type, code, body }, version, src, dst), version, src, dst)).toEqual({ type, code, body })
      }),
    )
  })

  it('throws nothing but WireError for arbitrary bytes', () => {
    const arbVersion = fc.constantFrom(4 as const, 6 as const)
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 40 }),
        arbVersion,
        arbAddress,
        arbAddress,
        (bytes, version, src, dst) => throwsOnlyWireError(() => parseIcmp(bytes, version, src, dst)) && throwsOnlyWireError(() => parseEcho(bytes, version, src, dst)),
      ),
    )
    // Random bytes rarely pass the checksum; also try ones that do, to reach the echo decoding.
    fc.assert(
      fc.property(arbAddressPair, fc.oneof(fc.constantFrom(0, 8, 128, 129), fc.nat(255)), fc.uint8Array({ maxLength: 12 }), ({ version, src, dst }, type, body) =>
        throwsOnlyWireError(() => parseEcho(buildIcmp({ type, code: 0, body }, version, src, dst), version, src, dst)),
      ),
    )
  })
})
