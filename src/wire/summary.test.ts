import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAddress } from './address.ts'
import { buildEcho } from './icmp.ts'
import { PROTO_ICMPV6, buildIp } from './ip.ts'
import { buildIpTcp, buildIpUdp } from './ip-packet.ts'
import { summarizePacket } from './summary.ts'
import { ACK, PSH, SYN } from './tcp.ts'

const a = parseAddress('100.64.0.1')
const b = parseAddress('100.64.0.2')
const a6 = parseAddress('fd7a:115c:a1e0::1')
const b6 = parseAddress('fd7a:115c:a1e0::2')
const noOptions = { urgent: 0, options: {} }

describe('summarizePacket (one line per packet for debug logs)', () => {
  it('shows a TCP SYN-ACK like tcpdump: ports, flags, seq, ack, window, payload length', () => {
    const packet = buildIpTcp({ src: a, dst: b }, { srcPort: 80, dstPort: 51000, seq: 7, ack: 1001, flags: SYN | ACK, window: 512, ...noOptions, payload: new Uint8Array() })
    expect(summarizePacket(packet)).toBe('IP 100.64.0.1.80 > 100.64.0.2.51000: TCP [S.] seq 7 ack 1001 win 512 len 0')
  })

  it('shows TCP data with PSH and its length, without an ack field when ACK is clear', () => {
    const packet = buildIpTcp({ src: a, dst: b }, { srcPort: 1, dstPort: 2, seq: 3, ack: 99, flags: PSH, window: 10, ...noOptions, payload: new Uint8Array(5) })
    expect(summarizePacket(packet)).toBe('IP 100.64.0.1.1 > 100.64.0.2.2: TCP [P] seq 3 win 10 len 5')
  })

  it('marks a TCP segment whose checksum is wrong instead of hiding it', () => {
    const packet = buildIpTcp({ src: a, dst: b }, { srcPort: 1, dstPort: 2, seq: 3, ack: 0, flags: SYN, window: 10, ...noOptions, payload: new Uint8Array(4) })
    packet[packet.length - 1]! ^= 0xff
    expect(summarizePacket(packet)).toMatch(/\[bad cksum\]$/)
  })

  it('shows UDP over IPv6 with ports and payload length', () => {
    const packet = buildIpUdp({ src: a6, dst: b6 }, { srcPort: 5353, dstPort: 53, payload: new Uint8Array(12) })
    expect(summarizePacket(packet)).toBe('IP6 fd7a:115c:a1e0::1.5353 > fd7a:115c:a1e0::2.53: UDP len 12')
  })

  it('shows ICMPv6 echo requests with id and sequence', () => {
    const echo = buildEcho({ kind: 'request', id: 7, seq: 1, data: new Uint8Array(56) }, 6, a6, b6)
    const packet = buildIp({ src: a6, dst: b6, protocol: PROTO_ICMPV6, payload: echo })
    expect(summarizePacket(packet)).toBe('IP6 fd7a:115c:a1e0::1 > fd7a:115c:a1e0::2: ICMP6 echo request id 7 seq 1 len 64')
  })

  it('names what is wrong with a packet it cannot parse', () => {
    expect(summarizePacket(new Uint8Array([0x45, 0, 0]))).toMatch(/^invalid IP packet \(3 bytes\): truncated: IPv4 packet of 3 bytes is shorter/)
    expect(summarizePacket(new Uint8Array())).toMatch(/^invalid IP packet \(0 bytes\)/)
  })

  it('never throws, whatever the bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => typeof summarizePacket(bytes) === 'string'))
  })
})
