import { describe, expect, it } from 'vitest'
import { parseAddress } from '../wire/address.ts'
import { buildEcho } from '../wire/icmp.ts'
import { buildIp } from '../wire/ip.ts'
import { buildIpTcp, buildIpUdp } from '../wire/ip-packet.ts'
import { PacketFilter, PacketFilterError, type PacketFilterRuleInput } from './packet-filter.ts'

const ME = '100.64.0.1'
const PEER = '100.64.0.2'
const OTHER = '100.64.0.3'
const SYN = 0x02
const ACK = 0x10

function tcp(src: string, dst: string, srcPort: number, dstPort: number, flags: number): Uint8Array {
  return buildIpTcp(
    { src: parseAddress(src), dst: parseAddress(dst) },
    { srcPort, dstPort, seq: 1, ack: 0, flags, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0) },
  )
}

function udp(src: string, dst: string, srcPort: number, dstPort: number): Uint8Array {
  return buildIpUdp({ src: parseAddress(src), dst: parseAddress(dst) }, { srcPort, dstPort, payload: new Uint8Array(4) })
}

function icmp(src: string, dst: string, type: 'request' | 'reply'): Uint8Array {
  const s = parseAddress(src)
  const d = parseAddress(dst)
  const v6 = s.length === 16
  const message = buildEcho({ kind: type, id: 1, seq: 1, data: new Uint8Array(8) }, v6 ? 6 : 4, s, d)
  return buildIp({ src: s, dst: d, protocol: v6 ? 58 : 1, payload: message })
}

function raw(src: string, dst: string, protocol: number): Uint8Array {
  return buildIp({ src: parseAddress(src), dst: parseAddress(dst), protocol, payload: new Uint8Array(8) })
}

/** Headscale's expansion of `{"action":"accept","src":["100.64.0.2"],"dst":["100.64.0.1:80,8000-8010"]}`. */
const WEB_ONLY: PacketFilterRuleInput[] = [
  {
    srcIPs: [`${PEER}/32`],
    dstPorts: [
      { prefix: `${ME}/32`, ports: { first: 80, last: 80 } },
      { prefix: `${ME}/32`, ports: { first: 8000, last: 8010 } },
    ],
    protocols: [],
  },
]

const verdict = (filter: PacketFilter, packet: Uint8Array) => {
  const v = filter.checkInbound(packet)
  return v.accept ? 'accept' : v.reason
}

describe('PacketFilter (wgengine/filter semantics)', () => {
  it('a TCP SYN is admitted only to an allowed port from an allowed source', () => {
    const filter = new PacketFilter(WEB_ONLY)
    expect(verdict(filter, tcp(PEER, ME, 50000, 80, SYN))).toBe('accept')
    expect(verdict(filter, tcp(PEER, ME, 50000, 8005, SYN))).toBe('accept')
    expect(verdict(filter, tcp(PEER, ME, 50000, 8011, SYN))).toBe('filtered')
    expect(verdict(filter, tcp(PEER, ME, 50000, 22, SYN))).toBe('filtered')
    expect(verdict(filter, tcp(OTHER, ME, 50000, 80, SYN))).toBe('filtered')
  })

  it('TCP segments other than a bare SYN pass (SYN-ACK answers our connection; the rest follow a SYN)', () => {
    const filter = new PacketFilter([])
    expect(verdict(filter, tcp(PEER, ME, 22, 50000, SYN | ACK))).toBe('accept')
    expect(verdict(filter, tcp(PEER, ME, 22, 50000, ACK))).toBe('accept')
    expect(verdict(filter, tcp(PEER, ME, 50000, 22, SYN))).toBe('filtered')
  })

  it('a denied packet carries a summary naming protocol, endpoints and why', () => {
    const v = new PacketFilter(WEB_ONLY).checkInbound(tcp(PEER, ME, 50000, 22, SYN))
    expect(v).toEqual({ accept: false, reason: 'filtered', summary: 'TCP 100.64.0.2:50000 > 100.64.0.1:22 no rules matched' })
  })

  it('UDP is admitted by a rule, or as the reply to a flow we sent (reversed 5-tuple), not to another port', () => {
    const filter = new PacketFilter(WEB_ONLY)
    expect(verdict(filter, udp(PEER, ME, 5353, 8001))).toBe('accept')
    expect(verdict(filter, udp(PEER, ME, 53, 40000))).toBe('filtered')
    filter.noteOutbound(udp(ME, PEER, 40000, 53))
    expect(verdict(filter, udp(PEER, ME, 53, 40000))).toBe('accept')
    expect(verdict(filter, udp(PEER, ME, 53, 40001))).toBe('filtered')
    expect(verdict(filter, udp(OTHER, ME, 53, 40000))).toBe('filtered')
  })

  it('the flow cache keeps the 512 most recently used flows', () => {
    const filter = new PacketFilter([])
    filter.noteOutbound(udp(ME, PEER, 1000, 53))
    for (let port = 2000; port < 2511; port++) filter.noteOutbound(udp(ME, PEER, port, 53))
    expect(verdict(filter, udp(PEER, ME, 53, 1000))).toBe('accept') // touched: now the newest
    filter.noteOutbound(udp(ME, PEER, 3000, 53))
    expect(verdict(filter, udp(PEER, ME, 53, 2000))).toBe('filtered') // the oldest, evicted
    expect(verdict(filter, udp(PEER, ME, 53, 1000))).toBe('accept')
  })

  it('ICMP echo replies always pass; echo requests only when a rule opens any port of the destination to the source', () => {
    expect(verdict(new PacketFilter([]), icmp(PEER, ME, 'reply'))).toBe('accept')
    expect(verdict(new PacketFilter([]), icmp(PEER, ME, 'request'))).toBe('filtered')
    // TCP-only rule on port 80: ICMP ignores ports and protocols (match.go matchIPsOnly).
    const tcpOnly = new PacketFilter([{ ...WEB_ONLY[0]!, protocols: [6] }])
    expect(verdict(tcpOnly, icmp(PEER, ME, 'request'))).toBe('accept')
    expect(verdict(tcpOnly, icmp(OTHER, ME, 'request'))).toBe('filtered')
  })

  it('an explicit protocol list is honoured: a UDP-only rule refuses TCP SYNs', () => {
    const filter = new PacketFilter([{ ...WEB_ONLY[0]!, protocols: [17] }])
    expect(verdict(filter, udp(PEER, ME, 1, 80))).toBe('accept')
    expect(verdict(filter, tcp(PEER, ME, 1, 80, SYN))).toBe('filtered')
  })

  it('"*" (0.0.0.0/0 and ::/0) admits IPv4 and IPv6', () => {
    const filter = new PacketFilter([
      {
        srcIPs: ['0.0.0.0/0', '::/0'],
        dstPorts: [
          { prefix: '0.0.0.0/0', ports: { first: 0, last: 65535 } },
          { prefix: '::/0', ports: { first: 0, last: 65535 } },
        ],
        protocols: [],
      },
    ])
    expect(verdict(filter, tcp(PEER, ME, 1, 22, SYN))).toBe('accept')
    expect(verdict(filter, tcp('fd7a:115c:a1e0::2', 'fd7a:115c:a1e0::1', 1, 22, SYN))).toBe('accept')
    expect(verdict(filter, icmp('fd7a:115c:a1e0::2', 'fd7a:115c:a1e0::1', 'request'))).toBe('accept')
  })

  it('an IPv4 rule does not admit IPv6 and vice versa', () => {
    const filter = new PacketFilter(WEB_ONLY)
    expect(verdict(filter, tcp('fd7a:115c:a1e0::2', 'fd7a:115c:a1e0::1', 1, 80, SYN))).toBe('filtered')
  })

  it('TSMP (protocol 99) is dropped under its own reason even when everything is allowed', () => {
    const all = new PacketFilter([{ srcIPs: ['0.0.0.0/0'], dstPorts: [{ prefix: '0.0.0.0/0', ports: { first: 0, last: 65535 } }], protocols: [] }])
    expect(verdict(all, raw(PEER, ME, 99))).toBe('tsmp')
  })

  it('other protocols pass only by a rule that lists them and opens all ports', () => {
    const gre = (ports: { first: number; last: number }) => new PacketFilter([{ srcIPs: [`${PEER}/32`], dstPorts: [{ prefix: `${ME}/32`, ports }], protocols: [47] }])
    expect(verdict(gre({ first: 0, last: 65535 }), raw(PEER, ME, 47))).toBe('accept')
    expect(verdict(gre({ first: 0, last: 1000 }), raw(PEER, ME, 47))).toBe('filtered')
    expect(verdict(new PacketFilter(WEB_ONLY), raw(PEER, ME, 47))).toBe('filtered')
  })

  it('non-first IPv4 fragments pass (they carry no ports); truncated packets are refused', () => {
    const later = tcp(PEER, ME, 50000, 22, SYN)
    later[6] = 0x00
    later[7] = 0x10 // fragment offset 16 (×8 bytes)
    expect(verdict(new PacketFilter([]), later)).toBe('accept')
    expect(verdict(new PacketFilter([]), new Uint8Array([0x45, 0, 0]))).toBe('filtered')
  })

  it('a malformed rule prefix is a PacketFilterError naming it', () => {
    expect(() => new PacketFilter([{ srcIPs: ['100.64.0.300/32'], dstPorts: [], protocols: [] }])).toThrow(PacketFilterError)
    expect(() => new PacketFilter([{ srcIPs: ['100.64.0.300/32'], dstPorts: [], protocols: [] }])).toThrow(/100\.64\.0\.300/)
  })
})
