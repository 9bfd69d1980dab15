import { afterEach, describe, expect, it } from 'vitest'
import type { WgQuickConfig } from '../control/wg-quick.ts'
import { generateKeyPair, type KeyPair } from '../crypto/index.ts'
import { ManualClock } from '../clock/clock.ts'
import { MAX_IDLE_SLEEP } from '../dataplane/wakeup.ts'
import { UdpUnderlay } from '../underlay/udp/udp-underlay.ts'
import { buildEcho, parseEcho } from '../wire/icmp.ts'
import { buildIp, parseIp, PROTO_ICMP, PROTO_UDP } from '../wire/ip.ts'
import { type IpAddress, parseAddress, parsePrefix } from '../wire/address.ts'
import { EndpointResolveError, openUdpTunnel, type UdpTunnel, type UdpTunnelOptions } from './udp-tunnel.ts'

interface Node {
  keys: KeyPair
  tunnel: UdpTunnel
  /** IP packets the dataplane delivered to this node's stack. */
  inbound: Uint8Array[]
  /** Resolves once a delivered packet satisfies `match`. */
  arrival(match: (packet: Uint8Array) => boolean): Promise<Uint8Array>
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

const A = parseAddress('10.0.0.1')
const B = parseAddress('10.0.0.2')

function config(keys: KeyPair, local: IpAddress, peer: { publicKey: Uint8Array; allowed: string; port?: number }): WgQuickConfig {
  return {
    interface: { privateKey: keys.privateKey, addresses: [{ address: local, bits: 24 }] },
    peers: [
      {
        publicKey: peer.publicKey,
        allowedIps: [parsePrefix(peer.allowed)],
        ...(peer.port !== undefined && { endpoint: { host: '127.0.0.1', port: peer.port } }),
      },
    ],
  }
}

async function node(keys: KeyPair, local: IpAddress, peer: { publicKey: Uint8Array; allowed: string; port?: number }, options: UdpTunnelOptions = {}): Promise<Node> {
  const inbound: Uint8Array[] = []
  const waiters = new Set<() => void>()
  const tunnel = await openUdpTunnel(config(keys, local, peer), {
    ...options,
    capture: (packet, direction) => {
      if (direction !== 'in') return
      inbound.push(packet.slice())
      for (const wake of [...waiters]) wake()
    },
  })
  cleanups.push(() => tunnel.close())
  // The test packets go to UDP port 2: bound, so the stack takes them quietly instead of answering port unreachable.
  await tunnel.sockets.udp({ localPort: 2 }).opened
  const arrival = (match: (packet: Uint8Array) => boolean) =>
    new Promise<Uint8Array>((resolve) => {
      const check = () => {
        const found = inbound.find(match)
        if (!found) return
        waiters.delete(check)
        resolve(found)
      }
      waiters.add(check)
      check()
    })
  return { keys, tunnel, inbound, arrival }
}

/** Two nodes on loopback: `a` knows where `b` listens, `b` must learn `a`'s endpoint. */
async function pair(options: { a?: UdpTunnelOptions; b?: UdpTunnelOptions } = {}): Promise<{ a: Node; b: Node }> {
  const aKeys = generateKeyPair()
  const bKeys = generateKeyPair()
  const b = await node(bKeys, B, { publicKey: aKeys.publicKey, allowed: '10.0.0.1/32' }, options.b)
  const a = await node(aKeys, A, { publicKey: bKeys.publicKey, allowed: '10.0.0.0/24', port: b.tunnel.underlay.port }, options.a)
  return { a, b }
}

const udpPacket = (src: IpAddress, dst: IpAddress, byte: number) => buildIp({ src, dst, protocol: PROTO_UDP, payload: new Uint8Array([0, 1, 0, 2, 0, 9, 0, 0, byte]) })
const isUdpEnding = (byte: number) => (packet: Uint8Array) => parseIp(packet).protocol === PROTO_UDP && packet.at(-1) === byte
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('openUdpTunnel', () => {
  it('carries the first packet through the handshake it triggers, and the responder answers the endpoint it learned', async () => {
    const { a, b } = await pair()
    const peerOfB = b.tunnel.peers[0]!
    expect(b.tunnel.core.peerRoute(peerOfB)).toBeUndefined()
    a.tunnel.overlay.inject([udpPacket(A, B, 7)])
    await b.arrival(isUdpEnding(7))
    expect(b.tunnel.core.peerRoute(peerOfB)).toEqual({ underlay: b.tunnel.underlayId, endpoint: { address: '127.0.0.1', port: a.tunnel.underlay.port } })
    b.tunnel.overlay.inject([udpPacket(B, A, 8)])
    await a.arrival(isUdpEnding(8))
    expect(a.tunnel.core.stats(a.tunnel.peers[0]!)).toMatchObject({ txPackets: 1, rxPackets: 1 })
  })

  it('counts packets it cannot send: no AllowedIPs match, or a peer not heard from yet', async () => {
    const { a, b } = await pair()
    b.tunnel.overlay.inject([udpPacket(B, A, 1)])
    a.tunnel.overlay.inject([udpPacket(A, parseAddress('192.168.1.1'), 1), new Uint8Array([0x00, 1, 2])])
    await settle()
    expect(b.tunnel.core.stats(b.tunnel.peers[0]!).drops).toEqual({ 'no-endpoint': 1 })
    expect(a.tunnel.core.drops()).toMatchObject({ 'no-route': 1, 'malformed-ip': 1 })
  })

  it('has its stack answer pings over the tunnel (no separate echo responder)', async () => {
    const { a, b } = await pair()
    expect(await a.tunnel.sockets.ping('10.0.0.2', { timeout: 5000 })).toBeGreaterThan(0)
    const request = buildIp({ src: A, dst: B, protocol: PROTO_ICMP, payload: buildEcho({ kind: 'request', id: 5, seq: 1, data: new Uint8Array([9, 8, 7]) }, 4, A, B) })
    a.tunnel.overlay.inject([request])
    const reply = parseIp(await a.arrival((p) => parseIp(p).protocol === PROTO_ICMP && parseEcho(parseIp(p).payload, 4, B, A)?.id === 5))
    expect(parseEcho(reply.payload, 4, reply.src, reply.dst)).toMatchObject({ kind: 'reply', id: 5, seq: 1, data: new Uint8Array([9, 8, 7]) })
    expect(b.tunnel.core.stats(b.tunnel.peers[0]!)).toMatchObject({ rxPackets: 2, txPackets: 2 })
  })

  it('drops inbound packets whose inner source is outside the peer’s AllowedIPs', async () => {
    const { a, b } = await pair()
    a.tunnel.overlay.inject([udpPacket(parseAddress('10.0.0.99'), B, 1), udpPacket(A, B, 2)])
    await b.arrival(isUdpEnding(2))
    expect(b.inbound.filter(isUdpEnding(1))).toHaveLength(0)
    expect(b.tunnel.core.stats(b.tunnel.peers[0]!).drops).toEqual({ 'source-not-allowed': 1 })
  })

  it('roams to the new endpoint of a peer that comes back from another port', async () => {
    const { a, b } = await pair()
    a.tunnel.overlay.inject([udpPacket(A, B, 1)])
    await b.arrival(isUdpEnding(1))
    const moved = await node(a.keys, A, { publicKey: b.keys.publicKey, allowed: '10.0.0.0/24', port: b.tunnel.underlay.port })
    moved.tunnel.overlay.inject([udpPacket(A, B, 2)])
    await b.arrival(isUdpEnding(2))
    expect(b.tunnel.core.peerRoute(b.tunnel.peers[0]!)?.endpoint).toEqual({ address: '127.0.0.1', port: moved.tunnel.underlay.port })
    b.tunnel.overlay.inject([udpPacket(B, A, 3)])
    await moved.arrival(isUdpEnding(3))
    expect(a.inbound.filter(isUdpEnding(3))).toHaveLength(0)
  })

  it('under load answers with a cookie reply, and accepts the retry whose MAC2 is keyed to the sender’s UDP address and port', async () => {
    const underlay = await UdpUnderlay.open({ ipv6: false })
    let cookieReplies = 0
    const send = underlay.send.bind(underlay)
    underlay.send = (endpoint, datagrams) => {
      for (const datagram of datagrams) if (datagram[0] === 3 && datagram.length === 64) cookieReplies++
      send(endpoint, datagrams)
    }
    const clock = new ManualClock(1000)
    const { a, b } = await pair({ a: { clock }, b: { underlay, handshakesPerSecondUnderLoad: 0 } })
    a.tunnel.overlay.inject([udpPacket(A, B, 5)])
    while (cookieReplies === 0) await settle()
    // Let the cookie reply reach `a` before its handshake retry comes due.
    while (a.tunnel.driver.counters.underlayBatches === 0) await settle()
    expect(b.inbound).toHaveLength(0)
    // REKEY_TIMEOUT (5 s) plus jitter later, `a` retries with MAC2; time stands still again once `b` has it.
    while (underlay.counters.received < 2) {
      if (!clock.fireNext(clock.now() + 6000)) clock.set(clock.now() + 100)
      await settle()
    }
    await b.arrival(isUdpEnding(5))
    expect(cookieReplies).toBe(1)
    // Only the first initiation lacked MAC2; a MAC2 over the wrong address bytes would have earned more cookie replies.
    expect(b.tunnel.core.drops()['bad-mac2']).toBe(1)
  })

  it('sleeps at most the 5 s idle cap when nothing is scheduled, and never wakes in vain', async () => {
    const clock = new ManualClock(1000)
    const tunnel = await openUdpTunnel(config(generateKeyPair(), A, { publicKey: generateKeyPair().publicKey, allowed: '10.0.0.0/24' }), { clock })
    cleanups.push(() => tunnel.close())
    await settle()
    expect(tunnel.driver.wakeupAt).toBe(1000 + MAX_IDLE_SLEEP)
    expect(clock.fireNext(1000 + MAX_IDLE_SLEEP)).toBe(true)
    await settle()
    expect(tunnel.driver.wakeupAt).toBe(1000 + 2 * MAX_IDLE_SLEEP)
    expect(tunnel.driver.counters).toMatchObject({ timerWakeups: 1, idleWakeups: 1, wastedWakeups: 0 })
  })

  it('refuses a config without an overlay address and names an Endpoint host it cannot resolve', async () => {
    const keys = generateKeyPair()
    const noAddress = config(keys, A, { publicKey: generateKeyPair().publicKey, allowed: '10.0.0.0/24' })
    noAddress.interface.addresses = []
    await expect(openUdpTunnel(noAddress)).rejects.toThrow(/no Address/)
    const badHost = config(keys, A, { publicKey: generateKeyPair().publicKey, allowed: '10.0.0.0/24', port: 51820 })
    badHost.peers[0]!.endpoint!.host = 'no-such-host.invalid'
    await expect(openUdpTunnel(badHost)).rejects.toThrow(EndpointResolveError)
  })
})
