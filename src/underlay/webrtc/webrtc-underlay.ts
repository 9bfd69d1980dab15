// The worker's side of WebRTC: one underlay transport for every direct peer, whose endpoint is
// the peer's node key (as with DERP). It asks the page for sessions, passes signals between the
// page and the disco layer, adopts the datachannels the page hands over (transferred or bridged)
// and moves datagrams on them.
//
// Glare is avoided by rule, not by negotiation: the side with the lower node key always offers.
// The other side, when it wants a direct path, sends a `request` signal instead.
import type { UnderlayTransport } from '../../dataplane/transport.ts'
import { fromHex, toHex } from '../../crypto/index.ts'
import type { WebRtcSignal } from '../disco/messages.ts'
import { ChannelLink, type ChannelLinkOptions, type ChannelLinkStats, type DatagramChannel } from './channel-link.ts'
import type { CandidateType, PageToWorkerMessage, WorkerToPageMessage } from './control-protocol.ts'
import { PortDatagramChannel } from './port-channel.ts'

export interface WebRtcUnderlayEvents {
  /** A signal to deliver to `peer` (seal it as a disco message and send it over the relay). */
  signal(peer: Uint8Array, signal: WebRtcSignal): void
  /** The datachannel to `peer` is open. */
  open(peer: Uint8Array, how: 'transferred' | 'bridged'): void
  /** The session with `peer` ended: the channel closed, or the attempt failed. */
  close(peer: Uint8Array, reason: string): void
  /** The page finished gathering ICE candidates for the session with `peer` (diagnostics). */
  gathered(peer: Uint8Array): void
}

export interface WebRtcUnderlayOptions {
  /** Our node key: decides which side offers. */
  ourKey: Uint8Array
  link?: ChannelLinkOptions
  /** First session number (tests pass a fixed one); random by default. */
  firstSession?: number
}

interface PeerSession {
  key: Uint8Array
  session: number
  link: ChannelLink | undefined
  how: 'transferred' | 'bridged' | undefined
  /** The candidate types of the ICE pair in use, as the page last reported them. */
  candidates?: { local: CandidateType; remote: CandidateType }
}

export class WebRtcUnderlayError extends Error {
  override readonly name = 'WebRtcUnderlayError'
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

type Listeners = { [K in keyof WebRtcUnderlayEvents]: Set<WebRtcUnderlayEvents[K]> }

export class WebRtcUnderlay implements UnderlayTransport<Uint8Array> {
  private readonly sessions = new Map<string, PeerSession>()
  private readonly listeners: Listeners = { signal: new Set(), open: new Set(), close: new Set(), gathered: new Set() }
  private deliver: ((endpoint: Uint8Array, datagrams: Uint8Array[]) => void) | undefined
  private nextSession: number
  private stopped = false
  private relayMirror: ((peer: Uint8Array, datagrams: Uint8Array[]) => void) | undefined
  /** Datagrams for a peer without an open channel. */
  droppedNoChannel = 0

  constructor(
    private readonly port: MessagePort,
    private readonly options: WebRtcUnderlayOptions,
    private readonly reportError: (error: Error) => void = () => {},
  ) {
    if (options.ourKey.length !== 32) throw new WebRtcUnderlayError('ourKey must be a 32-byte node key')
    this.nextSession = options.firstSession ?? Math.floor(Math.random() * 0x7fffffff)
    port.onmessage = (event: MessageEvent) => this.onPageMessage(event.data as PageToWorkerMessage)
  }

  on<K extends keyof WebRtcUnderlayEvents>(event: K, listener: WebRtcUnderlayEvents[K]): void {
    ;(this.listeners[event] as Set<WebRtcUnderlayEvents[K]>).add(listener)
  }

  off<K extends keyof WebRtcUnderlayEvents>(event: K, listener: WebRtcUnderlayEvents[K]): void {
    ;(this.listeners[event] as Set<WebRtcUnderlayEvents[K]>).delete(listener)
  }

  /** True when we make the offers to `peer`. */
  offersTo(peer: Uint8Array): boolean {
    return compareBytes(this.options.ourKey, peer) < 0
  }

  /** Wants a direct path to `peer`: starts a session, or asks the peer to (when it offers). */
  connect(peer: Uint8Array): void {
    if (this.stopped) return
    const id = toHex(peer)
    if (this.sessions.has(id)) return
    if (!this.offersTo(peer)) {
      this.emit('signal', peer, { session: 0, kind: 'request' })
      return
    }
    const session = this.allocateSession()
    this.sessions.set(id, { key: peer.slice(), session, link: undefined, how: undefined })
    this.post({ type: 'connect', peer: id, session })
  }

  /** Ends the session with `peer` (and tells it so). */
  disconnect(peer: Uint8Array, reason = 'disconnected'): void {
    const state = this.sessions.get(toHex(peer))
    if (!state) return
    this.emit('signal', peer, { session: state.session, kind: 'bye' })
    this.endSession(state, reason)
  }

  /** A WebRTC signal from `peer`, opened from a disco message. */
  handleSignal(peer: Uint8Array, signal: WebRtcSignal): void {
    if (this.stopped) return
    const id = toHex(peer)
    const state = this.sessions.get(id)
    switch (signal.kind) {
      case 'request':
        if (this.offersTo(peer) && !state) this.connect(peer)
        return
      case 'offer':
        // Only the higher key answers; an offer from a lower key that we should have made is ignored.
        if (this.offersTo(peer)) return
        if (state?.session === signal.session) return
        if (state) this.endSession(state, 'superseded by a new offer')
        this.sessions.set(id, { key: peer.slice(), session: signal.session, link: undefined, how: undefined })
        this.post({ type: 'signal', peer: id, signal })
        return
      case 'answer':
      case 'candidate':
        if (state?.session === signal.session) this.post({ type: 'signal', peer: id, signal })
        return
      case 'bye':
        if (state?.session === signal.session) this.endSession(state, 'the peer closed the session')
        return
    }
  }

  /** Whether a datachannel to `peer` is open. */
  isOpen(peer: Uint8Array): boolean {
    return this.sessions.get(toHex(peer))?.link?.isOpen ?? false
  }

  /** The ICE candidate types the open session with `peer` uses (host, srflx, prflx, relay), once the page has read them. */
  candidateTypes(peer: Uint8Array): { local: CandidateType; remote: CandidateType } | undefined {
    const state = this.sessions.get(toHex(peer))
    return state?.link?.isOpen ? state.candidates : undefined
  }

  /** The ICE servers the coordination service named; the page uses them unless it was given its own. */
  setIceServers(servers: RTCIceServer[]): void {
    this.post({ type: 'ice-servers', servers })
  }

  linkStats(peer: Uint8Array): ChannelLinkStats | undefined {
    return this.sessions.get(toHex(peer))?.link?.stats
  }

  // ── UnderlayTransport ──────────────────────────────────────────────────────

  /**
   * Path selection's hook: called with every batch sent to a peer before it goes on the channel,
   * so datagrams can also go over the relay while the direct path is not yet trusted.
   */
  setRelayMirror(mirror: ((peer: Uint8Array, datagrams: Uint8Array[]) => void) | undefined): void {
    this.relayMirror = mirror
  }

  send(endpoint: Uint8Array, datagrams: Uint8Array[]): void {
    this.relayMirror?.(endpoint, datagrams)
    const link = this.sessions.get(toHex(endpoint))?.link
    if (link?.isOpen) link.send(datagrams)
    else this.droppedNoChannel += datagrams.length
  }

  start(deliver: (endpoint: Uint8Array, datagrams: Uint8Array[]) => void): void {
    this.deliver = deliver
  }

  stop(): void {
    if (this.stopped) return
    for (const state of [...this.sessions.values()]) this.disconnect(state.key, 'the underlay stopped')
    this.stopped = true
    this.deliver = undefined
    this.port.onmessage = null
    this.port.close()
  }

  endpointBytes(endpoint: Uint8Array): Uint8Array {
    return endpoint
  }

  // ── internals ──────────────────────────────────────────────────────────────

  private allocateSession(): number {
    const session = this.nextSession
    this.nextSession = (this.nextSession + 1) % 0x7fffffff
    return session
  }

  private onPageMessage(message: PageToWorkerMessage): void {
    if (this.stopped) return
    if (typeof message !== 'object' || message === null || typeof (message as { peer?: unknown }).peer !== 'string' || !/^[0-9a-f]{64}$/.test(message.peer)) {
      this.reportError(new WebRtcUnderlayError('webrtc control port: message without a 64-hex-digit `peer`'))
      return
    }
    const state = this.sessions.get(message.peer)
    switch (message.type) {
      case 'signal':
        this.emit('signal', fromHex(message.peer), message.signal)
        return
      case 'channel':
      case 'bridged': {
        const channel: DatagramChannel | undefined =
          message.type === 'channel' ? message.channel : message.port instanceof MessagePort ? new PortDatagramChannel(message.port) : undefined
        if (!channel) {
          this.reportError(new WebRtcUnderlayError(`webrtc control port: "${message.type}" without a channel`))
          return
        }
        if (!state || state.session !== message.session || state.link) {
          channel.close()
          return
        }
        this.adopt(state, channel, message.type === 'channel' ? 'transferred' : 'bridged')
        return
      }
      case 'failed':
        if (state && state.session === message.session) this.endSession(state, `the WebRTC attempt failed: ${message.reason}`)
        return
      case 'candidates':
        if (state && state.session === message.session) state.candidates = { local: message.local, remote: message.remote }
        return
      case 'gathered':
        if (state && state.session === message.session) this.emit('gathered', state.key)
        return
      default:
        this.reportError(new WebRtcUnderlayError(`webrtc control port: unknown message type ${JSON.stringify((message as { type?: unknown }).type)}`))
    }
  }

  private adopt(state: PeerSession, channel: DatagramChannel, how: 'transferred' | 'bridged'): void {
    state.how = how
    state.link = new ChannelLink(
      channel,
      {
        onOpen: () => this.emit('open', state.key, how),
        onDatagrams: (datagrams) => this.deliver?.(state.key, datagrams),
        onClose: (reason) => {
          if (this.sessions.get(toHex(state.key)) === state) this.endSession(state, reason)
        },
      },
      this.options.link,
    )
  }

  private endSession(state: PeerSession, reason: string): void {
    const id = toHex(state.key)
    if (this.sessions.get(id) !== state) return
    this.sessions.delete(id)
    state.link?.close(reason)
    this.post({ type: 'close', peer: id, session: state.session })
    this.emit('close', state.key, reason)
  }

  private post(message: WorkerToPageMessage): void {
    if (!this.stopped) this.port.postMessage(message)
  }

  private emit<K extends keyof WebRtcUnderlayEvents>(event: K, ...args: Parameters<WebRtcUnderlayEvents[K]>): void {
    for (const listener of this.listeners[event]) {
      try {
        ;(listener as (...a: Parameters<WebRtcUnderlayEvents[K]>) => void)(...args)
      } catch (error) {
        this.reportError(error as Error)
      }
    }
  }
}
