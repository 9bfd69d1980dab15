// Two dataplanes joined by an in-memory relay, each with a WebRtcUnderlay and DirectPaths: the
// page side is played by a Node stand-in that joins in-memory channels over the bridge port
// (RTCPeerConnection itself is exercised by e2e/webrtc.test.ts). Everything above it is real:
// disco sealing, signalling over the relay, path selection, routes and the WireGuard tunnel.
import { describe, expect, it } from 'vitest'
import { generateKeyPair, toHex } from '../../crypto/index.ts'
import { ManualClock } from '../../clock/clock.ts'
import { DataplaneCore } from '../../dataplane/core.ts'
import { DataplaneDriver } from '../../dataplane/driver.ts'
import type { UnderlayTransport } from '../../dataplane/transport.ts'
import { PROTO_UDP, buildIp, parseAddress, parsePrefix } from '../../wire/index.ts'
import { DiscoKeyring } from '../disco/envelope.ts'
import { DirectPaths } from './direct-paths.ts'
import { bridgeDataChannel } from './port-channel.ts'
import type { PageToWorkerMessage, WorkerToPageMessage } from './control-protocol.ts'
import { MemoryChannel } from './testing/memory-channel.ts'
import { WebRtcUnderlay } from './webrtc-underlay.ts'
import { MemoryOverlay, runUntilSettled, settle } from '../../dataplane/testing/memory-overlay.ts'

/** The relay: endpoints are node keys, delivery is asynchronous; counts WireGuard data datagrams. */
function relay() {
  const ends = new Map<string, { deliver?: (from: Uint8Array, d: Uint8Array[]) => void }>()
  const counts = { data: 0, disco: 0 }
  const endFor = (me: Uint8Array): UnderlayTransport<Uint8Array> => {
    const state: { deliver?: (from: Uint8Array, d: Uint8Array[]) => void } = {}
    ends.set(toHex(me), state)
    return {
      start(deliver) {
        state.deliver = deliver
      },
      stop() {},
      send(to, datagrams) {
        for (const d of datagrams) {
          if (d[0] === 4) counts.data++
          if (d[0] === 0x54) counts.disco++
        }
        setImmediate(() => ends.get(toHex(to))?.deliver?.(me, datagrams))
      },
    }
  }
  return { endFor, counts }
}

/** Plays the page: joins two in-memory channels when one side offers and the other answers. */
class NodePageStandIn {
  static pending = new Map<number, MemoryChannel>()
  channels: MemoryChannel[] = []
  constructor(private readonly port: MessagePort) {
    port.onmessage = (event: MessageEvent) => this.onMessage(event.data as WorkerToPageMessage)
  }
  private onMessage(message: WorkerToPageMessage): void {
    if (message.type === 'connect') {
      const [mine, theirs] = MemoryChannel.pair()
      NodePageStandIn.pending.set(message.session, theirs)
      this.handOver(message.peer, message.session, mine)
      this.post({ type: 'signal', peer: message.peer, signal: { session: message.session, kind: 'offer', sdp: `memory:${message.session}` } })
    } else if (message.type === 'signal' && message.signal.kind === 'offer') {
      const theirs = NodePageStandIn.pending.get(message.signal.session)!
      this.handOver(message.peer, message.signal.session, theirs)
      this.post({ type: 'signal', peer: message.peer, signal: { session: message.signal.session, kind: 'answer', sdp: 'memory' } })
      theirs.open()
    } else if (message.type === 'close') {
      for (const channel of this.channels) channel.close()
    }
  }
  private handOver(peer: string, session: number, channel: MemoryChannel): void {
    this.channels.push(channel)
    const { port1, port2 } = new MessageChannel()
    bridgeDataChannel(channel, port1)
    this.post({ type: 'bridged', peer, session, port: port2 }, [port2])
  }
  private post(message: PageToWorkerMessage, transfer: Transferable[] = []): void {
    this.port.postMessage(message, transfer)
  }
  close(): void {
    this.port.close()
  }
}

function node(clock: ManualClock, address: string, net: ReturnType<typeof relay>, attemptOnPeerKnown = false, holdAttemptsUntil?: number) {
  const keys = generateKeyPair()
  const disco = generateKeyPair()
  const core = new DataplaneCore({ privateKey: keys.privateKey })
  const driver = new DataplaneDriver(core, { clock, onDisco: (d) => paths.handleDisco(d) })
  const overlay = new MemoryOverlay()
  driver.addOverlay(overlay, [parsePrefix(address)])
  const relayUnderlay = driver.addUnderlay(net.endFor(keys.publicKey))
  const control = new MessageChannel()
  const page = new NodePageStandIn(control.port1)
  const webrtc = new WebRtcUnderlay(control.port2, { ourKey: keys.publicKey })
  const webrtcUnderlay = driver.addUnderlay(webrtc)
  const changes: string[] = []
  /** How far ahead each DirectPaths timer was set, to check its wake-up cadence. */
  const pathTimerDelays: number[] = []
  const pathsClock = {
    now: () => clock.now(),
    setTimer: (at: number, callback: () => void) => {
      pathTimerDelays.push(at - clock.now())
      return clock.setTimer(at, callback)
    },
  }
  const paths: DirectPaths = new DirectPaths({
    driver,
    discoPrivateKey: disco.privateKey,
    relayUnderlay,
    webrtc,
    webrtcUnderlay,
    clock: pathsClock,
    attemptOnPeerKnown,
    ...(holdAttemptsUntil !== undefined ? { holdAttemptsUntil } : {}),
    onPathChange: (_peer, path) => changes.push(path),
  })
  return { keys, disco, core, driver, overlay, relayUnderlay, webrtc, webrtcUnderlay, paths, page, changes, pathTimerDelays }
}

function pair(attemptOnPeerKnown = false, bAttemptsOnPeerKnown = attemptOnPeerKnown, holds: { a?: number; b?: number } = {}) {
  const clock = new ManualClock(1000)
  const net = relay()
  const a = node(clock, '10.0.0.1/32', net, attemptOnPeerKnown, holds.a)
  const b = node(clock, '10.0.0.2/32', net, bAttemptsOnPeerKnown, holds.b)
  for (const [me, other, ip] of [
    [a, b, '10.0.0.2/32'],
    [b, a, '10.0.0.1/32'],
  ] as const) {
    me.driver.withCore((core) => {
      const peer = core.addPeer({ publicKey: other.keys.publicKey, allowedIps: [parsePrefix(ip)] })
      core.setPeerRoute(peer, me.relayUnderlay, other.keys.publicKey)
    })
    me.paths.setPeer(other.keys.publicKey, other.disco.publicKey)
  }
  const close = (): void => {
    for (const n of [a, b]) {
      n.paths.stop()
      n.driver.stop()
      n.page.close()
    }
  }
  return { clock, net, a, b, close }
}

const udp = (src: string, dst: string, body: string): Uint8Array =>
  buildIp({ src: parseAddress(src), dst: parseAddress(dst), protocol: PROTO_UDP, payload: new TextEncoder().encode(body) })

/** Sends one packet each way every 500 ms until `until`, keeping both peers active. */
async function talk(env: ReturnType<typeof pair>, until: number): Promise<void> {
  const { clock, a, b } = env
  while (clock.now() < until) {
    a.overlay.inject([udp('10.0.0.1', '10.0.0.2', `a${clock.now()}`)])
    b.overlay.inject([udp('10.0.0.2', '10.0.0.1', `b${clock.now()}`)])
    await runUntilSettled(clock, Math.min(until, clock.now() + 500))
  }
}

/** Traffic starts at 1 s; an idle DirectPaths reads counters every 5 s, so by 7 s it is direct. */
const DIRECT_BY = 7000

describe('DirectPaths with WebRtcUnderlay', () => {
  it('moves active peers to a trusted direct path, then data stops using the relay', async () => {
    const env = pair()
    try {
      const { net, a, b } = env
      await talk(env, DIRECT_BY)
      expect(a.webrtc.isOpen(b.keys.publicKey)).toBe(true)
      expect(b.webrtc.isOpen(a.keys.publicKey)).toBe(true)
      expect(a.changes).toEqual(['direct'])
      expect(b.changes).toEqual(['direct'])
      expect(a.paths.status(b.keys.publicKey)).toMatchObject({ path: 'direct', direct: 'open' })
      expect(a.paths.counters.signalsSent + b.paths.counters.signalsSent).toBeGreaterThanOrEqual(2)
      expect(a.paths.counters.pongsMatched).toBeGreaterThan(0)
      const relayed = net.counts.data
      const receivedBefore = b.overlay.received.length
      await talk(env, DIRECT_BY + 6000)
      expect(net.counts.data).toBe(relayed)
      expect(b.overlay.received.length).toBeGreaterThan(receivedBefore + 10)
      // Heartbeats every 3 s keep it trusted.
      expect(a.changes).toEqual(['direct'])
    } finally {
      env.close()
    }
  })

  it('falls back to the relay when the channel dies, and keeps delivering', async () => {
    const env = pair()
    try {
      const { net, a, b } = env
      await talk(env, DIRECT_BY)
      expect(a.changes).toEqual(['direct'])
      for (const channel of [...a.page.channels, ...b.page.channels]) channel.close()
      await talk(env, DIRECT_BY + 600)
      expect(a.changes).toEqual(['direct', 'relay'])
      expect(a.paths.status(b.keys.publicKey)).toMatchObject({ path: 'relay', direct: 'none', failures: 1 })
      const relayed = net.counts.data
      const received = b.overlay.received.length
      await talk(env, DIRECT_BY + 1200)
      expect(net.counts.data).toBeGreaterThan(relayed)
      expect(b.overlay.received.length).toBeGreaterThan(received)
    } finally {
      env.close()
    }
  })

  it('sends on both paths once pongs stop, until they come back', async () => {
    const env = pair()
    try {
      const { net, a, b } = env
      await talk(env, DIRECT_BY)
      // B stops answering pings: drop disco messages it would send on the channel.
      const realSend = b.webrtc.send.bind(b.webrtc)
      b.webrtc.send = (endpoint, datagrams) =>
        realSend(
          endpoint,
          datagrams.filter((d) => d[0] !== 0x54),
        )
      await talk(env, DIRECT_BY + 8000)
      expect(a.changes).toEqual(['direct', 'relay'])
      expect(a.paths.counters.mirroredToRelay).toBeGreaterThan(0)
      const relayed = net.counts.data
      await talk(env, DIRECT_BY + 9000)
      expect(net.counts.data).toBeGreaterThan(relayed)
      b.webrtc.send = realSend
      await talk(env, DIRECT_BY + 13_000)
      expect(a.changes).toEqual(['direct', 'relay', 'direct'])
    } finally {
      env.close()
    }
  })

  it('an idle node reads traffic counters only every 5 s, and every second once a peer is active', async () => {
    const env = pair()
    try {
      const { clock, a } = env
      await runUntilSettled(clock, 60_000)
      expect(a.changes).toEqual([])
      expect(a.paths.status(env.b.keys.publicKey)).toMatchObject({ active: false, direct: 'none' })
      expect(a.pathTimerDelays.length).toBeGreaterThanOrEqual(11)
      expect(new Set(a.pathTimerDelays)).toEqual(new Set([5000]))
      a.pathTimerDelays.length = 0
      await talk(env, 60_000 + DIRECT_BY)
      expect(a.changes).toEqual(['direct'])
      expect(Math.max(...a.pathTimerDelays.slice(2))).toBeLessThanOrEqual(1000)
    } finally {
      env.close()
    }
  })

  it('rejects disco from strangers and garbage without disturbing the peer', async () => {
    const env = pair()
    try {
      const { a, b } = env
      const stranger = generateKeyPair()
      const forged = new DiscoKeyring(stranger.privateKey).seal(a.paths.discoPublicKey, { type: 'webrtc-signal', signal: { session: 1, kind: 'request' } })
      a.paths.handleDisco({ underlay: a.relayUnderlay, endpoint: b.keys.publicKey, datagram: forged })
      a.paths.handleDisco({ underlay: a.relayUnderlay, endpoint: b.keys.publicKey, datagram: new Uint8Array([0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac, ...new Uint8Array(70)]) })
      expect(a.paths.counters.discoRejected).toBe(2)
      await talk(env, DIRECT_BY)
      expect(a.changes).toEqual(['direct'])
    } finally {
      env.close()
    }
  })

  it('the side that waits for traffic (a Node peer) trusts a channel the other side opened at once: it pings when the channel opens, so its data is not mirrored to the relay', async () => {
    const env = pair(true, false)
    try {
      const { clock, a, b } = env
      for (let i = 0; i < 40 && (a.changes.length === 0 || b.changes.length === 0); i++) await settle()
      expect(clock.now()).toBe(1000)
      expect(b.webrtc.isOpen(a.keys.publicKey)).toBe(true)
      // Without traffic b is not active, yet a pong on the channel it was offered trusts it.
      expect(b.paths.status(a.keys.publicKey)).toMatchObject({ path: 'direct', direct: 'open' })
      expect(b.changes).toEqual(['direct'])
    } finally {
      env.close()
    }
  })

  it('with attemptOnPeerKnown, a peer goes direct the moment it is set: no traffic, no timer, every phase at the same instant', async () => {
    const env = pair(true)
    try {
      const { clock, a, b } = env
      // Only the relay's and the channels' asynchronous deliveries run; the manual clock stays at 1000.
      await settle()
      for (let i = 0; i < 20 && a.changes.length === 0; i++) await settle()
      expect(clock.now()).toBe(1000)
      expect(a.changes).toEqual(['direct'])
      expect(a.paths.status(b.keys.publicKey)).toMatchObject({ path: 'direct', direct: 'open', active: true })
      const phases = a.paths.phases(b.keys.publicKey)!
      expect(phases).toMatchObject({ known: 1000, attempt: 1000, open: 1000, trusted: 1000 })
      // Which side offers depends on the keys; between them both directions of signalling happened.
      const both = [phases, b.paths.phases(a.keys.publicKey)!]
      expect(both.some((p) => p.signalSent === 1000)).toBe(true)
      expect(both.some((p) => p.signalReceived === 1000)).toBe(true)
    } finally {
      env.close()
    }
  })

  it('with holdAttemptsUntil on both sides, a peer set at start is first tried when the hold ends, then goes direct', async () => {
    const env = pair(true, true, { a: 1100, b: 1100 })
    try {
      const { clock, a, b } = env
      for (let i = 0; i < 10; i++) await settle()
      expect(a.changes).toEqual([])
      expect(a.paths.phases(b.keys.publicKey)!.attempt).toBeUndefined()
      expect(b.paths.phases(a.keys.publicKey)!.attempt).toBeUndefined()
      // The hold is one timer, not a poll loop.
      expect(a.pathTimerDelays).toContain(100)
      while (clock.fireNext(1100));
      clock.set(1100)
      for (let i = 0; i < 20 && a.changes.length === 0; i++) await settle()
      expect(a.changes).toEqual(['direct'])
      expect(a.paths.phases(b.keys.publicKey)).toMatchObject({ known: 1000, attempt: 1100, trusted: 1100 })
    } finally {
      env.close()
    }
  })

  it('a node holding its own attempts still answers a peer that tries at once: both go direct before the hold ends', async () => {
    const env = pair(true, true, { a: 5000 })
    try {
      const { clock, a, b } = env
      for (let i = 0; i < 20 && (a.changes.length === 0 || b.changes.length === 0); i++) await settle()
      expect(clock.now()).toBe(1000)
      expect(a.changes).toEqual(['direct'])
      expect(b.changes).toEqual(['direct'])
    } finally {
      env.close()
    }
  })

  it('records each upgrade phase once: a retry after the channel died leaves the first times alone', async () => {
    const env = pair(true)
    try {
      const { clock, a, b } = env
      for (let i = 0; i < 20 && a.changes.length === 0; i++) await settle()
      const first = a.paths.phases(b.keys.publicKey)!
      for (const channel of [...a.page.channels, ...b.page.channels]) channel.close()
      await talk(env, 1000 + 5000)
      expect(a.changes).toEqual(['direct', 'relay', 'direct'])
      expect(a.paths.phases(b.keys.publicKey)).toEqual(first)
      expect(clock.now()).toBe(6000)
      expect(a.paths.phases(generateKeyPair().publicKey)).toBeUndefined()
    } finally {
      env.close()
    }
  })

  it('keeps a signal from a peer it does not know yet and applies it when the peer is set: the first offer is not lost', async () => {
    const clock = new ManualClock(1000)
    const net = relay()
    const x = node(clock, '10.0.0.1/32', net, true)
    const y = node(clock, '10.0.0.2/32', net, true)
    // The offering side (lower node key) learns of its peer first and signals at once.
    const [first, second] = x.webrtc.offersTo(y.keys.publicKey) ? [x, y] : [y, x]
    try {
      for (const [me, other, ip] of [
        [first, second, second === y ? '10.0.0.2/32' : '10.0.0.1/32'],
        [second, first, first === y ? '10.0.0.2/32' : '10.0.0.1/32'],
      ] as const) {
        me.driver.withCore((core) => core.setPeerRoute(core.addPeer({ publicKey: other.keys.publicKey, allowedIps: [parsePrefix(ip)] }), me.relayUnderlay, other.keys.publicKey))
      }
      first.paths.setPeer(second.keys.publicKey, second.disco.publicKey)
      await settle()
      expect(second.paths.counters.discoRejected).toBeGreaterThan(0)
      second.paths.setPeer(first.keys.publicKey, first.disco.publicKey)
      for (let i = 0; i < 20 && (first.changes.length === 0 || second.changes.length === 0); i++) await settle()
      expect(clock.now()).toBe(1000)
      expect(first.changes).toEqual(['direct'])
      expect(second.changes).toEqual(['direct'])
    } finally {
      for (const n of [x, y]) {
        n.paths.stop()
        n.driver.stop()
        n.page.close()
      }
    }
  })

  it('forgets early signals after 10 s: a peer set later starts its own attempt instead of answering a stale offer', async () => {
    const clock = new ManualClock(1000)
    const net = relay()
    const x = node(clock, '10.0.0.1/32', net, true)
    const y = node(clock, '10.0.0.2/32', net, true)
    const [first, second] = x.webrtc.offersTo(y.keys.publicKey) ? [x, y] : [y, x]
    try {
      first.paths.setPeer(second.keys.publicKey, second.disco.publicKey)
      await settle()
      const received = second.paths.counters.signalsReceived
      clock.set(12_000)
      second.paths.setPeer(first.keys.publicKey, first.disco.publicKey)
      await settle()
      // Nothing stale was replayed; the second side asked the offerer to start again instead.
      expect(second.paths.counters.signalsReceived).toBe(received)
      expect(second.paths.counters.signalsSent).toBeGreaterThan(0)
    } finally {
      for (const n of [x, y]) {
        n.paths.stop()
        n.driver.stop()
        n.page.close()
      }
    }
  })
})
