// The public node object, the same in browsers (src/index.ts) and Node (src/node.ts). The
// dataplane and the node agent (src/agent: keys, control plane, DERP) run behind a "worker link" — a real
// dedicated worker in a page, the same code in-process in Node — and the TCP/IP stack runs here,
// clocked by the worker's (unthrottled) timers through the overlay port.
import { formatAddress, parseAddress } from './wire/index.ts'
import { BurrowError, codeForStatus } from './burrow-errors.ts'
import { createHttpClient, serveHttp, type HttpClient, type HttpHandler, type ServeHttpOptions } from './http/index.ts'
import type { StackHost } from './overlay/host.ts'
import { Sockets, type TCPServerSocket, type TCPSocket, type TcpConnectOptions, type UDPSocket, type UdpOptions } from './overlay/sockets.ts'
import type { Stack } from './overlay/stack.ts'
import { startProxy, type BurrowProxy, type ProxyOptions } from './proxy/page.ts'
import { BurrowWorker, RequestTable, type OverlayPort, type WorkerLike } from './worker/client.ts'
import type { DirectDebugInfo, JoinResult, NodeCall, NodeCallEnvelope, NodeState, NodeWorkerMessage, WorkerPeerInfo } from './agent/protocol.ts'
import { sharedNow, type SerializedError, type WorkerStatus } from './worker/protocol.ts'
import { parseStartOptions, type BurrowStartOptions, type PacketTap, type StartDefaults } from './burrow-options.ts'
import { PacketCapture } from './wire/pcap.ts'
import { attachStack } from './burrow-stack.ts'

export { BurrowError, type BurrowErrorCode } from './burrow-errors.ts'
export type { NodeState } from './agent/protocol.ts'
export { DEFAULT_OVERLAY_MTU, MAX_OVERLAY_MTU, type BurrowIceServer, type BurrowStartOptions, type PacketTap } from './burrow-options.ts'

export interface BurrowPeer {
  nodeKey: string
  hostname: string
  /** The peer's MagicDNS name (`alpha.tailnet.example`, lower case, no trailing dot) on tailnets; `fetch`, `connect` and `ping` take it. */
  fqdn?: string
  /** [IPv4, IPv6]. */
  addresses: [string, string]
  online: boolean
  path: 'relay' | 'direct'
  /**
   * On a direct path, the round-trip time of its last disco pong; else of the last answered
   * probe or `ping()`; null if none was answered yet.
   */
  rttMs: number | null
  rxBytes: number
  txBytes: number
  /** When the last WireGuard handshake completed (epoch ms), or null. */
  lastHandshake: number | null
  /**
   * On a direct path, how ICE connected: `relay` if either end of the selected candidate pair is
   * a TURN relay, else `srflx`/`prflx` if either is a NAT mapping (STUN, or learnt from the peer),
   * else `host`. null on the relay, or before the browser reported its stats.
   */
  candidateType: 'host' | 'srflx' | 'prflx' | 'relay' | null
  /** Both ends of that candidate pair, as `RTCIceCandidate.type`s; null with `candidateType`. */
  candidates: { local: string; remote: string } | null
  /** On a direct path: a WebRTC datachannel, or plain UDP (between two Node peers); null on the relay. */
  directTransport: 'webrtc' | 'udp' | null
  /** On a direct UDP path: the peer's endpoint in use (`203.0.113.7:41641`); else null. */
  endpoint: string | null
  /** The relay region this peer is reached through (its home region, or ours when it reported none). */
  relayRegion: number
  /** The relay of that region we send to it through (DERP URL). */
  relayURL: string
}

/** Our home relay region and the relay of it we are logged in to. */
export interface BurrowHomeRelay {
  /** Region id (the relay map's `id`). */
  region: number
  code: string
  name: string
  /** The DERP URL of the relay we are logged in to. */
  relayURL: string
  /** The last measured latency per region id in ms (null: no answer); empty with a single region. */
  latencies: Record<number, number | null>
}

/** The type that says most about how a candidate pair crosses the network (relay > srflx > prflx > host). */
export function pairCandidateType(pair: { local: string; remote: string } | null | undefined): BurrowPeer['candidateType'] {
  if (!pair) return null
  for (const type of ['relay', 'srflx', 'prflx', 'host'] as const) if (pair.local === type || pair.remote === type) return type
  return null
}

/** Dispatched as `peers` when the peer map changes, and once a second with fresh traffic counters. */
export class BurrowPeersEvent extends Event {
  constructor(readonly peers: BurrowPeer[]) {
    super('peers')
  }
}

/** Dispatched as `path` when a peer moves between its relay and a direct path. */
export class BurrowPathEvent extends Event {
  constructor(
    readonly nodeKey: string,
    readonly hostname: string,
    readonly path: 'relay' | 'direct',
    /** The disco round-trip time that made a direct path trusted, or null. */
    readonly rttMs: number | null,
  ) {
    super('path')
  }
}

/** Dispatched as `state`: `connecting` → `online` ⇄ `reconnecting`, then `closed` (or `failed`). */
export class BurrowStateEvent extends Event {
  constructor(readonly state: NodeState) {
    super('state')
  }
}

/** Dispatched as `auth-url` when a tailnet's control server asks a person to approve this node (interactive login). */
export class BurrowAuthURLEvent extends Event {
  constructor(readonly url: string) {
    super('auth-url')
  }
}

/** Dispatched as `error` for failures no call is waiting for. */
export class BurrowErrorEvent extends Event {
  constructor(readonly error: BurrowError) {
    super('error')
  }
  get message(): string {
    return this.error.message
  }
}

export interface BurrowHttpServer {
  readonly port: number
  /** Settles once the port is listening; rejects (e.g. the port is taken) otherwise. */
  readonly ready: Promise<void>
  /** Settles when the server has stopped. */
  readonly closed: Promise<void>
  close(): Promise<void>
}

/** What the node object drives: the dataplane requests and the node agent's control port. */
export interface NodeWorkerLink {
  worker: WorkerLike
  control: MessagePort
  terminate(): void
}

function toBurrowError(error: SerializedError & { status?: number }): BurrowError {
  if (typeof error.status === 'number') return new BurrowError(codeForStatus(error.status), error.message, error.status)
  if (error.name === 'KeyStoreError') return new BurrowError('key-store', error.message)
  if (error.name === 'DataplaneError' && error.code === 'bad-config') return new BurrowError('bad-options', error.message)
  return new BurrowError('worker', error.message)
}

function isIpLiteral(text: string): boolean {
  try {
    parseAddress(text)
    return true
  } catch {
    return false
  }
}

export class BurrowNode extends EventTarget {
  /** `nodekey:` + hex of this node's public key. */
  nodeKey = ''
  /** The hostname the coordination service assigned. */
  hostname = ''
  /** [IPv4, IPv6] overlay addresses. */
  addresses: string[] = []
  /** The DERP URL of the home relay (it changes when the node re-homes: `home` events). */
  relayURL = ''
  /** The home relay region, once known; re-homing (latency, or failover when the relay died) dispatches a `home` event. */
  homeRelay: BurrowHomeRelay | null = null
  state: NodeState = 'connecting'

  private readonly dataplane: BurrowWorker
  /** Calls to the node agent on the control port, answered by id. */
  private readonly calls = new RequestTable()
  private overlay: OverlayPort | undefined
  private stack: Stack | undefined
  private stackHost: StackHost | undefined
  private sockets: Sockets | undefined
  private http: HttpClient | undefined
  private readonly servers = new Set<BurrowHttpServer>()
  private readonly proxies = new Set<BurrowProxy>()
  private workerPeers: WorkerPeerInfo[] = []
  private readonly rtt = new Map<string, number>()
  private readonly probing = new Set<string>()
  private closing: Promise<void> | undefined
  private packetCapture: PacketCapture | undefined
  private startPhases: Array<[string, number]> = []
  private debugLog: ((line: string) => void) | undefined

  protected constructor(private readonly link: NodeWorkerLink) {
    super()
    this.dataplane = new BurrowWorker(link.worker)
    this.dataplane.addEventListener('error', (event) => {
      const error = (event as Event & { error: Error }).error
      this.emitError(new BurrowError('worker', error.message))
    })
    link.control.onmessage = (event: MessageEvent) => this.onRuntimeMessage(event.data as NodeWorkerMessage)
  }

  /** Joins the network: loads or makes the key in the worker, registers, attaches the TCP/IP stack. */
  protected async init(options: BurrowStartOptions, defaults: StartDefaults): Promise<void> {
    const startedAt = sharedNow()
    const { join, mtu, capture, tcp, debug } = parseStartOptions(options, defaults)
    this.debugLog = debug
    const onAuthURL = options.onAuthURL
    if (onAuthURL)
      this.addEventListener('auth-url', (event) => {
        try {
          onAuthURL((event as BurrowAuthURLEvent).url)
        } catch (error) {
          this.emitError(new BurrowError('bad-options', `onAuthURL threw: ${(error as Error)?.message ?? String(error)}`))
        }
      })
    const joined = (await this.call({ op: 'join', options: join })) as JoinResult
    this.startPhases = [['start', startedAt], ...(joined.phases ?? []), ['join answered', sharedNow()]]
    this.nodeKey = joined.nodeKey
    this.hostname = joined.hostname
    this.addresses = [...joined.addresses]
    this.relayURL = this.homeRelay?.relayURL || joined.relayURL
    const overlay = await this.dataplane.attachOverlay([`${joined.addresses[0]}/32`, `${joined.addresses[1]}/128`])
    this.overlay = overlay
    let tap: PacketTap | undefined
    if (capture?.kind === 'tap') tap = capture.tap
    else if (capture?.kind === 'memory') {
      const memory = (this.packetCapture = new PacketCapture(capture.maxBytes === undefined ? {} : { maxBytes: capture.maxBytes }))
      tap = (packet) => memory.record(packet)
    }
    const { stack, host } = attachStack(overlay, joined.addresses, mtu, tap, tcp)
    this.stack = stack
    this.stackHost = host
    this.sockets = new Sockets(host, { resolve: async (name) => this.resolve(name) })
    this.http = createHttpClient((hostname, port) => this.openConnection(hostname, port))
    this.startPhases.push(['stack attached', sharedNow()])
  }

  /**
   * Diagnostics of `start`: when each step finished, as [step, ms since `start` was called]
   * (page: start, join answered, stack attached; worker: join received, keys, netmap, relay login).
   */
  _debugStartPhases(): Array<[string, number]> {
    const origin = this.startPhases[0]?.[1] ?? 0
    return this.startPhases.map(([step, at]) => [step, at - origin])
  }

  /** The peers as last reported by the worker, with the round-trip times measured here. */
  /**
   * The capture so far as a pcap file (classic libpcap, LINKTYPE_RAW: Wireshark and `tcpdump -r`
   * read it), e.g. for a download link: `URL.createObjectURL(node.captureBlob())`. Needs
   * `capture: true` at start; `captureStats` says how many packets it holds and how many did not fit.
   */
  captureBlob(): Blob {
    if (!this.packetCapture) throw new BurrowError('bad-options', 'this node was started without capture: true')
    return new Blob([...this.packetCapture.parts()] as unknown as BlobPart[], { type: 'application/vnd.tcpdump.pcap' })
  }

  get captureStats(): { packets: number; dropped: number; bytes: number } | undefined {
    const capture = this.packetCapture
    return capture && { packets: capture.packets, dropped: capture.dropped, bytes: capture.byteLength }
  }

  peers(): BurrowPeer[] {
    return this.workerPeers.map((peer) => ({
      nodeKey: peer.nodeKey,
      hostname: peer.hostname,
      ...(peer.fqdn ? { fqdn: peer.fqdn } : {}),
      addresses: peer.addresses,
      online: peer.online,
      path: peer.path,
      rttMs: (peer.path === 'direct' ? peer.directRttMs : null) ?? this.rtt.get(peer.nodeKey) ?? null,
      rxBytes: peer.rxBytes,
      txBytes: peer.txBytes,
      lastHandshake: peer.lastHandshake,
      candidateType: peer.path === 'direct' ? pairCandidateType(peer.directCandidates) : null,
      candidates: peer.path === 'direct' ? (peer.directCandidates ?? null) : null,
      directTransport: peer.path === 'direct' ? (peer.directTransport ?? 'webrtc') : null,
      endpoint: peer.path === 'direct' ? (peer.directEndpoint ?? null) : null,
      relayRegion: peer.relayRegion,
      relayURL: peer.relayURL,
    }))
  }

  /** A TCP connection over the overlay (`host` is an overlay address or a peer's hostname). */
  connect(options: TcpConnectOptions): TCPSocket
  connect(host: string, port: number, options?: Omit<TcpConnectOptions, 'host' | 'port'>): TCPSocket
  connect(first: TcpConnectOptions | string, port?: number, options: Omit<TcpConnectOptions, 'host' | 'port'> = {}): TCPSocket {
    const sockets = this.running()
    return typeof first === 'string' ? sockets.connect({ ...options, host: first, port: port! }) : sockets.connect(first)
  }

  listen(options: { port: number; backlog?: number; address?: string } | number): TCPServerSocket {
    return this.running().listen(typeof options === 'number' ? { port: options } : options)
  }

  udp(options: UdpOptions = {}): UDPSocket {
    return this.running().udp(options)
  }

  /** Round-trip time in ms of one ICMP echo to an overlay address or a peer's hostname. */
  async ping(target: string, options: { timeout?: number } = {}): Promise<number> {
    const sockets = this.running()
    const address = await this.resolve(target)
    const rtt = await sockets.ping(address, options)
    const peer = this.workerPeers.find((p) => p.addresses.includes(address))
    if (peer) this.rtt.set(peer.nodeKey, rtt)
    return rtt
  }

  /** `fetch()` over the overlay: HTTP/1.1 with keep-alive, streamed bodies. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    this.running()
    return this.http!.fetch(input, init)
  }

  /**
   * Web pages only: after this resolves, requests under `<origin><prefix><peer>/<port>/<path>`
   * (default prefix `/.burrow/`) — from this page or its iframes, navigations and subresources —
   * are answered over the overlay by `http://<peer>:<port>/<path>`, through the Service Worker at
   * `/burrow-sw.js`. See the README's "Browse a peer's web app" section.
   */
  async proxy(options: ProxyOptions = {}): Promise<BurrowProxy> {
    this.running()
    try {
      const proxy = await startProxy((request, signal) => this.running() && this.http!.send(request, signal), options)
      this.proxies.add(proxy)
      return proxy
    } catch (error) {
      throw new BurrowError((error as Error).name === 'ProxyPathError' ? 'bad-options' : 'proxy', (error as Error).message)
    }
  }

  /** Serves HTTP/1.1 on `port` of this node's overlay addresses. */
  serve(port: number, handler: HttpHandler, options: ServeHttpOptions = {}): BurrowHttpServer {
    const listener = this.running().listen({ port })
    const ready = listener.opened.then(({ readable }) => serveHttp(readable, handler, options))
    const closed = ready.then((server) => server.closed)
    // Callers that never look at these promises must not get unhandled rejections.
    const listening = ready.then(() => undefined)
    closed.catch(() => {})
    listening.catch(() => {})
    const server: BurrowHttpServer = {
      port,
      ready: listening,
      closed,
      close: async () => {
        this.servers.delete(server)
        await listener.close()
        const http = await ready.catch(() => undefined)
        await http?.close()
      },
    }
    ready.catch(() => this.servers.delete(server))
    this.servers.add(server)
    return server
  }

  /** The dataplane's counters (per peer, drops, driver wake-ups), for diagnostics. */
  status(): Promise<WorkerStatus> {
    return this.dataplane.status()
  }

  /**
   * Test hook: ends the WebRTC session with a peer (hostname or node key), closing its
   * datachannel; traffic returns to the relay and the direct path is set up again later.
   * Resolves true if a channel was open.
   */
  async _debugCloseDirect(peer: string): Promise<boolean> {
    this.running()
    const found = this.workerPeers.find((p) => p.hostname === peer || p.nodeKey === peer)
    if (!found) throw new BurrowError('unknown-host', `${JSON.stringify(peer)} is not a peer`)
    return (await this.call({ op: 'debug-close-direct', nodeKey: found.nodeKey })) as boolean
  }

  /** Diagnostics of the direct paths: counters and, per peer, selector state and datachannel counters. */
  async _debugDirect(): Promise<DirectDebugInfo> {
    this.running()
    return (await this.call({ op: 'debug-direct' })) as DirectDebugInfo
  }

  /** Leaves: stops probes and servers, disconnects from the coordination and the relay, ends the worker. */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    // Another open page with a node takes the proxy's requests from here on.
    for (const proxy of this.proxies) proxy.close()
    this.proxies.clear()
    await Promise.allSettled([...this.servers].map((server) => server.close()))
    this.http?.close()
    try {
      await Promise.race([this.call({ op: 'leave' }), new Promise((resolve) => setTimeout(resolve, 2000))])
    } catch {
      // The worker is going away regardless.
    }
    this.overlay?.close()
    this.sockets = undefined
    this.link.control.onmessage = null
    this.link.control.close()
    this.dataplane.terminate()
    this.link.terminate()
    this.calls.fail(new BurrowError('closed', 'the node was closed'))
    this.setState('closed')
  }

  private running(): Sockets {
    if (this.closing || !this.sockets) throw new BurrowError('closed', this.closing ? 'the node is closed' : 'the node has not started')
    return this.sockets
  }

  private async resolve(name: string): Promise<string> {
    const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name
    if (isIpLiteral(bare)) return formatAddress(parseAddress(bare))
    const wanted = bare.toLowerCase().replace(/\.$/, '')
    // A short name, or a MagicDNS FQDN (tailnets): both name the same peer, as in tailscaled's resolver.
    const peer = this.workerPeers.find((p) => p.hostname === wanted || p.fqdn === wanted)
    if (!peer) throw new BurrowError('unknown-host', `${JSON.stringify(name)} is neither an IP address nor the hostname of a peer`)
    return peer.addresses[0]
  }

  private async openConnection(hostname: string, port: number): Promise<{ readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array>; close(): Promise<void> }> {
    const socket = this.running().connect({ host: hostname, port })
    const { readable, writable } = await socket.opened
    return { readable, writable, close: () => socket.close() }
  }

  /** Pings every online peer once (the agent asks every `probeIntervalMs`: the worker is the clock). */
  private probePeers(): void {
    const sockets = this.sockets
    if (!sockets) return
    for (const peer of this.workerPeers) {
      if (!peer.online || this.probing.has(peer.nodeKey)) continue
      this.probing.add(peer.nodeKey)
      sockets
        .ping(peer.addresses[0], { timeout: 5000 })
        .then(
          (rtt) => this.rtt.set(peer.nodeKey, rtt),
          () => {},
        )
        .finally(() => this.probing.delete(peer.nodeKey))
    }
  }

  private call(call: NodeCall): Promise<unknown> {
    return this.calls.send(call.op, (id) => {
      const envelope: NodeCallEnvelope = { type: 'call', id, call }
      this.link.control.postMessage(envelope)
    })
  }

  private onRuntimeMessage(message: NodeWorkerMessage): void {
    switch (message?.type) {
      case 'result':
        // An answer to no pending call (one the node stopped waiting for) is ignored.
        this.calls.settle(message.id, message, toBurrowError)
        break
      case 'probe':
        this.probePeers()
        break
      case 'home':
        this.homeRelay = { region: message.region, code: message.code, name: message.name, relayURL: message.relayURL, latencies: message.latencies }
        if (message.relayURL) this.relayURL = message.relayURL
        this.dispatchEvent(new Event('home'))
        break
      case 'debug':
        try {
          this.debugLog?.(message.line)
        } catch {
          // A throwing log callback must not break the node.
        }
        break
      case 'peers':
        this.workerPeers = message.peers
        for (const key of this.rtt.keys()) if (!message.peers.some((p) => p.nodeKey === key)) this.rtt.delete(key)
        this.dispatchEvent(new BurrowPeersEvent(this.peers()))
        break
      case 'path': {
        const peer = this.workerPeers.find((p) => p.nodeKey === message.nodeKey)
        if (peer) {
          peer.path = message.path
          peer.directRttMs = message.rttMs
        }
        this.dispatchEvent(new BurrowPathEvent(message.nodeKey, peer?.hostname ?? '', message.path, message.rttMs))
        break
      }
      case 'state':
        this.setState(message.state)
        break
      case 'auth-url':
        this.dispatchEvent(new BurrowAuthURLEvent(message.url))
        break
      case 'error':
        this.emitError(toBurrowError(message.error))
        break
    }
  }

  private setState(state: NodeState): void {
    if (this.state === state || this.state === 'closed') return
    this.state = state
    this.dispatchEvent(new BurrowStateEvent(state))
  }

  private emitError(error: BurrowError): void {
    this.dispatchEvent(new BurrowErrorEvent(error))
  }
}

/** Builds a node on `link` and joins; the link is torn down if joining fails. */
export async function startNode<T extends BurrowNode>(make: (link: NodeWorkerLink) => T, link: NodeWorkerLink, options: BurrowStartOptions, defaults: StartDefaults): Promise<T> {
  const node = make(link)
  try {
    await (node as unknown as { init(o: BurrowStartOptions, d: typeof defaults): Promise<void> }).init(options, defaults)
  } catch (error) {
    await node.close()
    throw error
  }
  return node
}
