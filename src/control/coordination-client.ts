// The coordination client driver: owns the WebSocket, the timers and the reconnect loop around
// a sans-IO CoordinationSession, and keeps the live peer map. Runs in a Web Worker (global
// WebSocket) and in Node (global WebSocket where present, else the `ws` package).
import { DeadlineTimer, wallClock, type DriverClock, type Timer } from '../clock/clock.ts'
import type { KeyPair } from '../crypto/index.ts'
import { CONTROL_PATH, type HomeRelay, type IceServer, type NetworkInfo, type PeerEntry, type RelayMapEntry } from './protocol.ts'
import { CoordinationClientError, CoordinationSession, errorFromClose, type SessionOutput } from './coordination-session.ts'

export { CoordinationClientError } from './coordination-session.ts'

export const BACKOFF_BASE_MS = 500
export const BACKOFF_CAP_MS = 30_000

/** "Full jitter" backoff: uniform in [0, min(cap, base · 2^attempt)). `random` is uniform in [0, 1). */
export function backoffDelay(attempt: number, random: () => number, baseMs = BACKOFF_BASE_MS, capMs = BACKOFF_CAP_MS): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * ceiling)
}

/** `http(s)://relay[:port][/]` or `ws(s)://…` → the control WebSocket URL. */
export function controlUrl(url: string): string {
  const parsed = new URL(url)
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:'
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:'
  else if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new TypeError(`coordination URL must be http(s) or ws(s), got ${parsed.protocol}`)
  if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = CONTROL_PATH
  return parsed.toString()
}

/** The subset of the WHATWG WebSocket that both browsers and `ws` provide. */
export interface SocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  addEventListener(type: 'open', listener: () => void): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void
  addEventListener(type: 'error', listener: (event: unknown) => void): void
}
export type SocketFactory = (url: string) => SocketLike | Promise<SocketLike>

async function defaultSocketFactory(url: string): Promise<SocketLike> {
  const Native = (globalThis as { WebSocket?: new (url: string) => SocketLike }).WebSocket
  if (Native !== undefined) return new Native(url)
  // Hidden from bundlers: browsers always have WebSocket, and `ws` must not enter their bundle.
  const wsModule = 'ws'
  // Typed locally rather than as typeof import('ws'): that would pull Node's types into browser code.
  const { WebSocket } = (await import(/* @vite-ignore */ wsModule)) as { WebSocket: new (url: string) => SocketLike }
  return new WebSocket(url)
}

export type CoordinationState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'failed' | 'stopped'

export interface PeersChange {
  upsert: PeerEntry[]
  remove: string[]
}

export interface CoordinationEvents {
  /**
   * The whole current peer map (ourselves excluded) and what changed. Building the list costs
   * the map's size on every change; a large network should listen to `change` instead.
   */
  peers: (peers: PeerEntry[], change: PeersChange) => void
  /** What changed in the peer map (after a (re)connect: everything, with removals of peers gone meanwhile). Costs only the change. */
  change: (change: PeersChange) => void
  state: (state: CoordinationState, detail?: { error?: CoordinationClientError; retryInMs?: number }) => void
  error: (error: CoordinationClientError) => void
  /** Our own entry: addresses, hostname as assigned, home relay as recorded. */
  self: (self: PeerEntry) => void
}

export interface CoordinationClientOptions {
  /** The relay's base URL (`https://relay.example`) or the control URL itself. */
  url: string
  nodeKeyPair: KeyPair
  discoPublicKey: Uint8Array
  hostname: string
  /** Needed the first time this node key registers; ignored by the server afterwards. */
  authKey?: string
  homeRelay?: HomeRelay | null
  previousNodeKeyPair?: KeyPair
  socketFactory?: SocketFactory
  random?: () => number
  /** Time and timers; default the wall clock (the session's times are epoch ms). */
  clock?: DriverClock
  backoffBaseMs?: number
  backoffCapMs?: number
}

const OPEN = 1

type Listeners = { [K in keyof CoordinationEvents]: Set<CoordinationEvents[K]> }

export class CoordinationClient {
  private readonly url: string
  private readonly options: CoordinationClientOptions
  private readonly socketFactory: SocketFactory
  private readonly random: () => number
  private readonly listeners: Listeners = { peers: new Set(), change: new Set(), state: new Set(), error: new Set(), self: new Set() }
  private readonly peerMap = new Map<string, PeerEntry>()
  private currentState: CoordinationState = 'idle'
  private socket: SocketLike | undefined
  private session: CoordinationSession | undefined
  private readonly clock: DriverClock
  private readonly sessionTimer: DeadlineTimer
  private retryTimer: Timer | undefined
  private attempt = 0
  private homeRelay: HomeRelay | null | undefined
  private discoPublicKey: Uint8Array
  private selfEntry: PeerEntry | undefined
  private networkInfo: NetworkInfo | undefined
  private iceServerList: IceServer[] = []
  private relayMapEntry: RelayMapEntry | undefined
  private readyWaiters: Array<{ resolve: (self: PeerEntry) => void; reject: (error: CoordinationClientError) => void }> = []
  private lastError: CoordinationClientError | undefined

  constructor(options: CoordinationClientOptions) {
    this.options = options
    this.url = controlUrl(options.url)
    this.socketFactory = options.socketFactory ?? defaultSocketFactory
    this.random = options.random ?? Math.random
    this.clock = options.clock ?? wallClock
    this.sessionTimer = new DeadlineTimer(this.clock, () => {
      if (this.session) this.apply(this.session.poll(this.clock.now()))
    })
    this.homeRelay = options.homeRelay
    this.discoPublicKey = options.discoPublicKey
  }

  get state(): CoordinationState {
    return this.currentState
  }

  get self(): PeerEntry | undefined {
    return this.selfEntry
  }

  get network(): NetworkInfo | undefined {
    return this.networkInfo
  }

  /** The STUN/TURN servers of the last welcome (the relay's own STUN server, TURN with fresh credentials); empty from older relays. */
  get iceServers(): IceServer[] {
    return this.iceServerList
  }

  /** The operator's relay regions from the last welcome; undefined when the relay has none configured. */
  get relayMap(): RelayMapEntry | undefined {
    return this.relayMapEntry
  }

  peers(): PeerEntry[] {
    return [...this.peerMap.values()]
  }

  /** One peer by node key (`nodekey:…`), without copying the map. */
  peer(nodeKey: string): PeerEntry | undefined {
    return this.peerMap.get(nodeKey)
  }

  get peerCount(): number {
    return this.peerMap.size
  }

  on<K extends keyof CoordinationEvents>(event: K, listener: CoordinationEvents[K]): () => void {
    const set = this.listeners[event] as Set<CoordinationEvents[K]>
    set.add(listener)
    return () => set.delete(listener)
  }

  start(): void {
    if (this.currentState !== 'idle') return
    this.connect()
  }

  /** Resolves with our own entry at the first welcome; rejects on a fatal refusal (e.g. a wrong auth key). */
  ready(): Promise<PeerEntry> {
    if (this.selfEntry !== undefined && this.currentState === 'connected') return Promise.resolve(this.selfEntry)
    if (this.currentState === 'failed' && this.lastError) return Promise.reject(this.lastError)
    if (this.currentState === 'stopped') return Promise.reject(new CoordinationClientError(0, 'coordination client was stopped'))
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }))
  }

  stop(): void {
    if (this.currentState === 'stopped') return
    this.clearTimers()
    this.dropSocket(1000, 'client stopped')
    this.setState('stopped')
    this.settleReady(new CoordinationClientError(0, 'coordination client was stopped'))
  }

  /** Reports our home relay (the DERP region we receive on); peers learn it within a second. */
  setHomeRelay(homeRelay: HomeRelay | null): void {
    this.homeRelay = homeRelay
    if (this.session) this.apply(this.session.setHomeRelay(homeRelay))
  }

  setDiscoKey(discoPublicKey: Uint8Array): void {
    this.discoPublicKey = discoPublicKey
    if (this.session) this.apply(this.session.setDiscoKey(discoPublicKey))
  }

  // ---- connection lifecycle ----

  private connect(): void {
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting')
    const opened = (async () => this.socketFactory(this.url))()
    opened.then(
      (socket) => this.attach(socket),
      (error: unknown) => this.connectionLost(new CoordinationClientError(0, `cannot open ${this.url}: ${error instanceof Error ? error.message : String(error)}`)),
    )
  }

  private attach(socket: SocketLike): void {
    if (this.currentState === 'stopped' || this.currentState === 'failed') {
      socket.close(1000, 'client stopped')
      return
    }
    this.socket = socket
    const session = new CoordinationSession(
      {
        nodeKeyPair: this.options.nodeKeyPair,
        discoPublicKey: this.discoPublicKey,
        hostname: this.options.hostname,
        authKey: this.options.authKey,
        homeRelay: this.homeRelay,
        previousNodeKeyPair: this.options.previousNodeKeyPair,
      },
      this.clock.now(),
    )
    this.session = session
    this.scheduleSession()
    socket.addEventListener('message', (event) => {
      if (this.socket !== socket) return
      const data = typeof event.data === 'string' ? event.data : new Uint8Array(0)
      this.apply(session.receive(data, this.clock.now()))
    })
    // Node's `ws` says why in its error event (a TLS certificate it does not trust, a refused
    // connection); browsers say nothing there. A close event always follows, with the code.
    let socketError: string | undefined
    socket.addEventListener('close', (event) => {
      if (this.socket !== socket) return
      this.socket = undefined
      const error = errorFromClose(event.code, event.reason)
      this.connectionLost(socketError && error.status === 0 ? new CoordinationClientError(0, `${error.message}: ${socketError}`) : error)
    })
    socket.addEventListener('error', (event) => {
      const message = (event as { message?: unknown }).message
      if (typeof message === 'string' && message !== '') socketError = message
    })
  }

  private apply(outputs: SessionOutput[]): void {
    for (const output of outputs) {
      switch (output.kind) {
        case 'send':
          if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(output.message))
          break
        case 'welcome': {
          this.attempt = 0
          this.selfEntry = output.self
          this.networkInfo = output.network
          this.iceServerList = output.iceServers ?? []
          this.relayMapEntry = output.relayMap
          const previous = new Set(this.peerMap.keys())
          this.peerMap.clear()
          for (const peer of output.peers) this.peerMap.set(peer.nodeKey, peer)
          const remove = [...previous].filter((key) => !this.peerMap.has(key))
          this.setState('connected')
          this.emit('self', output.self)
          this.emitChange({ upsert: output.peers, remove })
          for (const waiter of this.readyWaiters.splice(0)) waiter.resolve(output.self)
          break
        }
        case 'peers':
          // Applied entry by entry: a change costs its own size, not the map's.
          for (const key of output.remove) this.peerMap.delete(key)
          for (const peer of output.upsert) if (peer.nodeKey !== this.selfEntry?.nodeKey) this.peerMap.set(peer.nodeKey, peer)
          this.emitChange({ upsert: output.upsert, remove: output.remove })
          break
        case 'self':
          this.selfEntry = output.self
          this.emit('self', output.self)
          break
        case 'server-error':
          this.emit('error', output.error)
          break
        case 'failed':
          this.dropSocket(1000, output.error.message)
          this.connectionLost(output.error)
          break
      }
    }
    this.scheduleSession()
  }

  /** The current socket is gone (closed, refused or timed out): retry later, or give up if retrying cannot help. */
  private connectionLost(error: CoordinationClientError): void {
    if (this.currentState === 'stopped' || this.currentState === 'failed') return
    this.session = undefined
    this.clearTimers()
    // A server refusal arrives as an error message first (with the full text), and the socket is
    // dropped right then, so its close code never replaces that message.
    const reported = error
    this.lastError = reported
    this.emit('error', reported)
    if (reported.fatal) {
      this.setState('failed', { error: reported })
      this.settleReady(reported)
      return
    }
    const retryInMs = backoffDelay(this.attempt, this.random, this.options.backoffBaseMs, this.options.backoffCapMs)
    this.attempt++
    this.setState('reconnecting', { error: reported, retryInMs })
    this.retryTimer = this.clock.setTimer(this.clock.now() + retryInMs, () => {
      this.retryTimer = undefined
      this.connect()
    })
  }

  private dropSocket(code: number, reason: string): void {
    const socket = this.socket
    this.socket = undefined
    this.session = undefined
    if (socket !== undefined) {
      try {
        socket.close(code, reason.slice(0, 120))
      } catch {
        // Already closing; nothing to do.
      }
    }
  }

  private scheduleSession(): void {
    this.sessionTimer.arm(this.session?.nextEvent())
  }

  private clearTimers(): void {
    this.sessionTimer.clear()
    this.retryTimer?.clear()
    this.retryTimer = undefined
  }

  private settleReady(error: CoordinationClientError): void {
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(error)
  }

  private setState(state: CoordinationState, detail?: { error?: CoordinationClientError; retryInMs?: number }): void {
    this.currentState = state
    this.emit('state', state, detail)
  }

  private emitChange(change: PeersChange): void {
    this.emit('change', change)
    // The whole list only for those who asked for it.
    if (this.listeners.peers.size > 0) this.emit('peers', this.peers(), change)
  }

  private emit<K extends keyof CoordinationEvents>(event: K, ...args: Parameters<CoordinationEvents[K]>): void {
    for (const listener of this.listeners[event]) {
      try {
        ;(listener as (...a: Parameters<CoordinationEvents[K]>) => void)(...args)
      } catch {
        // A listener's bug must not break the client's state machine.
      }
    }
  }
}
