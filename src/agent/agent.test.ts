// The node agent against a scripted coordination server and relays that never answer: the peer
// map becomes dataplane peers (AllowedIPs /32 + /128, routed to their home relay over a `derp`
// underlay), deltas add, move and remove them, and a refused join leaves nothing running.
import { afterEach, describe, expect, it } from 'vitest'
import { formatNodeKey, generateKeyPair, toBase64 } from '../crypto/index.ts'
import { coordinationControlPlanes, relayUrlOf } from '../control/coordination-control-plane.ts'
import { MemoryKeyStore } from '../control/key-store.ts'
import { ManualClock, type DriverClock } from '../clock/clock.ts'
import { ScriptedSocket } from '../control/testing/scripted-socket.ts'
import type { PeerEntry } from '../control/protocol.ts'
import { peerEntry } from '../control/testing/peer-entry.ts'
import type { DerpDialer } from '../underlay/derp/dialer.ts'
import { DerpConnection } from '../underlay/derp/connection.ts'
import { MemoryNetwork } from '../underlay/derp/testing/memory-network.ts'
import type { WorkerMessage, WorkerStatus } from '../worker/protocol.ts'
import { EARLY_HANDSHAKE_PEERS, NodeAgent, type NodeAgentEnvironment } from './agent.ts'
import type { UdpDirect, UdpDirectParams, UdpDirectPath } from './udp-direct-hook.ts'
import type { NodeWorkerMessage } from './protocol.ts'

const serverKeys = generateKeyPair()
const challenge = { type: 'challenge', version: 1, serverKey: toBase64(serverKeys.publicKey), challenge: toBase64(new Uint8Array(32)) }
const HOME = 'http://relay.test:8080'

const peer = peerEntry

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (condition()) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`timed out waiting for ${what}`)
}

interface Harness {
  runtime: NodeAgent
  sockets: ScriptedSocket[]
  dialed: string[]
  closedStreams: string[]
  events: NodeWorkerMessage[]
  page: MessagePort
  call(id: number, call: unknown): void
  status(): WorkerStatus
}

const harnesses: Harness[] = []

/** `relays`: in-memory relay cores to dial instead of relays that never answer; the rest goes to the agent's environment. */
function harness(clock?: DriverClock, options: Partial<NodeAgentEnvironment> & { relays?: MemoryNetwork } = {}): Harness {
  const { relays, ...extraEnv } = options
  const sockets: ScriptedSocket[] = []
  const dialed: string[] = []
  const closedStreams: string[] = []
  const events: NodeWorkerMessage[] = []
  const hostMessages: WorkerMessage[] = []
  // Relays that never answer, unless the test brings in-memory relay cores.
  const dial: DerpDialer = (url, handlers) => {
    dialed.push(url)
    if (relays) return relays.dial(url, handlers)
    return { send() {}, bufferedAmount: 0, close: () => closedStreams.push(url) }
  }
  const runtime = new NodeAgent((message) => hostMessages.push(message), {
    dial,
    keyStore: () => new MemoryKeyStore(),
    controlPlane: coordinationControlPlanes({
      socketFactory: () => {
        const socket = new ScriptedSocket()
        sockets.push(socket)
        return socket
      },
    }),
    statsIntervalMs: 60_000,
    relayLoginWaitMs: 10,
    ...(clock ? { clock } : {}),
    ...extraEnv,
  })
  const channel = new MessageChannel()
  runtime.attachControl(channel.port2)
  channel.port1.onmessage = (event: MessageEvent) => events.push(event.data as NodeWorkerMessage)
  let statusId = 1000
  const h: Harness = {
    runtime,
    sockets,
    dialed,
    closedStreams,
    events,
    page: channel.port1,
    call: (id, call) => channel.port1.postMessage({ type: 'call', id, call }),
    status() {
      const id = statusId++
      runtime.handle({ id, request: { op: 'status' } })
      const answer = hostMessages.find((m) => m.type === 'result' && m.id === id)
      if (answer?.type !== 'result' || !answer.ok) throw new Error('no status')
      return answer.value as WorkerStatus
    },
  }
  harnesses.push(h)
  return h
}

async function joined(h: Harness, peers: PeerEntry[], extra: Record<string, unknown> = {}): Promise<void> {
  h.call(1, { op: 'join', options: { controlURL: HOME, hostname: 'me', storage: 'memory', keyName: 'node', authKey: 'bwauth-x', ...extra } })
  await until('the control socket', () => h.sockets.length === 1)
  const socket = h.sockets[0]!
  socket.deliver(challenge)
  await until('hello', () => socket.sent.some((m) => m.type === 'hello'))
  const hello = socket.sent.find((m) => m.type === 'hello') as unknown as { nodeKey: string; homeRelay: { url: string } }
  expect(hello.homeRelay).toEqual({ url: 'ws://relay.test:8080/derp' })
  const self = { ...peer(200), nodeKey: hello.nodeKey }
  socket.deliver({ type: 'welcome', self, network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' }, peers })
  await until('the join result', () => h.events.some((e) => e.type === 'result' && e.id === 1))
}

afterEach(() => {
  for (const h of harnesses.splice(0)) {
    h.runtime.dispose()
    h.page.close()
  }
})

describe('node agent', () => {
  it('derives the DERP URL from the control URL', () => {
    expect(relayUrlOf('http://relay.test:8080')).toBe('ws://relay.test:8080/derp')
    expect(relayUrlOf('https://relay.test/control?x=1')).toBe('wss://relay.test/derp')
  })

  it('mirrors the peer map into the dataplane, routed over DERP to each peer’s home relay', async () => {
    const h = harness()
    await joined(h, [peer(1), peer(2, { homeRelay: { url: 'https://far.test/derp' } })])
    const result = h.events.find((e) => e.type === 'result' && e.id === 1)
    expect(result).toMatchObject({ ok: true, value: { hostname: 'p200', addresses: ['100.64.0.200', 'fd00::200'], relayURL: 'ws://relay.test:8080/derp' } })
    expect(h.dialed.sort()).toEqual(['ws://relay.test:8080/derp', 'wss://far.test/derp'])
    let status = h.status()
    expect(status.underlays).toHaveLength(2)
    const byIps = (s: WorkerStatus) => Object.fromEntries(s.peers.map((p) => [p.allowedIps.join(' '), p.route?.underlay]))
    const routes = byIps(status)
    expect(Object.keys(routes).sort()).toEqual(['100.64.0.1/32 fd00::1/128', '100.64.0.2/32 fd00::2/128'])
    expect(routes['100.64.0.1/32 fd00::1/128']).not.toBe(routes['100.64.0.2/32 fd00::2/128'])

    // Peer 2 comes home to our relay: its route moves and the far relay is let go.
    const socket = h.sockets[0]!
    socket.deliver({ type: 'peers', upsert: [peer(2, { homeRelay: { url: 'ws://relay.test:8080/derp' } })], remove: [] })
    await until('the far relay to close', () => h.closedStreams.includes('wss://far.test/derp'))
    status = h.status()
    expect(status.underlays).toHaveLength(1)
    expect(new Set(Object.values(byIps(status)))).toEqual(new Set(status.underlays))

    // Peer 1 leaves, peer 3 joins.
    socket.deliver({ type: 'peers', upsert: [peer(3)], remove: [peer(1).nodeKey] })
    await until('the peer change', () => h.status().peers.some((p) => p.allowedIps[0] === '100.64.0.3/32'))
    expect(
      h
        .status()
        .peers.map((p) => p.allowedIps[0])
        .sort(),
    ).toEqual(['100.64.0.2/32', '100.64.0.3/32'])
    const latestPush = () => h.events.filter((e) => e.type === 'peers').at(-1)
    await until('the push of the new map', () => {
      const last = latestPush()
      return last?.type === 'peers' && last.peers.some((p) => p.hostname === 'p3')
    })
    const pushed = latestPush()
    expect(pushed?.type === 'peers' && pushed.peers.map((p) => [p.hostname, p.path, p.online])).toEqual([
      ['p2', 'relay', true],
      ['p3', 'relay', true],
    ])

    // Path selection (another extension) moves peer 3 onto a direct underlay: reported as such.
    const direct = new MessageChannel()
    h.runtime.handle({ id: 500, request: { op: 'add-underlay', spec: { kind: 'port', port: direct.port1 } } })
    const underlay = h.status().underlays.find((id) => !status.underlays.includes(id))!
    h.runtime.handle({ id: 501, request: { op: 'set-peer-route', publicKey: peer(3).nodeKey, underlay } })
    socket.deliver({ type: 'peers', upsert: [peer(3, { hostname: 'p3-renamed' })], remove: [] })
    await until('the renamed peer', () => {
      const last = latestPush()
      return last?.type === 'peers' && last.peers.some((p) => p.hostname === 'p3-renamed')
    })
    const moved = latestPush()
    expect(moved?.type === 'peers' && moved.peers.map((p) => [p.hostname, p.path])).toEqual([
      ['p2', 'relay'],
      ['p3-renamed', 'direct'],
    ])
    direct.port2.close()
  })

  it('starts the WireGuard handshake with the online peers of the first netmap at join, at most EARLY_HANDSHAKE_PEERS of them', async () => {
    const relays = new MemoryNetwork()
    const h = harness(undefined, { relays })
    // Peer 1 is a real relay client; the others are made up (the relay drops what is sent to them).
    const first = generateKeyPair()
    const firstConnection = new DerpConnection({ url: 'ws://relay.test:8080/derp', privateKey: first.privateKey, dial: relays.dial }).start()
    const atFirst: Uint8Array[] = []
    firstConnection.on('packet', (_source, packet) => atFirst.push(packet.slice()))
    await until('peer 1 at the relay', () => firstConnection.isConnected)
    const online = [peer(1, { nodeKey: formatNodeKey(first.publicKey) }), ...Array.from({ length: EARLY_HANDSHAKE_PEERS + 1 }, (_, i) => peer(i + 2))]
    await joined(h, [...online, peer(50, { online: false })])
    const relay = relays.relay('ws://relay.test:8080/derp')
    const unknown = () => relay.metrics.drops.get('unknown_dest') ?? 0
    await until('the initiations at the relay', () => atFirst.length === 1 && unknown() >= EARLY_HANDSHAKE_PEERS - 1)
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0))
    // No packet asked for any: a handshake initiation each (type 1, 148 bytes: WireGuard whitepaper 5.4.2) for the first 8 online peers.
    expect(atFirst.map((p) => [p.length, p[0]])).toEqual([[148, 1]])
    expect(unknown()).toBe(EARLY_HANDSHAKE_PEERS - 1)
    firstConnection.close()
  })

  it('with dialRelayEarly dials the relay serving the coordination before the welcome, and that one connection becomes home', async () => {
    const h = harness(undefined, { dialRelayEarly: true })
    h.call(1, { op: 'join', options: { controlURL: HOME, hostname: 'me', storage: 'memory', keyName: 'node', authKey: 'bwauth-x' } })
    await until('the control socket', () => h.sockets.length === 1)
    await until('the early relay dial', () => h.dialed.length === 1)
    expect(h.dialed).toEqual(['ws://relay.test:8080/derp'])
    const socket = h.sockets[0]!
    socket.deliver(challenge)
    await until('hello', () => socket.sent.some((m) => m.type === 'hello'))
    const hello = socket.sent.find((m) => m.type === 'hello') as unknown as { nodeKey: string }
    socket.deliver({ type: 'welcome', self: { ...peer(200), nodeKey: hello.nodeKey }, network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' }, peers: [peer(1)] })
    await until('the join result', () => h.events.some((e) => e.type === 'result' && e.id === 1))
    expect(h.events.find((e) => e.type === 'result' && e.id === 1)).toMatchObject({ ok: true, value: { relayURL: 'ws://relay.test:8080/derp' } })
    expect(h.dialed).toEqual(['ws://relay.test:8080/derp'])
    expect(h.closedStreams).toEqual([])
    expect(h.status().underlays).toHaveLength(1)
  })

  it('with dialRelayEarly a refused join closes the early relay connection and leaves the dataplane stopped', async () => {
    const h = harness(undefined, { dialRelayEarly: true })
    h.call(1, { op: 'join', options: { controlURL: HOME, hostname: 'me', storage: 'memory', keyName: 'node', authKey: 'bwauth-wrong' } })
    await until('the control socket', () => h.sockets.length === 1)
    h.sockets[0]!.deliver(challenge)
    await until('hello', () => h.sockets[0]!.sent.some((m) => m.type === 'hello'))
    h.sockets[0]!.deliver({ type: 'error', status: 401, error: 'authKey is unknown or already used', closing: true })
    await until('the join result', () => h.events.some((e) => e.type === 'result' && e.id === 1))
    expect(h.events.find((e) => e.type === 'result')).toMatchObject({ ok: false, error: { name: 'NodeJoinError', status: 401 } })
    expect(h.status().started).toBe(false)
    expect(h.dialed).toEqual(['ws://relay.test:8080/derp'])
    expect(h.closedStreams).toEqual(['ws://relay.test:8080/derp'])
  })

  it('a refused join answers with the server’s status and leaves the dataplane stopped', async () => {
    const h = harness()
    h.call(1, { op: 'join', options: { controlURL: HOME, hostname: 'me', storage: 'memory', keyName: 'node', authKey: 'bwauth-wrong' } })
    await until('the control socket', () => h.sockets.length === 1)
    h.sockets[0]!.deliver(challenge)
    await until('hello', () => h.sockets[0]!.sent.some((m) => m.type === 'hello'))
    h.sockets[0]!.deliver({ type: 'error', status: 401, error: 'authKey is unknown or already used', closing: true })
    await until('the join result', () => h.events.some((e) => e.type === 'result' && e.id === 1))
    expect(h.events.find((e) => e.type === 'result')).toMatchObject({ ok: false, error: { name: 'NodeJoinError', status: 401, message: 'authKey is unknown or already used' } })
    expect(h.status().started).toBe(false)
    expect(h.dialed).toEqual([])
  })

  it('rejects bad join options and unknown calls without starting anything', async () => {
    const h = harness()
    h.call(1, { op: 'join', options: { controlURL: 42, hostname: 'me', storage: 'memory', keyName: 'node' } })
    h.call(2, { op: 'fly' })
    h.call(3, { op: 'join', options: { controlURL: 'not a url', hostname: 'me', storage: 'memory', keyName: 'node' } })
    await until('all answers', () => h.events.filter((e) => e.type === 'result').length === 3)
    expect(h.events.find((e) => e.type === 'result' && e.id === 3)).toMatchObject({
      ok: false,
      error: { name: 'DataplaneError', code: 'bad-config', message: /controlURL "not a url" is not a relay URL/ },
    })
    expect(h.events.find((e) => e.type === 'result' && e.id === 1)).toMatchObject({ ok: false, error: { name: 'DataplaneError', code: 'bad-config' } })
    expect(h.events.find((e) => e.type === 'result' && e.id === 2)).toMatchObject({ ok: false, error: { message: 'unknown node operation "fly"' } })
    expect(h.status().started).toBe(false)
    expect(h.sockets).toHaveLength(0)
  })

  it('is the clock for the page’s probes: asks for one every probeIntervalMs of its own time, and stops when it leaves', async () => {
    const clock = new ManualClock(0)
    const h = harness(clock)
    const joining = joined(h, [peer(1)], { probeIntervalMs: 500 })
    // The relays never log in: the join resolves after relayLoginWaitMs on the agent's clock.
    await until('the wait for the relay to be armed', () => clock.pending > 0 && h.sockets[0]?.sent.some((m) => m.type === 'hello') === true)
    await until('the join result', () => {
      clock.fireNext(clock.now() + 10)
      return h.events.some((e) => e.type === 'result' && e.id === 1)
    })
    await joining
    const probes = () => h.events.filter((e) => e.type === 'probe').length
    const start = clock.now()
    while (clock.fireNext(start + 1250));
    await until('two probe requests', () => probes() === 2)
    h.call(2, { op: 'leave' })
    await until('the leave', () => h.events.some((e) => e.type === 'result' && e.id === 2))
    while (clock.fireNext(start + 10_000));
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(probes()).toBe(2)
  })

  it('hands every peer to the UDP direct manager; a peer it proves is direct over udp in peers() with its endpoint, the others stay on the relay', async () => {
    const seen: { setPeer: string[]; iceServers: unknown[]; params?: UdpDirectParams } = { setPeer: [], iceServers: [] }
    const paths = new Map<string, UdpDirectPath>()
    let stopped = false
    const fake: UdpDirect = {
      handleDisco: () => true,
      setPeer: (nodeKey) => void seen.setPeer.push(nodeKey),
      removePeer: (nodeKey) => void paths.delete(nodeKey),
      pathOf: (nodeKey) => paths.get(nodeKey),
      setIceServers: (servers) => void seen.iceServers.push(servers),
      debugInfo: () => ({ counters: { probesSent: 1 }, port: 41641, endpoints: ['192.0.2.1:41641'] }),
      stop: () => void (stopped = true),
    }
    const h = harness(undefined, {
      udpDirect: (params) => {
        seen.params = params
        return fake
      },
    })
    await joined(h, [peer(1), peer(2)])
    expect(seen.setPeer.sort()).toEqual([peer(1).nodeKey, peer(2).nodeKey])
    const params = seen.params!
    params.claim(peer(1).nodeKey)
    paths.set(peer(1).nodeKey, { path: 'direct', rttMs: 3, endpoint: '198.51.100.6:41641', candidates: { local: 'srflx', remote: 'unknown' } })
    params.onPathChange(peer(1).nodeKey, 'direct', 3)
    await until('the path and peers events', () => h.events.some((e) => e.type === 'peers' && e.peers.some((p) => p.nodeKey === peer(1).nodeKey && p.path === 'direct')))
    expect(h.events.find((e) => e.type === 'path')).toEqual({ type: 'path', nodeKey: peer(1).nodeKey, path: 'direct', rttMs: 3 })
    const pushed = h.events.filter((e) => e.type === 'peers').at(-1)!
    expect(pushed.type === 'peers' && pushed.peers.find((p) => p.nodeKey === peer(1).nodeKey)).toMatchObject({
      path: 'direct',
      directTransport: 'udp',
      directEndpoint: '198.51.100.6:41641',
      directRttMs: 3,
      directCandidates: { local: 'srflx', remote: 'unknown' },
    })
    expect(pushed.type === 'peers' && pushed.peers.find((p) => p.nodeKey === peer(2).nodeKey)).toMatchObject({ path: 'relay', directTransport: null, directEndpoint: null })
    h.call(7, { op: 'debug-direct' })
    await until('debug-direct', () => h.events.some((e) => e.type === 'result' && e.id === 7))
    expect(h.events.find((e) => e.type === 'result' && e.id === 7)).toMatchObject({ ok: true, value: { enabled: true, udp: { port: 41641, endpoints: ['192.0.2.1:41641'] } } })
    h.call(8, { op: 'leave' })
    await until('leave', () => h.events.some((e) => e.type === 'result' && e.id === 8))
    expect(stopped).toBe(true)
  })

  it('starts no UDP direct manager when the join says direct: false', async () => {
    let made = 0
    const h = harness(undefined, {
      udpDirect: () => {
        made++
        throw new Error('must not be made')
      },
    })
    await joined(h, [peer(1)], { direct: false })
    expect(made).toBe(0)
    expect(h.events.find((e) => e.type === 'result' && e.id === 1)).toMatchObject({ ok: true })
  })

  it('with several regions, probes each relay on its own clock, homes in the fastest, and moves only when another is clearly faster', async () => {
    const clock = new ManualClock(0)
    const probes: Array<{ url: string; answer: () => void }> = []
    const h = harness(clock, {
      probe: (url) => new Promise<void>((resolve) => probes.push({ url, answer: resolve })),
      firstProbeWaitMs: 3000,
    })
    h.call(1, { op: 'join', options: { controlURL: HOME, hostname: 'me', storage: 'memory', keyName: 'node', authKey: 'bwauth-x' } })
    await until('the control socket', () => h.sockets.length === 1)
    const socket = h.sockets[0]!
    socket.deliver(challenge)
    await until('hello', () => socket.sent.some((m) => m.type === 'hello'))
    const hello = socket.sent.find((m) => m.type === 'hello') as unknown as { nodeKey: string }
    const relayMap = {
      regions: [
        { id: 1, code: 'near', name: 'Near', nodes: [{ name: 'n1', url: HOME }] },
        { id: 2, code: 'far', name: 'Far', nodes: [{ name: 'f1', url: 'https://far.test' }] },
      ],
    }
    socket.deliver({
      type: 'welcome',
      self: { ...peer(200), nodeKey: hello.nodeKey },
      network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' },
      peers: [peer(1)],
      relayMap,
    })
    await until('a probe of each region', () => probes.length === 2)
    expect(probes.map((p) => p.url)).toEqual(['http://relay.test:8080/derp/latency-check', 'https://far.test/derp/latency-check'])
    // Region 2 answers after 40 ms of the agent's clock, region 1 after 90 ms: region 2 is home.
    clock.set(40)
    probes[1]!.answer()
    await new Promise((resolve) => setTimeout(resolve, 0))
    clock.set(90)
    probes[0]!.answer()
    await until('the join result', () => {
      clock.fireNext(clock.now() + 10)
      return h.events.some((e) => e.type === 'result' && e.id === 1)
    })
    const result = h.events.find((e) => e.type === 'result' && e.id === 1)
    expect(result).toMatchObject({ ok: true, value: { homeRegion: 2, relayURL: 'wss://far.test/derp' } })
    expect(h.events.find((e) => e.type === 'home')).toMatchObject({ region: 2, code: 'far', name: 'Far', relayURL: 'wss://far.test/derp', latencies: { 1: 90, 2: 40 } })
    expect(socket.sent.filter((m) => m.type === 'update').at(-1)).toMatchObject({ homeRelay: { url: 'wss://far.test/derp' } })
    expect(h.dialed).toContain('wss://far.test/derp')

    // The next round comes 20–26 s later on the agent's clock. Region 1 is 5 ms better (under
    // netcheck's 10 ms): the home stays. The round after, region 1 is 30 ms better: it moves.
    const round = async (ms: Record<string, number>): Promise<void> => {
      const before = probes.length
      await until('the next round', () => {
        clock.fireNext(clock.now() + 30_000)
        return probes.length === before + 2
      })
      const start = clock.now()
      for (const [i, p] of probes.slice(before).entries()) {
        clock.set(start + ms[i === 0 ? 'near' : 'far']!)
        p.answer()
        await new Promise((resolve) => setTimeout(resolve, 0))
      }
    }
    await round({ near: 35, far: 40 })
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(h.events.filter((e) => e.type === 'home')).toHaveLength(1)
    await round({ near: 10, far: 40 })
    await until('the move home', () => h.events.filter((e) => e.type === 'home').length === 2)
    expect(h.events.filter((e) => e.type === 'home').at(-1)).toMatchObject({ region: 1, code: 'near', relayURL: 'ws://relay.test:8080/derp' })
    // Reported to the coordination: in an update, or (the scripted server never answers pings, so
    // a minute of the agent's clock ends the session) in the hello of the next session.
    const lastReported = () =>
      (
        h.sockets
          .flatMap((s) => s.sent)
          .filter((m) => (m as { homeRelay?: unknown }).homeRelay !== undefined)
          .at(-1) as { homeRelay?: { url: string } } | undefined
      )?.homeRelay?.url
    const challenged = new Set([socket])
    await until('the new home relay reported', () => {
      for (const s of h.sockets) {
        if (challenged.has(s)) continue
        challenged.add(s)
        s.deliver(challenge)
      }
      if (lastReported() === 'ws://relay.test:8080/derp') return true
      clock.fireNext(clock.now() + 1000)
      return false
    })
  })
})
