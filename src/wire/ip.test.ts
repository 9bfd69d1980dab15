import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAddress } from './address.ts'
import { internetChecksum } from './checksum.ts'
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP, buildIp, ipDestination, ipSource, ipVersion, parseIp } from './ip.ts'
import { arbAddressPair, expectWireError, hex, throwsOnlyWireError } from './testing.ts'

// Captured from Linux 6.x: `ping -c1 -p abcd -s 8 127.0.0.1` and `ping -6 ... ::1` (kernel-computed checksums).
const KERNEL_PING4 = hex('45000024670840004001d5ce7f0000017f000001 080027e3244e0001abcd000000000000')
const KERNEL_PING6 = hex(`60048e7700103a40 00000000000000000000000000000001 00000000000000000000000000000001
                          8000af95244f0001abcd000000000000`)

function withIpv4Checksum(packet: Uint8Array): Uint8Array {
  const headerLength = (packet[0]! & 0x0f) * 4
  packet[10] = 0
  packet[11] = 0
  const sum = internetChecksum(packet.subarray(0, headerLength))
  packet[10] = sum >> 8
  packet[11] = sum & 0xff
  return packet
}

describe('parseIp', () => {
  it('parses a kernel IPv4 echo request', () => {
    const ip = parseIp(KERNEL_PING4)
    expect(ip).toMatchObject({ version: 4, protocol: PROTO_ICMP, ttl: 64, headerLength: 20 })
    expect(ip.src).toEqual(parseAddress('127.0.0.1'))
    expect(ip.payload).toEqual(KERNEL_PING4.subarray(20))
  })

  it('parses a kernel IPv6 echo request', () => {
    const ip = parseIp(KERNEL_PING6)
    expect(ip).toMatchObject({ version: 6, protocol: PROTO_ICMPV6, ttl: 64, headerLength: 40 })
    expect(ip.dst).toEqual(parseAddress('::1'))
    expect(ip.payload).toEqual(KERNEL_PING6.subarray(40))
  })

  it('returns views into the packet, not copies', () => {
    const ip = parseIp(KERNEL_PING4)
    expect(ip.payload.buffer).toBe(KERNEL_PING4.buffer)
    expect(ip.src.buffer).toBe(KERNEL_PING4.buffer)
  })

  it('ignores bytes beyond the stated length (link-layer padding)', () => {
    const padded = new Uint8Array(KERNEL_PING4.length + 6)
    padded.set(KERNEL_PING4)
    expect(parseIp(padded).payload.length).toBe(16)
    const padded6 = new Uint8Array(KERNEL_PING6.length + 3)
    padded6.set(KERNEL_PING6)
    expect(parseIp(padded6).payload.length).toBe(16)
  })

  it('honours IPv4 options in the header length', () => {
    const packet = withIpv4Checksum(hex('46000020 00004000 40110000 0a000001 0a000002 01010100 deadbeef0000000c'))
    const ip = parseIp(packet)
    expect(ip.headerLength).toBe(24)
    expect(ip.payload).toEqual(hex('deadbeef0000000c'))
  })

  it('skips IPv6 hop-by-hop, routing and destination-options headers', () => {
    const packet = hex(`60000000 0020 00 40 fe800000000000000000000000000001 fe800000000000000000000000000002
                        2b 00 0104 00000000
                        3c 00 0000 00000000
                        11 00 0104 00000000
                        1234 5678 0008 0000`)
    const ip = parseIp(packet)
    expect(ip.protocol).toBe(PROTO_UDP)
    expect(ip.headerLength).toBe(64)
    expect(ip.payload).toEqual(hex('1234567800080000'))
  })

  it('rejects a hop-by-hop header that is not first', () => {
    const packet = hex(`60000000 0010 3c 40 00000000000000000000000000000001 00000000000000000000000000000001
                        00 00 0104 00000000  11 00 0104 00000000`)
    expectWireError(() => parseIp(packet), 'bad-option')
  })

  it('rejects an extension header that runs past the payload', () => {
    const packet = hex(`60000000 0008 00 40 00000000000000000000000000000001 00000000000000000000000000000001
                        11 01 0104 00000000`)
    expectWireError(() => parseIp(packet), 'truncated')
  })

  it('refuses fragments as unsupported', () => {
    const moreFragments = withIpv4Checksum(KERNEL_PING4.slice())
    moreFragments[6] = 0x20
    expectWireError(() => parseIp(withIpv4Checksum(moreFragments)), 'unsupported')
    const laterFragment = KERNEL_PING4.slice()
    laterFragment[6] = 0x00
    laterFragment[7] = 0x02
    expectWireError(() => parseIp(withIpv4Checksum(laterFragment)), 'unsupported')
    const v6Fragment = hex(`60000000 0010 2c 40 00000000000000000000000000000001 00000000000000000000000000000001
                            11 00 0001 12345678 0000000000000000`)
    expectWireError(() => parseIp(v6Fragment), 'unsupported')
  })

  it('names each kind of damage', () => {
    expectWireError(() => parseIp(new Uint8Array(0)), 'truncated')
    expectWireError(() => parseIp(KERNEL_PING4.subarray(0, 19)), 'truncated')
    expectWireError(() => parseIp(KERNEL_PING4.subarray(0, 35)), 'truncated')
    expectWireError(() => parseIp(KERNEL_PING6.subarray(0, 39)), 'truncated')
    expectWireError(() => parseIp(KERNEL_PING6.subarray(0, 55)), 'truncated')
    expectWireError(() => parseIp(hex('5000')), 'bad-version')
    const corrupt = KERNEL_PING4.slice()
    corrupt[8] = 63
    expectWireError(() => parseIp(corrupt), 'bad-checksum')
    const shortHeader = KERNEL_PING4.slice()
    shortHeader[0] = 0x44
    expectWireError(() => parseIp(withIpv4Checksum(shortHeader)), 'bad-length')
    const lengthBelowHeader = KERNEL_PING4.slice()
    lengthBelowHeader[3] = 19
    expectWireError(() => parseIp(withIpv4Checksum(lengthBelowHeader)), 'bad-length')
  })

  it('throws nothing but WireError for arbitrary or damaged bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => throwsOnlyWireError(() => parseIp(bytes))))
    const damaged = fc.tuple(fc.constantFrom(KERNEL_PING4, KERNEL_PING6), fc.array(fc.tuple(fc.nat(), fc.nat(255))), fc.nat())
    fc.assert(
      fc.property(damaged, ([original, edits, cut]) => {
        const packet = original.slice(0, 1 + (cut % original.length))
        for (const [at, value] of edits) packet[at % packet.length] = value
        return throwsOnlyWireError(() => parseIp(packet.length >= 20 && packet[0]! >> 4 === 4 ? withIpv4Checksum(packet) : packet))
      }),
    )
  })
})

describe('buildIp', () => {
  it('reproduces the kernel IPv4 echo byte for byte (DF set, same id)', () => {
    const built = buildIp({ src: parseAddress('127.0.0.1'), dst: parseAddress('127.0.0.1'), protocol: PROTO_ICMP, payload: KERNEL_PING4.subarray(20), id: 0x6708 })
    expect(built).toEqual(KERNEL_PING4)
  })

  it('reproduces the kernel IPv6 echo except for its flow label', () => {
    const built = buildIp({ src: parseAddress('::1'), dst: parseAddress('::1'), protocol: PROTO_ICMPV6, payload: KERNEL_PING6.subarray(40) })
    const expected = KERNEL_PING6.slice()
    expected.set([0x60, 0, 0, 0], 0)
    expect(built).toEqual(expected)
  })

  it('round-trips through parseIp', () => {
    fc.assert(
      fc.property(arbAddressPair, fc.nat(255), fc.nat(255), fc.nat(0xffff), fc.uint8Array({ maxLength: 100 }), ({ version, src, dst }, protocol, ttl, id, payload) => {
        // Extension-header and fragment numbers mean something else to an IPv6 parser.
        fc.pre(version === 4 || ![0, 43, 44, 60].includes(protocol))
        const ip = parseIp(buildIp({ src, dst, protocol, payload, ttl, id }))
        expect(ip).toEqual({ version, src, dst, protocol, ttl, headerLength: version === 4 ? 20 : 40, payload })
      }),
    )
  })

  it('rejects mixed families, bad field values and oversize payloads', () => {
    const v4 = parseAddress('10.0.0.1')
    const v6 = parseAddress('fd00::1')
    const payload = new Uint8Array(1)
    expectWireError(() => buildIp({ src: v4, dst: v6, protocol: 17, payload }), 'bad-address')
    expectWireError(() => buildIp({ src: new Uint8Array(5), dst: new Uint8Array(5), protocol: 17, payload }), 'bad-address')
    expectWireError(() => buildIp({ src: v4, dst: v4, protocol: 256, payload }), 'bad-length')
    expectWireError(() => buildIp({ src: v4, dst: v4, protocol: 17, payload, ttl: -1 }), 'bad-length')
    expectWireError(() => buildIp({ src: v4, dst: v4, protocol: 17, payload: new Uint8Array(65516) }), 'bad-length')
    expectWireError(() => buildIp({ src: v6, dst: v6, protocol: 17, payload: new Uint8Array(65536) }), 'bad-length')
    expect(buildIp({ src: v6, dst: v6, protocol: 17, payload: new Uint8Array(65535) }).length).toBe(65575)
  })
})

describe('fast header peeks', () => {
  it('return views of the addresses and the version', () => {
    expect(ipVersion(KERNEL_PING4)).toBe(4)
    expect(ipVersion(KERNEL_PING6)).toBe(6)
    const src = ipSource(KERNEL_PING6)!
    expect(src).toEqual(parseAddress('::1'))
    expect(src.buffer).toBe(KERNEL_PING6.buffer)
    const packet = buildIp({ src: parseAddress('10.1.2.3'), dst: parseAddress('10.4.5.6'), protocol: 17, payload: new Uint8Array(0) })
    expect(ipSource(packet)).toEqual(parseAddress('10.1.2.3'))
    expect(ipDestination(packet)).toEqual(parseAddress('10.4.5.6'))
    expect(ipDestination(KERNEL_PING6)).toEqual(parseAddress('::1'))
  })

  it('return undefined for anything too short or of another version', () => {
    expect(ipVersion(new Uint8Array(0))).toBeUndefined()
    expect(ipVersion(KERNEL_PING4.subarray(0, 19))).toBeUndefined()
    expect(ipVersion(KERNEL_PING6.subarray(0, 39))).toBeUndefined()
    expect(ipSource(hex('50' + '00'.repeat(40)))).toBeUndefined()
    expect(ipDestination(new Uint8Array(3))).toBeUndefined()
  })
})
