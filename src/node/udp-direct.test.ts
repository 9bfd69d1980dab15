// Two dataplanes, each with a UdpDirectManager, joined by an in-memory relay and an in-memory UDP
// network in which each node sits behind a NAT that admits a datagram only from an endpoint its
// node has sent to (address-and-port-dependent filtering, as Linux MASQUERADE + conntrack does),
// with a real STUN responder (src/server/stun) on the "internet". Everything above the sockets is
// real: disco sealing, CallMeMaybe over the relay, probes, path selection, routes, WireGuard.
import { describe, expect, it } from 'vitest'
import { formatNodeKey, generateKeyPair, toHex } from '../crypto/index.ts'
import { ManualClock } from '../clock/clock.ts'
import { DataplaneCore } from '../dataplane/core.ts'
import { DataplaneDriver } from '../dataplane/driver.ts'
import type { UnderlayTransport } from '../dataplane/transport.ts'
import { PROTO_UDP, buildIp, parseAddress, parsePrefix } from '../wire/index.ts'
import { DiscoKeyring } from '../underlay/disco/envelope.ts'
import { formatEndpoint, type UdpEndpoint } from '../underlay/udp/udp-underlay.ts'
import { StunResponder } from '../server/stun/server.ts'
import { DEAD_AFTER_MS, UdpDirectManager, fromAddrPort, stunEndpoints, toAddrPort, type UdpSocketLike } from './udp-direct.ts'
import { MemoryOverlay, runUntilSettled, settle } from '../dataplane/testing/memory-overlay.ts'

const isData = (d: Uint8Array): boolean => d[0] === 4 && d[1] === 0 && d[2] === 0 && d[3] === 0

/** The relay: endpoints are node keys, delivery asynchronous; counts WireGuard data datagrams. */
function relay() {
  const ends = new Map<string, (from: Uint8Array, d: Uint8Array[]) => void>()
  const counts = { data: 0 }
  const endFor = (me: Uint8Array): UnderlayTransport<Uint8Array> => ({
    start(deliver) {
      ends.set(toHex(me), deliver)
    },
    stop() {},
    send(to, datagrams) {
      counts.data += datagrams.filter(isData).length
      setImmediate(() => ends.get(toHex(to))?.(me, datagrams))
    },
  })
  return { endFor, counts }
}

const STUN: UdpEndpoint = { address: '203.0.113.1', port: 3478 }

/** The "internet": public endpoints, one NAT per node, and the STUN server. */
function internet() {
  const nats = new Map<string, Nat>()
  const stun = new StunResponder()
  const counts = { data: 0, dropped: 0 }
  class Nat implements UdpSocketLike {
    readonly port = 41641
    /** Endpoints the node has sent to: the only ones whose datagrams the NAT lets in. */
    readonly allowed = new Set<string>()
    blocked = false
    private deliver: ((from: UdpEndpoint, d: Uint8Array[]) => void) | undefined
    constructor(readonly publicEndpoint: UdpEndpoint) {
      nats.set(formatEndpoint(publicEndpoint), this)
    }
    start(deliver: (from: UdpEndpoint, d: Uint8Array[]) => void): void {
      this.deliver = deliver
    }
    stop(): void {
      this.deliver = undefined
    }
    send(to: UdpEndpoint, datagrams: Uint8Array[]): void {
      if (this.blocked) return
      this.allowed.add(formatEndpoint(to))
      const from = this.publicEndpoint
      if (to.address === STUN.address && to.port === STUN.port) {
        for (const d of datagrams) {
          const reply = stun.handle(d, { family: 4, address: parseAddress(from.address), port: from.port })
          if (reply) setImmediate(() => this.receive(STUN, [reply]))
        }
        return
      }
      counts.data += datagrams.filter(isData).length
      const target = nats.get(formatEndpoint(to))
      if (!target) counts.dropped += datagrams.length
      else setImmediate(() => target.receive(from, datagrams))
    }
    receive(from: UdpEndpoint, datagrams: Uint8Array[]): void {
      if (this.blocked || !this.allowed.has(formatEndpoint(from))) {
        counts.dropped += datagrams.length
        return
      }
      this.deliver?.({ ...from }, datagrams)
    }
    /** `conntrack -F`: every mapping is forgotten. */
    flush(): void {
      this.allowed.clear()
    }
  }
  return { Nat, counts }
}

function node(clock: ManualClock, address: string, publicAddress: string, net: ReturnType<typeof relay>, inet: ReturnType<typeof internet>) {
  const keys = generateKeyPair()
  const disco = generateKeyPair()
  const core = new DataplaneCore({ privateKey: keys.privateKey })
  // The driver needs the disco handler before the manager (which needs the driver) exists.
  const late: { manager?: UdpDirectManager } = {}
  const driver = new DataplaneDriver(core, { clock, onDisco: (d) => late.manager?.handleDisco(d) })
  const overlay = new MemoryOverlay()
  driver.addOverlay(overlay, [parsePrefix(address)])
  const relayUnderlay = driver.addUnderlay(net.endFor(keys.publicKey))
  const nat = new inet.Nat({ address: publicAddress, port: 30000 + Number(address.split('.')[3]!.split('/')[0]) })
  const claims: string[] = []
  const changes: string[] = []
  const errors: unknown[] = []
  const manager = (late.manager = new UdpDirectManager({
    context: { core, driver, reportError: (e) => errors.push(e) },
    discoPrivateKey: disco.privateKey,
    homeRelayUnderlay: relayUnderlay,
    clock,
    socket: nat,
    localAddresses: [`192.168.${address.split('.')[3]!.split('/')[0]}.2`],
    claim: (nodeKey) => claims.push(nodeKey),
    onPathChange: (_nodeKey, path) => changes.push(path),
  }))
  manager.setIceServers([{ urls: `stun:${STUN.address}:${STUN.port}` }, { urls: 'turn:203.0.113.1:3479' }])
  return { keys, disco, core, driver, overlay, relayUnderlay, nat, manager, claims, changes, errors, late }
}

function pair() {
  const clock = new ManualClock(1000)
  const net = relay()
  const inet = internet()
  const a = node(clock, '10.0.0.1/32', '198.51.100.1', net, inet)
  const b = node(clock, '10.0.0.2/32', '198.51.100.2', net, inet)
  for (const [me, other, ip] of [
    [a, b, '10.0.0.2/32'],
    [b, a, '10.0.0.1/32'],
  ] as const) {
    me.driver.withCore((core) => {
      const peer = core.addPeer({ publicKey: other.keys.publicKey, allowedIps: [parsePrefix(ip)] })
      core.setPeerRoute(peer, me.relayUnderlay, other.keys.publicKey)
    })
    me.manager.setPeer(formatNodeKey(other.keys.publicKey), formatNodeKey(other.disco.publicKey), me.relayUnderlay)
  }
  const close = (): void => {
    for (const n of [a, b]) {
      n.manager.stop()
      n.driver.stop()
    }
  }
  return { clock, net, inet, a, b, close }
}

const udp = (src: string, dst: string, body: string): Uint8Array =>
  buildIp({ src: parseAddress(src), dst: parseAddress(dst), protocol: PROTO_UDP, payload: new TextEncoder().encode(body) })

async function talk(env: ReturnType<typeof pair>, until: number): Promise<void> {
  const { clock, a, b } = env
  while (clock.now() < until) {
    a.overlay.inject([udp('10.0.0.1', '10.0.0.2', `a${clock.now()}`)])
    b.overlay.inject([udp('10.0.0.2', '10.0.0.1', `b${clock.now()}`)])
    await runUntilSettled(clock, Math.min(until, clock.now() + 500))
  }
}

describe('UdpDirectManager', () => {
  it('finds both public endpoints (STUN, CallMeMaybe over the relay), trusts UDP on the first probe pong and then WireGuard data leaves the relay', async () => {
    const env = pair()
    try {
      const { net, inet, a, b } = env
      // No traffic yet and the clock still at 1000: discovery ran as soon as the peers were set.
      for (let i = 0; i < 10 && (a.changes.length === 0 || b.changes.length === 0); i++) await settle()
      expect(env.clock.now()).toBe(1000)
      expect(a.changes).toEqual(['direct'])
      expect(b.changes).toEqual(['direct'])
      expect(a.claims).toEqual([formatNodeKey(b.keys.publicKey)])
      expect(b.claims).toEqual([formatNodeKey(a.keys.publicKey)])
      expect(a.manager.debugInfo().endpoints).toEqual(['192.168.1.2:41641', '198.51.100.1:30001'])
      expect(a.manager.peerInfo(formatNodeKey(b.keys.publicKey))).toMatchObject({ claimed: true, direct: 'open', path: 'direct', best: '198.51.100.2:30002' })
      // B saw A at its NAT's address, not its own: a server-reflexive pair.
      expect(a.manager.pathOf(formatNodeKey(b.keys.publicKey))).toMatchObject({ path: 'direct', endpoint: '198.51.100.2:30002', candidates: { local: 'srflx' } })
      expect(a.manager.counters.stunAnswered).toBe(1)
      expect(a.manager.counters.callMeMaybeReceived).toBeGreaterThanOrEqual(1)
      await talk(env, 4000)
      const relayed = net.counts.data
      const overUdp = inet.counts.data
      const received = b.overlay.received.length
      await talk(env, 10_000)
      expect(net.counts.data).toBe(relayed)
      expect(inet.counts.data).toBeGreaterThan(overUdp + 10)
      expect(b.overlay.received.length).toBeGreaterThan(received + 10)
      // Heartbeats keep it trusted.
      expect(a.changes).toEqual(['direct'])
      expect(a.errors).toEqual([])
    } finally {
      env.close()
    }
  })

  it('when the NATs forget their mappings and drop UDP, data goes on both paths, then on the relay alone, and UDP returns once it flows again', async () => {
    const env = pair()
    try {
      const { net, a, b } = env
      await talk(env, 4000)
      expect(a.changes).toEqual(['direct'])
      for (const n of [a, b]) {
        n.nat.flush()
        n.nat.blocked = true
      }
      const receivedBefore = b.overlay.received.length
      // Trust lapses 6.5 s after the last pong (≤ 3 s before the flush): both paths, counted as mirrored.
      await talk(env, 4000 + 7000)
      expect(a.changes).toEqual(['direct', 'relay'])
      expect(a.manager.counters.mirroredToRelay).toBeGreaterThan(0)
      expect(b.overlay.received.length).toBeGreaterThan(receivedBefore)
      await talk(env, 4000 + DEAD_AFTER_MS + 1000)
      expect(a.manager.counters.pathsClosed).toBe(1)
      expect(a.manager.peerInfo(formatNodeKey(b.keys.publicKey))).toMatchObject({ direct: expect.stringMatching(/none|connecting/), best: null })
      const relayed = net.counts.data
      const received = b.overlay.received.length
      await talk(env, 4000 + DEAD_AFTER_MS + 3000)
      expect(net.counts.data).toBeGreaterThan(relayed)
      expect(b.overlay.received.length).toBeGreaterThan(received)
      for (const n of [a, b]) n.nat.blocked = false
      // Rediscovery runs with backoff (≤ 10 s): CallMeMaybe and probes punch new mappings.
      await talk(env, 4000 + DEAD_AFTER_MS + 3000 + 12_000)
      expect(a.changes).toEqual(['direct', 'relay', 'direct'])
      expect(b.changes.at(-1)).toBe('direct')
      const relayedAfter = net.counts.data
      await talk(env, 4000 + DEAD_AFTER_MS + 3000 + 16_000)
      expect(net.counts.data).toBe(relayedAfter)
    } finally {
      env.close()
    }
  })

  it('a peer that never answers over UDP (a browser tab) is never claimed and keeps its relay route', async () => {
    const clock = new ManualClock(1000)
    const net = relay()
    const inet = internet()
    const a = node(clock, '10.0.0.1/32', '198.51.100.1', net, inet)
    const tab = generateKeyPair()
    const tabDisco = generateKeyPair()
    try {
      a.driver.withCore((core) => core.setPeerRoute(core.addPeer({ publicKey: tab.publicKey, allowedIps: [parsePrefix('10.0.0.9/32')] }), a.relayUnderlay, tab.publicKey))
      a.manager.setPeer(formatNodeKey(tab.publicKey), formatNodeKey(tabDisco.publicKey), a.relayUnderlay)
      await runUntilSettled(clock, 60_000)
      expect(a.claims).toEqual([])
      expect(a.changes).toEqual([])
      expect(a.manager.pathOf(formatNodeKey(tab.publicKey))).toBeUndefined()
      const sent = a.manager.counters.callMeMaybeSent
      expect(sent).toBeGreaterThan(0)
      // Backoff caps the attempts at one per 10 s (+ the 5 s each waits for a pong).
      expect(sent).toBeLessThanOrEqual(12)
      a.driver.withCore((core) => expect(core.stats(core.peerByKey(tab.publicKey)!).route?.underlay).toBe(a.relayUnderlay))
    } finally {
      a.manager.stop()
      a.driver.stop()
    }
  })

  it('leaves relay disco other than CallMeMaybe to WebRTC, and counts garbage and strangers on its socket without disturbing the path', async () => {
    const env = pair()
    try {
      const { a, b } = env
      await talk(env, 2000)
      const relayPing = new DiscoKeyring(b.disco.privateKey).seal(a.manager.keyring.publicKey, { type: 'ping', txId: new Uint8Array(12), nodeKey: b.keys.publicKey, padding: 0 })
      expect(a.manager.handleDisco({ underlay: a.relayUnderlay, endpoint: b.keys.publicKey, datagram: relayPing })).toBe(false)
      const udpUnderlay = a.core.stats(a.core.peerByKey(b.keys.publicKey)!).route!.underlay
      const stranger = new DiscoKeyring(generateKeyPair().privateKey).seal(a.manager.keyring.publicKey, { type: 'call-me-maybe', endpoints: [] })
      const from = { address: '198.51.100.66', port: 1 }
      expect(a.manager.handleDisco({ underlay: udpUnderlay, endpoint: from, datagram: stranger })).toBe(true)
      expect(a.manager.handleDisco({ underlay: udpUnderlay, endpoint: from, datagram: new Uint8Array([0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac, 1, 2, 3]) })).toBe(true)
      expect(a.manager.counters.discoRejected).toBe(2)
      await talk(env, 5000)
      expect(a.changes).toEqual(['direct'])
      expect(a.manager.peerInfo(formatNodeKey(b.keys.publicKey))!.candidates).not.toContain('198.51.100.66:1')
    } finally {
      env.close()
    }
  })

  it('a peer that restarts with the same keys on a new port: its CallMeMaybe without the endpoint in use sends data back to the relay at once, and UDP is proven again', async () => {
    const env = pair()
    try {
      const { net, inet, a, b } = env
      await talk(env, 4000)
      expect(a.changes).toEqual(['direct'])
      // B's process restarts: same node and disco keys, a new socket behind a new NAT port.
      b.manager.stop()
      const b2nat = new inet.Nat({ address: '198.51.100.2', port: 30099 })
      const b2 = new UdpDirectManager({
        context: { core: b.core, driver: b.driver, reportError: (e) => b.errors.push(e) },
        discoPrivateKey: b.disco.privateKey,
        homeRelayUnderlay: b.relayUnderlay,
        clock: env.clock,
        socket: b2nat,
        localAddresses: ['192.168.2.2'],
        claim: () => {},
        onPathChange: () => {},
      })
      b.late.manager = b2
      b.driver.withCore((core) => core.setPeerRoute(core.peerByKey(a.keys.publicKey)!, b.relayUnderlay, a.keys.publicKey))
      ;(b as { manager: UdpDirectManager }).manager = b2
      b2.setIceServers([{ urls: `stun:${STUN.address}:${STUN.port}` }])
      const relayedBefore = net.counts.data
      b2.setPeer(formatNodeKey(a.keys.publicKey), formatNodeKey(a.disco.publicKey), b.relayUnderlay)
      // Before any pong could time out (the clock has not moved), A has left the dead endpoint.
      for (let i = 0; i < 10 && !a.changes.includes('relay'); i++) await settle()
      expect(env.clock.now()).toBe(4000)
      expect(a.changes).toEqual(['direct', 'relay', 'direct'].slice(0, a.changes.length))
      expect(a.manager.counters.pathsClosed).toBe(1)
      await talk(env, 8000)
      expect(a.changes).toEqual(['direct', 'relay', 'direct'])
      expect(a.manager.pathOf(formatNodeKey(b.keys.publicKey))).toMatchObject({ path: 'direct', endpoint: '198.51.100.2:30099' })
      expect(net.counts.data).toBeGreaterThanOrEqual(relayedBefore)
    } finally {
      env.close()
    }
  })
})

describe('UDP direct helpers', () => {
  it('reads stun: URLs of ICE servers (RFC 7064: default port 3478, IPv6 in brackets) and skips TURN and stuns:', () => {
    expect(stunEndpoints([{ urls: 'stun:relay.example' }, { urls: ['stun:[2001:db8::1]:3479', 'turn:relay.example:3478?transport=udp', 'stuns:x:5349'] }])).toEqual([
      { address: 'relay.example', port: 3478 },
      { address: '2001:db8::1', port: 3479 },
    ])
    expect(stunEndpoints([{ urls: 'stun:host:99999' }])).toEqual([])
  })

  it('writes IPv4 endpoints v4-mapped as disco does on the wire, and reads them back; the unspecified address is no endpoint', () => {
    const v4 = toAddrPort({ address: '198.51.100.7', port: 41641 })
    expect([...v4.ip]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7])
    expect(fromAddrPort(v4)).toEqual({ address: '198.51.100.7', port: 41641 })
    expect(fromAddrPort(toAddrPort({ address: '2001:db8::5', port: 1 }))).toEqual({ address: '2001:db8::5', port: 1 })
    expect(fromAddrPort({ ip: new Uint8Array(16), port: 0 })).toBeUndefined()
  })
})
