// The node runtime: what turns the bare dataplane worker into a member of a Burrow network.
// It lives next to the WorkerHost (in the dedicated worker, or in-process in Node) and
//  - loads or makes the node key in the key store (the page never sees it),
//  - starts the dataplane with that key (through the host, so every extension sees the start),
//  - registers with the coordination service and mirrors its live peer map into the dataplane
//    (AllowedIPs = the peer's /32 and /128, routed over DERP to the peer's home relay),
//  - keeps a DERP connection to our home relay (the relay serving the coordination) as an underlay,
//  - with a WebRTC port from the page, runs direct paths (node-direct.ts) and moves peers onto them,
//  - pushes the peer map with traffic counters, its state and errors to the page.
import { formatNodeKey, parseKey, type KeyPair } from '../crypto/index.ts'
import { CoordinationClient, CoordinationClientError, type CoordinationState, type SocketFactory } from '../control/coordination-client.ts'
import { loadOrCreateKeyPair, type KeyStore } from '../control/key-store.ts'
import type { PeerEntry } from '../control/protocol.ts'
import { DataplaneError } from '../dataplane/errors.ts'
import { DerpConnection } from '../underlay/derp/connection.ts'
import { webSocketUrl, type DerpDialer } from '../underlay/derp/dialer.ts'
import { DerpUnderlay } from '../underlay/derp/underlay.ts'
import { NodeDirect } from './node-direct.ts'
import { WorkerHost, registerUnderlayKind, registerWorkerExtension, type WorkerContext } from './host.ts'
import {
  NODE_CONTROL_MESSAGE,
  type JoinOptions,
  type JoinResult,
  type NodeCall,
  type NodeCallEnvelope,
  type NodeState,
  type NodeWorkerMessage,
  type WorkerPeerInfo,
} from './node-protocol.ts'
import { serializeError, WorkerOperationError, type Request, type Responses, type ResultMessage, type SerializedError, type WorkerMessage } from './protocol.ts'

export interface NodeRuntimeEnvironment {
  /** Opens DERP byte streams (the browser's WebSocket in a worker, `ws` in Node). */
  dial: DerpDialer
  /** The key store for a join's `storage` choice; throws a clear error for one it cannot provide. */
  keyStore(options: JoinOptions): KeyStore
  /** How the coordination client opens its WebSocket (default: global WebSocket, else `ws`). */
  socketFactory?: SocketFactory
  /** How often the peer map with fresh traffic counters is pushed to the page. Default 1 s. */
  statsIntervalMs?: number
  /** How long `join` waits for the first welcome before giving up. Default 20 s. */
  joinTimeoutMs?: number
  /** How long `join` waits for the home relay's login before resolving anyway. Default 5 s. */
  relayLoginWaitMs?: number
}

/** A join was refused: carries the coordination status (401 for a wrong auth key) when there is one. */
export class NodeJoinError extends Error {
  override readonly name = 'NodeJoinError'
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

// The `derp` underlay kind: a relay connection the runtime made, handed to the driver through the
// host like any other underlay. A page cannot create one (it holds no DerpConnection).
registerUnderlayKind('derp', (spec) => {
  const connection = (spec.options as { connection?: unknown } | undefined)?.connection
  if (!(connection instanceof DerpConnection)) throw new DataplaneError('bad-config', 'derp underlays are made by the node runtime from its own relay connections')
  return new DerpUnderlay(connection)
})

// The host calls extensions synchronously inside `start`; the runtime starting right now claims the context.
let claimStartContext: ((context: WorkerContext) => void) | undefined
registerWorkerExtension({
  onStart(context) {
    claimStartContext?.(context)
  },
})

interface RelayLink {
  connection: DerpConnection
  underlay: number
  /** Peers routed over this relay (the home relay is kept regardless). */
  users: number
}

interface DataplanePeer {
  relayURL: string
}

function errorWithStatus(error: unknown): SerializedError & { status?: number } {
  const serialized = serializeError(error)
  const status = (error as { status?: unknown })?.status
  return typeof status === 'number' ? { ...serialized, status } : serialized
}

/** The DERP URL (`ws(s)://host/derp`) of the relay behind a control URL. */
export function relayUrlOf(controlURL: string): string {
  const url = new URL(controlURL)
  url.pathname = '/derp'
  url.search = ''
  url.hash = ''
  return webSocketUrl(url.toString())
}

export class NodeRuntime {
  readonly host: WorkerHost
  private readonly internalResults = new Map<number, ResultMessage>()
  private nextInternalId = -1
  private controlPort: MessagePort | undefined
  private webrtcPort: MessagePort | undefined
  private direct: NodeDirect | undefined
  private context: WorkerContext | undefined
  private nodePrivateKey: Uint8Array | undefined
  private coordination: CoordinationClient | undefined
  private homeRelayURL = ''
  private readonly relays = new Map<string, RelayLink>()
  private readonly dataplanePeers = new Map<string, DataplanePeer>()
  private statsTimer: ReturnType<typeof setInterval> | undefined
  private state: NodeState = 'connecting'
  private wasOnline = false
  private joining = false
  private left = false

  constructor(
    postToPage: (message: WorkerMessage) => void,
    private readonly env: NodeRuntimeEnvironment,
  ) {
    this.host = new WorkerHost((message) => {
      // Negative ids are the runtime's own requests to the host; they never reach the page.
      if (message.type === 'result' && message.id < 0) this.internalResults.set(message.id, message)
      else postToPage(message)
    })
  }

  /** Every message the page posts to the worker: the node control port, or a dataplane request. */
  handle(data: unknown): void {
    const message = data as { type?: unknown; port?: unknown; webrtcPort?: unknown }
    if (typeof message === 'object' && message !== null && message.type === NODE_CONTROL_MESSAGE) {
      if (message.port && typeof (message.port as MessagePort).postMessage === 'function') this.attachControl(message.port as MessagePort)
      else this.host.reportError(new DataplaneError('bad-config', `${NODE_CONTROL_MESSAGE} needs a MessagePort in \`port\``))
      if (message.webrtcPort !== undefined) {
        if (typeof (message.webrtcPort as MessagePort)?.postMessage === 'function') this.attachWebRtc(message.webrtcPort as MessagePort)
        else this.host.reportError(new DataplaneError('bad-config', `${NODE_CONTROL_MESSAGE}: \`webrtcPort\` must be a MessagePort`))
      }
      return
    }
    this.host.handle(data)
  }

  /** The port the page's `Burrow` object talks to the runtime on. */
  attachControl(port: MessagePort): void {
    this.controlPort?.close()
    this.controlPort = port
    port.onmessage = (event: MessageEvent) => void this.onCall(event.data as NodeCallEnvelope)
  }

  /** The port a WebRtcPageAgent serves in the page; without one every peer stays on its relay. */
  attachWebRtc(port: MessagePort): void {
    if (this.context) throw new DataplaneError('bad-config', 'the WebRTC port must be attached before joining')
    this.webrtcPort?.close()
    this.webrtcPort = port
  }

  /** Stops everything (the worker is going away). */
  dispose(): void {
    this.shutdown()
    this.controlPort?.close()
    this.controlPort = undefined
  }

  private post(message: NodeWorkerMessage): void {
    this.controlPort?.postMessage(message)
  }

  private async onCall(envelope: NodeCallEnvelope): Promise<void> {
    if (envelope?.type !== 'call' || !Number.isInteger(envelope.id)) {
      this.post({ type: 'error', error: errorWithStatus(new DataplaneError('bad-config', 'node control: expected { type: "call", id, call }')) })
      return
    }
    try {
      const value = await this.dispatch(envelope.call)
      this.post({ type: 'result', id: envelope.id, ok: true, value })
    } catch (error) {
      this.post({ type: 'result', id: envelope.id, ok: false, error: errorWithStatus(error) })
    }
  }

  private dispatch(call: NodeCall): Promise<unknown> | unknown {
    switch (call?.op) {
      case 'join':
        return this.join(call.options)
      case 'leave':
        this.shutdown()
        return null
      case 'debug-close-direct':
        if (typeof call.nodeKey !== 'string') throw new DataplaneError('bad-config', 'debug-close-direct needs a nodeKey')
        return this.direct?.closeDirect(call.nodeKey) ?? false
      case 'debug-direct':
        return this.direct?.debugInfo([...this.dataplanePeers.keys()]) ?? { enabled: false, counters: {}, peers: [] }
      default:
        throw new DataplaneError('bad-config', `unknown node operation ${JSON.stringify((call as { op?: unknown })?.op)}`)
    }
  }

  /** Sends one request to the host and returns its answer (the host answers synchronously). */
  private hostCall<R extends Request>(request: R): Responses[R['op']] {
    const id = this.nextInternalId--
    this.host.handle({ id, request })
    const result = this.internalResults.get(id)
    this.internalResults.delete(id)
    if (!result) throw new Error(`the dataplane host did not answer ${request.op}`)
    if (!result.ok) throw new WorkerOperationError(result.error, request.op)
    return result.value as Responses[R['op']]
  }

  private async join(options: JoinOptions): Promise<JoinResult> {
    if (this.joining || this.context) throw new DataplaneError('bad-config', 'this node has already joined')
    if (this.left) throw new DataplaneError('stopped', 'this node has left; start a new one')
    if (typeof options?.controlURL !== 'string') throw new DataplaneError('bad-config', 'controlURL must be a string like "http://relay.example:8080"')
    if (typeof options.hostname !== 'string') throw new DataplaneError('bad-config', 'hostname must be a string')
    let relayURL: string
    try {
      relayURL = relayUrlOf(options.controlURL)
    } catch (error) {
      throw new DataplaneError('bad-config', `controlURL ${JSON.stringify(options.controlURL)} is not a relay URL: ${(error as Error).message}`)
    }
    this.joining = true
    try {
      const store = this.env.keyStore(options)
      const nodeKeys = await loadOrCreateKeyPair(store, options.keyName)
      const discoKeys = await loadOrCreateKeyPair(store, `${options.keyName}.disco`)
      if (this.left) throw new DataplaneError('stopped', 'the node was closed while starting')
      this.startDataplane(nodeKeys)
      this.homeRelayURL = relayURL
      const self = await this.register(options, nodeKeys, discoKeys, relayURL)
      // The relay may admit only registered keys (--verify-clients), so DERP waits for the welcome.
      const homeLink = this.acquireRelay(relayURL)
      const home = homeLink.connection
      home.setPreferred(true)
      if (this.webrtcPort && options.direct !== false) this.startDirect(this.webrtcPort, discoKeys.privateKey, homeLink.underlay, options.dropDirectSignals === true)
      this.syncPeers(this.coordination!.peers())
      // Resolve once packets can flow, so a started node is `online`; a relay that is slow to
      // log in does not fail the start (the connection keeps retrying and the state says so).
      await this.untilConnected(home, this.env.relayLoginWaitMs ?? 5000)
      if (this.left) throw new DataplaneError('stopped', 'the node was closed while starting')
      this.statsTimer = setInterval(() => this.pushPeers(), this.env.statsIntervalMs ?? 1000)
      this.updateState()
      return {
        nodeKey: formatNodeKey(nodeKeys.publicKey),
        hostname: self.hostname,
        addresses: self.addresses,
        network: this.coordination!.network!,
        relayURL,
      }
    } catch (error) {
      this.shutdown()
      throw error
    } finally {
      this.joining = false
    }
  }

  private startDirect(port: MessagePort, discoPrivateKey: Uint8Array, homeRelayUnderlay: number, dropSignals: boolean): void {
    this.direct = new NodeDirect({
      context: this.context!,
      webrtcPort: port,
      discoPrivateKey,
      homeRelayUnderlay,
      dropSignals,
      onPathChange: (nodeKey, path, rttMs) => {
        this.post({ type: 'path', nodeKey, path, rttMs })
        this.pushPeers()
      },
    })
    // The relay's STUN server (and TURN) from the welcome; each later welcome brings fresh TURN credentials.
    const client = this.coordination
    if (client) {
      if (client.iceServers.length > 0) this.direct.setIceServers(client.iceServers)
      client.on('self', () => {
        if (client.iceServers.length > 0) this.direct?.setIceServers(client.iceServers)
      })
    }
  }

  private startDataplane(nodeKeys: KeyPair): void {
    let claimed: WorkerContext | undefined
    claimStartContext = (context) => (claimed = context)
    try {
      this.hostCall({ op: 'start', config: { privateKey: nodeKeys.privateKey } })
    } finally {
      claimStartContext = undefined
    }
    if (!claimed) throw new Error('the dataplane started without calling its extensions')
    this.context = claimed
    this.nodePrivateKey = nodeKeys.privateKey
  }

  private register(options: JoinOptions, nodeKeys: KeyPair, discoKeys: KeyPair, relayURL: string): Promise<PeerEntry> {
    const client = new CoordinationClient({
      url: options.controlURL,
      nodeKeyPair: nodeKeys,
      discoPublicKey: discoKeys.publicKey,
      hostname: options.hostname,
      ...(options.authKey ? { authKey: options.authKey } : {}),
      homeRelay: { url: relayURL },
      ...(this.env.socketFactory ? { socketFactory: this.env.socketFactory } : {}),
    })
    this.coordination = client
    let lastError: CoordinationClientError | undefined
    client.on('peers', (peers) => {
      if (this.context && this.relays.size > 0) this.syncPeers(peers)
    })
    client.on('state', () => this.updateState())
    let failJoin: ((error: NodeJoinError) => void) | undefined
    client.on('error', (error) => {
      lastError = error
      // Before the first welcome, any failure ends the start: a typo'd URL or a relay that is down
      // should say so now, not after a timeout. Later ones are reported and retried by the client.
      if (failJoin) failJoin(new NodeJoinError(error.status === 0 ? `cannot reach the coordination service at ${options.controlURL}: ${error.message}` : error.message, error.status))
      else this.post({ type: 'error', error: errorWithStatus(error) })
    })
    client.start()
    return new Promise<PeerEntry>((resolve, reject) => {
      const timeoutMs = this.env.joinTimeoutMs ?? 20_000
      failJoin = (error) => {
        failJoin = undefined
        clearTimeout(timer)
        reject(error)
      }
      const timer = setTimeout(() => {
        failJoin = undefined
        const why = lastError ? `: ${lastError.message}` : ''
        reject(new NodeJoinError(`no answer from the coordination service at ${options.controlURL} within ${timeoutMs / 1000} s${why}`, lastError?.status ?? 0))
      }, timeoutMs)
      client.ready().then(
        (self) => {
          failJoin = undefined
          clearTimeout(timer)
          resolve(self)
        },
        (error: unknown) => {
          failJoin = undefined
          clearTimeout(timer)
          const status = error instanceof CoordinationClientError ? error.status : 0
          reject(new NodeJoinError((error as Error).message, status))
        },
      )
    })
  }

  // ---- relays ----

  private acquireRelay(url: string): RelayLink {
    const existing = this.relays.get(url)
    if (existing) {
      existing.users++
      return existing
    }
    // DERP logs in with the node key, the same key the dataplane was started with.
    const connection = new DerpConnection({ url, privateKey: this.nodePrivateKey!, dial: this.env.dial })
    const underlay = this.hostCall({ op: 'add-underlay', spec: { kind: 'derp', options: { connection } } }).underlay
    const link: RelayLink = { connection, underlay, users: 1 }
    this.relays.set(url, link)
    if (url === this.homeRelayURL) {
      connection.on('connected', () => this.updateState())
      connection.on('disconnected', () => this.updateState())
    }
    connection.start()
    return link
  }

  private untilConnected(connection: DerpConnection, timeoutMs: number): Promise<void> {
    if (connection.isConnected) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        connection.off('connected', done)
        resolve()
      }
      const timer = setTimeout(done, timeoutMs)
      connection.on('connected', done)
    })
  }

  private releaseRelay(url: string): void {
    const link = this.relays.get(url)
    if (!link) return
    link.users--
    if (link.users > 0 || url === this.homeRelayURL) return
    this.relays.delete(url)
    try {
      this.hostCall({ op: 'remove-underlay', underlay: link.underlay })
    } finally {
      link.connection.close()
    }
  }

  // ---- peers ----

  private relayFor(peer: PeerEntry): string {
    if (!peer.homeRelay?.url) return this.homeRelayURL
    try {
      return webSocketUrl(peer.homeRelay.url)
    } catch {
      return this.homeRelayURL
    }
  }

  private syncPeers(peers: PeerEntry[]): void {
    const wanted = new Map(peers.map((peer) => [peer.nodeKey, peer]))
    for (const [nodeKey, known] of this.dataplanePeers) {
      if (wanted.has(nodeKey)) continue
      this.dataplanePeers.delete(nodeKey)
      this.guard(() => this.direct?.removePeer(nodeKey))
      this.guard(() => this.hostCall({ op: 'remove-peer', publicKey: nodeKey }))
      this.guard(() => this.releaseRelay(known.relayURL))
    }
    for (const peer of peers) {
      const relayURL = this.relayFor(peer)
      const known = this.dataplanePeers.get(peer.nodeKey)
      if (known?.relayURL === relayURL) continue
      this.guard(() => {
        const link = this.acquireRelay(relayURL)
        const endpoint = parseKey(peer.nodeKey)
        try {
          if (known) {
            this.hostCall({ op: 'set-peer-route', publicKey: peer.nodeKey, underlay: link.underlay, endpoint })
            this.releaseRelay(known.relayURL)
          } else {
            this.hostCall({
              op: 'add-peer',
              peer: { publicKey: peer.nodeKey, allowedIps: [`${peer.addresses[0]}/32`, `${peer.addresses[1]}/128`], route: { underlay: link.underlay, endpoint } },
            })
          }
        } catch (error) {
          this.releaseRelay(relayURL)
          throw error
        }
        this.dataplanePeers.set(peer.nodeKey, { relayURL })
      })
    }
    const direct = this.direct
    if (direct) {
      for (const peer of peers) {
        const known = this.dataplanePeers.get(peer.nodeKey)
        const link = known && this.relays.get(known.relayURL)
        // Also for known peers: a new disco key means the peer restarted and its session is gone.
        if (link) this.guard(() => direct.setPeer(peer.nodeKey, peer.discoKey, link.underlay))
      }
    }
    this.pushPeers()
  }

  private guard(work: () => void): void {
    try {
      work()
    } catch (error) {
      this.post({ type: 'error', error: errorWithStatus(error) })
    }
  }

  private pushPeers(): void {
    const client = this.coordination
    if (!client || !this.context) return
    const status = this.hostCall({ op: 'status' })
    const stats = new Map(status.peers.map((p) => [formatNodeKey(parseKey(p.publicKey)), p]))
    const relayUnderlays = new Set([...this.relays.values()].map((link) => link.underlay))
    const peers: WorkerPeerInfo[] = client.peers().map((peer) => {
      const s = stats.get(peer.nodeKey)
      const direct = this.direct && this.dataplanePeers.has(peer.nodeKey) ? this.direct.pathOf(peer.nodeKey) : undefined
      return {
        nodeKey: peer.nodeKey,
        hostname: peer.hostname,
        addresses: peer.addresses,
        online: peer.online,
        // Direct once a disco pong over the datachannel trusts it (the route moves there earlier,
        // while datagrams are still mirrored to the relay); else whatever underlay the route names.
        path: direct ? direct.path : s?.route && !relayUnderlays.has(s.route.underlay) ? 'direct' : 'relay',
        directRttMs: direct?.rttMs ?? null,
        directCandidates: direct?.candidates ?? null,
        relayURL: this.relayFor(peer),
        rxBytes: s?.rxBytes ?? 0,
        txBytes: s?.txBytes ?? 0,
        lastHandshake: s?.lastHandshake ?? null,
      }
    })
    this.post({ type: 'peers', peers })
  }

  // ---- state ----

  private updateState(): void {
    if (this.left) return
    const control: CoordinationState | undefined = this.coordination?.state
    const relayUp = this.relays.get(this.homeRelayURL)?.connection.isConnected === true
    let next: NodeState
    if (control === 'failed') next = 'failed'
    else if (control === 'connected' && relayUp) next = 'online'
    else next = this.wasOnline ? 'reconnecting' : 'connecting'
    if (next === 'online') this.wasOnline = true
    if (next === this.state) return
    this.state = next
    this.post({ type: 'state', state: next })
  }

  private shutdown(): void {
    if (this.left) return
    this.left = true
    if (this.statsTimer !== undefined) clearInterval(this.statsTimer)
    this.statsTimer = undefined
    this.coordination?.stop()
    try {
      this.direct?.stop()
    } catch {
      // The sessions end with the dataplane regardless.
    }
    this.direct = undefined
    this.webrtcPort = undefined
    for (const link of this.relays.values()) link.connection.close()
    this.relays.clear()
    this.dataplanePeers.clear()
    if (this.context) {
      try {
        this.hostCall({ op: 'stop' })
      } catch {
        // Already stopped: nothing left to release.
      }
    }
    this.context = undefined
    this.state = 'closed'
    this.post({ type: 'state', state: 'closed' })
  }
}
