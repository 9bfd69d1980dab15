import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '../crypto/index.ts'
import { PROTO_UDP, buildIp, parseAddress, parsePrefix } from '../wire/index.ts'
import { buildIpTcp, buildIpUdp } from '../wire/ip-packet.ts'
import { DISCO_MAGIC, DataplaneCore, type DataplaneOptions, type UnderlayBatch } from './core.ts'
import { DataplaneError } from './errors.ts'

const p = parsePrefix
const ip = parseAddress

function packet(src: string, dst: string, body = 'hello'): Uint8Array {
  return buildIp({ src: ip(src), dst: ip(dst), protocol: PROTO_UDP, payload: new TextEncoder().encode(body) })
}

function node(address: string, options: Omit<DataplaneOptions, 'privateKey'> = {}) {
  const keys = generateKeyPair()
  const core = new DataplaneCore({ ...options, privateKey: keys.privateKey })
  core.addUnderlay(1)
  core.addOverlay(1, [p(address)])
  return { keys, core }
}

/** Moves batches between two cores until both are quiet; returns what reached each overlay. */
function pump(a: DataplaneCore, b: DataplaneCore, first: UnderlayBatch[], now: number) {
  const delivered = { a: [] as Uint8Array[], b: [] as Uint8Array[] }
  let queue: Array<{ to: 'a' | 'b'; batch: UnderlayBatch }> = first.map((batch) => ({ to: 'b' as const, batch }))
  for (let round = 0; queue.length > 0 && round < 20; round++) {
    const next: typeof queue = []
    for (const { to, batch } of queue) {
      const core = to === 'a' ? a : b
      const result = core.processInbound(batch.datagrams, 1, to === 'a' ? 'to-b' : 'to-a', now)
      for (const out of result.toOverlay) delivered[to].push(...out.packets)
      for (const reply of result.toUnderlay) next.push({ to: to === 'a' ? 'b' : 'a', batch: reply })
    }
    queue = next
  }
  return delivered
}

/** A and B, each with the other as a peer, routed over underlay 1. */
function connected(bOptions: Omit<DataplaneOptions, 'privateKey'> = {}) {
  const a = node('10.0.0.1/32')
  const b = node('10.0.0.2/32', bOptions)
  const peerB = a.core.addPeer({ publicKey: b.keys.publicKey, allowedIps: [p('10.0.0.2/32'), p('10.9.0.0/16')] })
  const peerA = b.core.addPeer({ publicKey: a.keys.publicKey, allowedIps: [p('10.0.0.1/32')] })
  a.core.setPeerRoute(peerB, 1, 'to-b')
  b.core.setPeerRoute(peerA, 1, 'to-a')
  // Complete a handshake with one packet so later steps are plain data.
  const out = a.core.processOutbound([packet('10.0.0.1', '10.0.0.2', 'first')], 0)
  const delivered = pump(a.core, b.core, out.toUnderlay, 0)
  expect(delivered.b.map((x) => new TextDecoder().decode(x.subarray(20)))).toEqual(['first'])
  return { a, b, peerA, peerB }
}

describe('DataplaneCore routing', () => {
  it('routes by longest prefix among overlapping AllowedIPs, including a /0 default', () => {
    const { core } = node('10.0.0.1/32')
    const wide = core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [p('10.0.0.0/8'), p('0.0.0.0/0')] })
    const narrow = core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [p('10.5.0.0/16')] })
    const host = core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [p('10.5.5.5/32'), p('fd00::/8')] })
    expect(core.routeFor(ip('10.1.1.1'))).toBe(wide)
    expect(core.routeFor(ip('10.5.1.1'))).toBe(narrow)
    expect(core.routeFor(ip('10.5.5.5'))).toBe(host)
    expect(core.routeFor(ip('192.0.2.1'))).toBe(wide)
    expect(core.routeFor(ip('fd12::1'))).toBe(host)
    expect(core.routeFor(ip('2001:db8::1'))).toBeUndefined()

    core.removeAllowedIp(narrow, p('10.5.0.0/16'))
    expect(core.routeFor(ip('10.5.1.1'))).toBe(wide)
    core.removePeer(host)
    expect(core.routeFor(ip('10.5.5.5'))).toBe(wide)
    expect(core.routeFor(ip('fd12::1'))).toBeUndefined()
    core.removeAllowedIp(wide, p('0.0.0.0/0'))
    expect(core.routeFor(ip('192.0.2.1'))).toBeUndefined()
  })

  it('moves a prefix claimed by a second peer away from the first, as WireGuard does', () => {
    const { core } = node('10.0.0.1/32')
    const first = core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [p('10.0.0.2/32')] })
    const second = core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [] })
    core.addAllowedIp(second, p('10.0.0.2/32'))
    expect(core.routeFor(ip('10.0.0.2'))).toBe(second)
    expect(core.allowedIpsOf(first)).toEqual([])
    core.setAllowedIps(second, [p('10.0.0.3/32')])
    expect(core.routeFor(ip('10.0.0.2'))).toBeUndefined()
  })

  it('rejects bad prefixes and unknown peers with typed errors and no change', () => {
    const { core } = node('10.0.0.1/32')
    expect(() => core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [p('10.0.0.2/32'), { address: ip('10.0.0.0'), bits: 40 }] })).toThrow(DataplaneError)
    expect(core.peerIds()).toEqual([])
    expect(core.routeFor(ip('10.0.0.2'))).toBeUndefined()
    const peer = core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [p('10.0.0.2/32')] })
    expect(() => core.setAllowedIps(peer, [p('10.0.0.3/32'), { address: new Uint8Array(3), bits: 0 }])).toThrow(/4 or 16 bytes/)
    expect(core.routeFor(ip('10.0.0.2'))).toBe(peer)
    expect(() => core.setPeerRoute(peer, 42, 'x')).toThrow(expect.objectContaining({ code: 'unknown-transport' }))
    expect(() => core.stats(999)).toThrow(expect.objectContaining({ code: 'unknown-peer' }))
  })

  it('counts unroutable, malformed and route-less packets instead of sending them', () => {
    const { core } = node('10.0.0.1/32')
    const peer = core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [p('10.0.0.2/32')] })
    const out = core.processOutbound([packet('10.0.0.1', '10.0.0.9'), new Uint8Array([0x45, 0]), packet('10.0.0.1', '10.0.0.2')], 0)
    expect(out.toUnderlay).toEqual([])
    expect(core.drops()).toMatchObject({ 'no-route': 1, 'malformed-ip': 1 })
    expect(core.stats(peer).drops).toMatchObject({ 'no-endpoint': 1 })
  })

  it('loops packets for our own overlay address back up without touching the tunnel', () => {
    const { core } = node('10.0.0.1/32')
    core.addOverlay(2, [p('fd00::1/128')])
    const mine = packet('10.0.0.1', '10.0.0.1', 'self')
    const mine6 = packet('fd00::1', 'fd00::1', 'self6')
    const out = core.processOutbound([mine, mine6], 0)
    expect(out.toUnderlay).toEqual([])
    expect(out.loopback).toEqual([
      { overlay: 1, packets: [mine] },
      { overlay: 2, packets: [mine6] },
    ])
  })
})

describe('DataplaneCore packet path', () => {
  it('encrypts to the peer route and delivers on the other side, grouped per endpoint', () => {
    const { a, b, peerB } = connected()
    const packets = [packet('10.0.0.1', '10.0.0.2', 'one'), packet('10.0.0.1', '10.9.1.1', 'subnet'), packet('10.0.0.1', '10.0.0.2', 'two')]
    const out = a.core.processOutbound(packets, 10)
    expect(out.toUnderlay).toHaveLength(1)
    expect(out.toUnderlay[0]).toMatchObject({ underlay: 1, endpoint: 'to-b' })
    expect(out.toUnderlay[0]!.datagrams).toHaveLength(3)
    const inbound = b.core.processInbound(out.toUnderlay[0]!.datagrams, 1, 'to-a', 10)
    // 10.9.1.1 is routed to B by A, but B has no overlay for it: counted, not delivered.
    expect(inbound.toOverlay).toEqual([{ overlay: 1, packets: [packets[0], packets[2]] }])
    const peerA = b.core.peerByKey(a.keys.publicKey)!
    expect(b.core.stats(peerA).drops['no-overlay']).toBe(1)
    const statsA = a.core.stats(peerB)
    expect(statsA.txPackets).toBe(4)
    expect(statsA.txBytes).toBe(packets.reduce((n, x) => n + x.length, 0) + packet('10.0.0.1', '10.0.0.2', 'first').length)
    expect(statsA.lastHandshake).toBe(0)
    expect(b.core.stats(peerA).rxPackets).toBe(3)
  })

  it('drops inbound packets whose inner source is outside the sender’s AllowedIPs, and counts them', () => {
    const { a, b } = connected()
    // A may send from 10.0.0.1 only, as far as B is concerned; 10.0.0.7 is spoofed.
    const spoofed = packet('10.0.0.7', '10.0.0.2', 'spoof')
    const honest = packet('10.0.0.1', '10.0.0.2', 'honest')
    const out = a.core.processOutbound([spoofed, honest], 5)
    const inbound = b.core.processInbound(out.toUnderlay[0]!.datagrams, 1, 'to-a', 5)
    expect(inbound.toOverlay).toEqual([{ overlay: 1, packets: [honest] }])
    const peerA = b.core.peerByKey(a.keys.publicKey)!
    expect(b.core.stats(peerA).drops['source-not-allowed']).toBe(1)
    expect(b.core.stats(peerA).rxPackets).toBe(2)
  })

  it('hands disco packets out untouched, separately from WireGuard', () => {
    const { b } = connected()
    const disco = new Uint8Array(6 + 32 + 24 + 20)
    disco.set(DISCO_MAGIC)
    disco.fill(7, 6)
    const result = b.core.processInbound([disco], 1, 'relay-node-key', 1)
    expect(result.disco).toEqual([{ underlay: 1, endpoint: 'relay-node-key', datagram: disco }])
    expect(result.disco[0]!.datagram).toBe(disco)
    expect(result.toOverlay).toEqual([])
    expect(result.toUnderlay).toEqual([])
  })

  it('roams: an authenticated datagram from a new endpoint moves the peer route there', () => {
    const { a, b, peerA } = connected()
    const out = a.core.processOutbound([packet('10.0.0.1', '10.0.0.2', 'roamed')], 20)
    b.core.processInbound(out.toUnderlay[0]!.datagrams, 1, 'new-a-address', 20)
    expect(b.core.peerRoute(peerA)).toEqual({ underlay: 1, endpoint: 'new-a-address' })
    // An unauthenticated (garbage) datagram from elsewhere does not.
    const forged = out.toUnderlay[0]!.datagrams[0]!.slice()
    forged[forged.length - 1]! ^= 1
    b.core.processInbound([forged], 1, 'attacker', 21)
    expect(b.core.peerRoute(peerA)).toEqual({ underlay: 1, endpoint: 'new-a-address' })
    const reply = b.core.processOutbound([packet('10.0.0.2', '10.0.0.1', 'back')], 22)
    expect(reply.toUnderlay[0]).toMatchObject({ underlay: 1, endpoint: 'new-a-address' })
  })

  it('keeps the chosen underlay when a peer is heard on another one, but remembers that endpoint', () => {
    const { a, b, peerA } = connected()
    b.core.addUnderlay(2)
    const out = a.core.processOutbound([packet('10.0.0.1', '10.0.0.2', 'via 2')], 30)
    const inbound = b.core.processInbound(out.toUnderlay[0]!.datagrams, 2, 'relay', 30)
    expect(inbound.toOverlay).toHaveLength(1)
    expect(b.core.peerRoute(peerA)).toEqual({ underlay: 1, endpoint: 'to-a' })
    b.core.removeUnderlay(1)
    expect(b.core.peerRoute(peerA)).toBeUndefined()
  })

  it('drops datagrams from an unknown underlay without touching the tunnel', () => {
    const { b } = connected()
    const result = b.core.processInbound([new Uint8Array(32)], 77, 'x', 1)
    expect(result).toEqual({ toOverlay: [], toUnderlay: [], disco: [] })
    expect(b.core.drops()['unknown-underlay']).toBe(1)
  })

  it('sends timer output (persistent keepalive) to the peer route, and reports its deadline', () => {
    const a = node('10.0.0.1/32')
    const b = node('10.0.0.2/32')
    const peerB = a.core.addPeer({ publicKey: b.keys.publicKey, allowedIps: [p('10.0.0.2/32')], persistentKeepalive: 25 })
    b.core.addPeer({ publicKey: a.keys.publicKey, allowedIps: [p('10.0.0.1/32')] })
    a.core.setPeerRoute(peerB, 1, 'to-b')
    pump(a.core, b.core, a.core.processOutbound([packet('10.0.0.1', '10.0.0.2')], 0).toUnderlay, 0)
    const deadline = a.core.nextEvent()
    expect(deadline).toBeDefined()
    expect(deadline!).toBeLessThanOrEqual(25_000)
    const events = a.core.poll(25_000)
    expect(events.toUnderlay).toHaveLength(1)
    expect(events.toUnderlay[0]).toMatchObject({ underlay: 1, endpoint: 'to-b' })
  })
})

describe('DataplaneCore batching', () => {
  it('groups output per (underlay, endpoint): peers behind one relay endpoint share a batch', () => {
    const { core } = node('10.0.0.1/32')
    core.addUnderlay(2)
    const peers = ['10.0.0.2', '10.0.0.3', '10.0.0.4'].map((address) => core.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: [p(`${address}/32`)] }))
    core.setPeerRoute(peers[0]!, 1, 'relay')
    core.setPeerRoute(peers[1]!, 1, 'relay')
    core.setPeerRoute(peers[2]!, 2, 'relay')
    const out = core.processOutbound(
      ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.2'].map((dst) => packet('10.0.0.1', dst)),
      0,
    )
    // Each packet starts a handshake: one initiation per peer (later packets are queued).
    expect(out.toUnderlay.map((batch) => [batch.underlay, batch.endpoint, batch.datagrams.length])).toEqual([
      [1, 'relay', 2],
      [2, 'relay', 1],
    ])
  })
})

describe('DataplaneCore under load', () => {
  it('tells the tunnel it is under load when handshakes exceed the budget, so it answers with cookie replies', () => {
    const a = node('10.0.0.1/32')
    const keysB = generateKeyPair()
    const b = new DataplaneCore({ privateKey: keysB.privateKey, handshakesPerSecondUnderLoad: 2 })
    b.addUnderlay(1)
    b.addOverlay(1, [p('10.0.0.2/32')])
    const peerB = a.core.addPeer({ publicKey: keysB.publicKey, allowedIps: [p('10.0.0.2/32')] })
    b.addPeer({ publicKey: a.keys.publicKey, allowedIps: [p('10.0.0.1/32')] })
    a.core.setPeerRoute(peerB, 1, 'to-b')
    const initiation = a.core.processOutbound([packet('10.0.0.1', '10.0.0.2')], 0).toUnderlay[0]!.datagrams[0]!
    expect(initiation[0]).toBe(1)
    const types: number[] = []
    for (let i = 0; i < 3; i++) {
      const result = b.processInbound([initiation], 1, 'to-a', 100 + i, Uint8Array.of(10, 0, 0, 1, 0x12, 0x34))
      types.push(...result.toUnderlay.flatMap((batch) => batch.datagrams.map((d) => d[0]!)))
    }
    // First: a response (2). Second: a replay, dropped silently. Third: over the budget of two per
    // second and without a MAC2, so the tunnel answers with a cookie reply (3).
    expect(types).toEqual([2, 3])
    expect(b.tunnel.underLoad).toBe(true)
    expect(b.nextEvent()).toBeLessThanOrEqual(102 + 1000)
    b.poll(102 + 1000)
    expect(b.tunnel.underLoad).toBe(false)
  })
})

describe('DataplaneCore packet filter', () => {
  const syn = (dstPort: number) =>
    buildIpTcp(
      { src: ip('10.0.0.1'), dst: ip('10.0.0.2') },
      { srcPort: 40000, dstPort, seq: 1, ack: 0, flags: 0x02, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0) },
    )

  it('with a filter set, a denied inbound SYN is dropped, counted as filtered and reported; an allowed one is delivered', () => {
    const reported: string[] = []
    const { a, b, peerA, peerB } = connected({ onFilterDrop: (_peer, reason, summary) => reported.push(`${reason}: ${summary}`) })
    b.core.setPacketFilter([{ srcIPs: ['10.0.0.1/32'], dstPorts: [{ prefix: '10.0.0.2/32', ports: { first: 80, last: 80 } }], protocols: [] }])
    const out = a.core.processOutbound([syn(22), syn(80)], 1)
    expect(a.core.stats(peerB).txPackets).toBe(3)
    const delivered = pump(a.core, b.core, out.toUnderlay, 1)
    expect(delivered.b.map((x) => (x[22]! << 8) | x[23]!)).toEqual([80])
    expect(b.core.stats(peerA).drops.filtered).toBe(1)
    expect(reported).toEqual(['filtered: TCP 10.0.0.1:40000 > 10.0.0.2:22 no rules matched'])
    // Without a filter everything from the peer passes again.
    b.core.setPacketFilter(undefined)
    expect(pump(a.core, b.core, a.core.processOutbound([syn(22)], 2).toUnderlay, 2).b).toHaveLength(1)
  })

  it('a reply to a UDP flow we sent passes a filter that admits nothing new; TSMP is dropped and counted', () => {
    const { a, b, peerA } = connected()
    b.core.setPacketFilter([])
    const udp = (src: string, srcPort: number, dst: string, dstPort: number) => buildIpUdp({ src: ip(src), dst: ip(dst) }, { srcPort, dstPort, payload: new Uint8Array(8) })
    expect(pump(a.core, b.core, a.core.processOutbound([udp('10.0.0.1', 53, '10.0.0.2', 40000)], 1).toUnderlay, 1).b).toHaveLength(0)
    b.core.processOutbound([udp('10.0.0.2', 40000, '10.0.0.1', 53)], 2)
    expect(pump(a.core, b.core, a.core.processOutbound([udp('10.0.0.1', 53, '10.0.0.2', 40000)], 3).toUnderlay, 3).b).toHaveLength(1)
    const tsmp = buildIp({ src: ip('10.0.0.1'), dst: ip('10.0.0.2'), protocol: 99, payload: new Uint8Array(4) })
    pump(a.core, b.core, a.core.processOutbound([tsmp], 4).toUnderlay, 4)
    expect(b.core.stats(peerA).drops).toMatchObject({ filtered: 1, tsmp: 1 })
  })

  it('a malformed rule throws and leaves the previous filter in place', () => {
    const { a, b } = connected()
    b.core.setPacketFilter([])
    expect(() => b.core.setPacketFilter([{ srcIPs: ['nope'], dstPorts: [], protocols: [] }])).toThrow(/nope/)
    expect(pump(a.core, b.core, a.core.processOutbound([syn(22)], 1).toUnderlay, 1).b).toHaveLength(0)
  })
})

describe('DataplaneCore.handshake', () => {
  it('sends one initiation on the peer’s route ahead of traffic, none without a route or while one is under way, and the first packet then needs no handshake', () => {
    const a = node('10.0.0.1/32')
    const b = node('10.0.0.2/32')
    const peerB = a.core.addPeer({ publicKey: b.keys.publicKey, allowedIps: [p('10.0.0.2/32')] })
    const peerA = b.core.addPeer({ publicKey: a.keys.publicKey, allowedIps: [p('10.0.0.1/32')] })
    expect(a.core.handshake(peerB, 0).toUnderlay).toEqual([])
    a.core.setPeerRoute(peerB, 1, 'to-b')
    b.core.setPeerRoute(peerA, 1, 'to-a')
    const first = a.core.handshake(peerB, 0).toUnderlay
    expect(first.map((batch) => [batch.underlay, batch.endpoint, batch.datagrams.map((d) => [d.length, d[0]])])).toEqual([[1, 'to-b', [[148, 1]]]])
    expect(a.core.handshake(peerB, 1).toUnderlay).toEqual([])
    expect(pump(a.core, b.core, first, 2)).toEqual({ a: [], b: [] })
    const data = a.core.processOutbound([packet('10.0.0.1', '10.0.0.2', 'no wait')], 3).toUnderlay
    // A transport data message (type 4) at once, no initiation (type 1) first.
    expect(data.flatMap((batch) => batch.datagrams.map((d) => d[0]))).toEqual([4])
    expect(pump(a.core, b.core, data, 4).b.map((x) => new TextDecoder().decode(x.subarray(20)))).toEqual(['no wait'])
  })

  it('rejects an unknown peer with a DataplaneError', () => {
    const { core } = node('10.0.0.1/32')
    expect(() => core.handshake(42, 0)).toThrow(DataplaneError)
  })
})
