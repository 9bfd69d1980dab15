// The side of WebRTC that owns the peer connections: in a browser the page (RTCPeerConnection
// exists only in windows), in Node.js the process itself with @roamhq/wrtc. Every connection is a
// simple-peer instance (offer/answer, trickle ICE, `config.iceServers`), loaded lazily the first
// time a direct path is attempted so the main bundle stays small. The datagrams do not use
// simple-peer's channel: a second, negotiated channel made on the RTCPeerConnection it holds is
// handed to the worker in the task that created it — transferred where the browser allows it
// (Chromium does), else bridged over a MessagePort. simple-peer's own (reliable) channel stays
// with this agent and marks the connection up (`connect`) or gone (`close`).
import type { WebRtcSignal } from '../disco/messages.ts'
import type { ChannelLinkOptions } from './channel-link.ts'
import { DATACHANNEL_ID, DATACHANNEL_INIT, DATACHANNEL_LABEL, type CandidateType, type PageToWorkerMessage, type WorkerToPageMessage } from './control-protocol.ts'
import { bridgeDataChannel } from './port-channel.ts'

/** The parts of a simple-peer instance the agent uses. */
export interface SimplePeerLike {
  readonly _pc: RTCPeerConnection
  signal(data: unknown): void
  on(event: 'signal', listener: (data: SimplePeerSignal) => void): void
  on(event: 'connect' | 'close', listener: () => void): void
  on(event: 'error', listener: (error: Error) => void): void
  on(event: 'data', listener: (data: unknown) => void): void
  destroy(): void
}

export type SimplePeerConstructor = new (options: Record<string, unknown>) => SimplePeerLike

/** What simple-peer emits as `signal`: a description, a trickled candidate, or a renegotiation hint we never need. */
export type SimplePeerSignal =
  | { type: 'offer' | 'answer'; sdp: string }
  | { type: 'candidate'; candidate: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null } }
  | { type?: undefined; renegotiate?: boolean; transceiverRequest?: unknown }

/** The WebRTC implementation simple-peer should use where the global one is missing (Node: `@roamhq/wrtc`). */
export interface WrtcImplementation {
  RTCPeerConnection: unknown
  RTCSessionDescription: unknown
  RTCIceCandidate: unknown
}

export interface WebRtcPageAgentOptions {
  /** STUN/TURN servers. When set, they win over the ones the coordination service hands out. */
  iceServers?: RTCIceServer[]
  /** Always bridge over a MessagePort, even where channels can be transferred (tests, benchmarks). */
  forceBridge?: boolean
  /** Backpressure settings for bridged channels (transferred ones are configured in the worker). */
  link?: ChannelLinkOptions
  /** Reports failures no caller waits for (a bad SDP, a closed port). */
  onError?: (error: Error) => void
  /** Loads simple-peer; by default its prebuilt bundle, as a separate chunk, on first use. */
  loadSimplePeer?: () => Promise<SimplePeerConstructor>
  /** Passed to simple-peer as `wrtc` (Node.js). */
  wrtc?: WrtcImplementation
  /** How often to re-read the selected candidate pair of an open session (default 2 s). */
  statsIntervalMs?: number
  /**
   * Start loading simple-peer now instead of on the first attempt, so the first direct path does
   * not wait for the chunk (Burrow.start sets it: a node tries its peers as soon as it knows them).
   */
  prefetch?: boolean
}

interface PageSession {
  session: number
  peer: SimplePeerLike | undefined
  /** Signals that arrived while simple-peer was still loading. */
  pending: WebRtcSignal[]
  closed: boolean
  statsTimer: ReturnType<typeof setInterval> | undefined
  reported: string | undefined
}

let defaultLoad: Promise<SimplePeerConstructor> | undefined
/** simple-peer's self-contained build: the plain package needs Node globals (`global`, `process`) a bundler does not provide. */
export function loadBundledSimplePeer(): Promise<SimplePeerConstructor> {
  defaultLoad ??= import('simple-peer/simplepeer.min.js').then((m) => {
    // A bundler that converts the UMD wrapper hands back module.exports as `default`; one that
    // serves the file untouched as ESM runs its browser branch, which sets `SimplePeer` globally.
    const candidates = [
      (m as { default?: unknown }).default,
      ((m as { default?: { default?: unknown } }).default ?? {}).default,
      (globalThis as { SimplePeer?: unknown }).SimplePeer,
    ]
    const found = candidates.find((c) => typeof c === 'function')
    if (!found) throw new Error('simple-peer/simplepeer.min.js loaded but exported no constructor')
    return found as SimplePeerConstructor
  })
  return defaultLoad
}

export class WebRtcPageAgent {
  private readonly sessions = new Map<string, PageSession>()
  private closed = false
  private load: Promise<SimplePeerConstructor> | undefined
  /** ICE servers from the coordination service, used when the options name none. */
  private handedOutIceServers: RTCIceServer[] = []
  /** How the last channel reached the worker, for tests and diagnostics. */
  lastHandover: 'transferred' | 'bridged' | undefined

  constructor(
    private readonly port: MessagePort,
    private readonly options: WebRtcPageAgentOptions = {},
  ) {
    port.onmessage = (event: MessageEvent) => this.onWorkerMessage(event.data as WorkerToPageMessage)
    // A failed prefetch is reported by the first session that needs the module.
    if (options.prefetch) this.simplePeer().catch(() => {})
  }

  /** The ICE servers a new session uses. */
  get iceServers(): RTCIceServer[] {
    return this.options.iceServers ?? this.handedOutIceServers
  }

  /** Closes every connection and stops listening to the worker. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const peer of [...this.sessions.keys()]) this.endSession(peer)
    this.port.onmessage = null
    this.port.close()
  }

  private onWorkerMessage(message: WorkerToPageMessage): void {
    if (this.closed || typeof message !== 'object' || message === null) return
    switch (message.type) {
      case 'connect':
        this.startSession(message.peer, message.session, true)
        return
      case 'signal':
        this.applySignal(message.peer, message.signal)
        return
      case 'close': {
        const session = this.sessions.get(message.peer)
        if (session?.session === message.session) this.endSession(message.peer)
        return
      }
      case 'ice-servers':
        if (Array.isArray(message.servers)) this.handedOutIceServers = message.servers
        return
    }
  }

  private simplePeer(): Promise<SimplePeerConstructor> {
    this.load ??= (this.options.loadSimplePeer ?? loadBundledSimplePeer)()
    return this.load
  }

  private startSession(peer: string, sessionId: number, initiator: boolean, first?: WebRtcSignal): void {
    this.endSession(peer)
    const session: PageSession = { session: sessionId, peer: undefined, pending: first ? [first] : [], closed: false, statsTimer: undefined, reported: undefined }
    this.sessions.set(peer, session)
    this.simplePeer().then(
      (SimplePeer) => {
        if (session.closed || this.sessions.get(peer) !== session) return
        try {
          this.createPeer(peer, session, SimplePeer, initiator)
        } catch (error) {
          this.fail(peer, sessionId, error as Error)
        }
      },
      (error: Error) => this.fail(peer, sessionId, new Error(`cannot load simple-peer: ${error.message}`)),
    )
  }

  private createPeer(peer: string, session: PageSession, SimplePeer: SimplePeerConstructor, initiator: boolean): void {
    const sp = new SimplePeer({
      initiator,
      trickle: true,
      config: { iceServers: this.iceServers },
      ...(this.options.wrtc ? { wrtc: this.options.wrtc } : {}),
    })
    session.peer = sp
    // Made and handed over in this task: a datachannel is only transferable before it is used.
    // Both ends make it with the same id, so nothing about it crosses the wire in SDP.
    const channel = sp._pc.createDataChannel(DATACHANNEL_LABEL, { ...DATACHANNEL_INIT, negotiated: true, id: DATACHANNEL_ID })
    this.handOver(peer, session, channel)
    sp.on('signal', (data) => {
      if (this.sessions.get(peer) !== session) return
      const signal = toWireSignal(session.session, data)
      if (signal) this.send({ type: 'signal', peer, signal })
    })
    // Gathering complete is a phase of the path upgrade (diagnostics only: candidates are trickled).
    const pc = sp._pc as RTCPeerConnection & Partial<Pick<EventTarget, 'addEventListener'>>
    pc.addEventListener?.('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete' && this.sessions.get(peer) === session) this.send({ type: 'gathered', peer, session: session.session })
    })
    sp.on('connect', () => {
      if (this.sessions.get(peer) !== session) return
      void this.reportCandidates(peer, session)
      session.statsTimer = setInterval(() => void this.reportCandidates(peer, session), this.options.statsIntervalMs ?? 2000)
      ;(session.statsTimer as { unref?: () => void }).unref?.()
    })
    sp.on('error', (error) => this.fail(peer, session.session, error))
    sp.on('close', () => this.fail(peer, session.session, new Error('the peer connection closed')))
    // simple-peer's own channel carries nothing yet; reading it keeps its stream from filling.
    sp.on('data', () => {})
    for (const signal of session.pending.splice(0)) this.feed(session, signal)
  }

  private applySignal(peer: string, signal: WebRtcSignal): void {
    if (signal.kind === 'offer') {
      this.startSession(peer, signal.session, false, signal)
      return
    }
    const session = this.sessions.get(peer)
    if (!session || session.session !== signal.session) return
    if (!session.peer) session.pending.push(signal)
    else this.feed(session, signal)
  }

  private feed(session: PageSession, signal: WebRtcSignal): void {
    try {
      if (signal.kind === 'offer' || signal.kind === 'answer') session.peer!.signal({ type: signal.kind, sdp: signal.sdp })
      else if (signal.kind === 'candidate') {
        session.peer!.signal({ type: 'candidate', candidate: { candidate: signal.candidate, sdpMid: signal.sdpMid, sdpMLineIndex: signal.sdpMLineIndex } })
      }
    } catch (error) {
      // simple-peer throws synchronously for a destroyed peer; its async failures arrive as 'error'.
      this.options.onError?.(error as Error)
    }
  }

  /** Reads which candidate pair ICE selected and tells the worker when its types change. */
  private async reportCandidates(peer: string, session: PageSession): Promise<void> {
    const pc = session.peer?._pc
    if (!pc || session.closed) return
    let types: { local: CandidateType; remote: CandidateType } | undefined
    try {
      types = selectedCandidateTypes(await pc.getStats())
    } catch {
      return
    }
    if (!types || session.closed || this.sessions.get(peer) !== session) return
    const key = `${types.local}/${types.remote}`
    if (key === session.reported) return
    session.reported = key
    this.send({ type: 'candidates', peer, session: session.session, ...types })
  }

  private handOver(peer: string, session: PageSession, channel: RTCDataChannel): void {
    if (!this.options.forceBridge) {
      try {
        const message: PageToWorkerMessage = { type: 'channel', peer, session: session.session, channel }
        this.port.postMessage(message, [channel as unknown as Transferable])
        this.lastHandover = 'transferred'
        return
      } catch {
        // Not transferable here: keep it and bridge it.
      }
    }
    const { port1, port2 } = new MessageChannel()
    bridgeDataChannel(channel, port1, this.options.link)
    this.port.postMessage({ type: 'bridged', peer, session: session.session, port: port2 } satisfies PageToWorkerMessage, [port2])
    this.lastHandover = 'bridged'
  }

  private fail(peer: string, sessionId: number, error: Error): void {
    const session = this.sessions.get(peer)
    if (!session || session.session !== sessionId) return
    this.endSession(peer)
    this.send({ type: 'failed', peer, session: sessionId, reason: error.message })
    this.options.onError?.(error)
  }

  private endSession(peer: string): void {
    const session = this.sessions.get(peer)
    if (!session) return
    this.sessions.delete(peer)
    session.closed = true
    if (session.statsTimer !== undefined) clearInterval(session.statsTimer)
    session.peer?.destroy()
  }

  private send(message: PageToWorkerMessage): void {
    if (!this.closed) this.port.postMessage(message)
  }
}

function toWireSignal(session: number, data: SimplePeerSignal): WebRtcSignal | undefined {
  if (data.type === 'offer' || data.type === 'answer') return { session, kind: data.type, sdp: data.sdp }
  if (data.type === 'candidate') {
    const c = data.candidate
    // An empty candidate marks the end of gathering; the far side needs nothing for it.
    if (!c?.candidate) return undefined
    return { session, kind: 'candidate', candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null }
  }
  // Renegotiation and transceiver requests: the connection carries data channels only, never media.
  return undefined
}

const CANDIDATE_TYPES = new Set(['host', 'srflx', 'prflx', 'relay'])

/**
 * The local and remote candidate types of the pair ICE uses (W3C webrtc-stats: the transport's
 * `selectedCandidatePairId`; where a browser lacks it, the nominated pair that succeeded).
 */
export function selectedCandidateTypes(stats: RTCStatsReport | Map<string, Record<string, unknown>>): { local: CandidateType; remote: CandidateType } | undefined {
  const reports = new Map<string, Record<string, unknown>>()
  ;(stats as Map<string, Record<string, unknown>>).forEach((value, key) => reports.set(key, value))
  let pair: Record<string, unknown> | undefined
  for (const report of reports.values()) {
    if (report['type'] === 'transport' && typeof report['selectedCandidatePairId'] === 'string') pair = reports.get(report['selectedCandidatePairId'])
  }
  if (!pair) {
    for (const report of reports.values()) {
      if (report['type'] === 'candidate-pair' && (report['selected'] === true || (report['nominated'] === true && report['state'] === 'succeeded'))) pair = report
    }
  }
  if (!pair) return undefined
  const typeOf = (id: unknown): CandidateType => {
    const t = typeof id === 'string' ? reports.get(id)?.['candidateType'] : undefined
    return typeof t === 'string' && CANDIDATE_TYPES.has(t) ? (t as CandidateType) : 'unknown'
  }
  return { local: typeOf(pair['localCandidateId']), remote: typeOf(pair['remoteCandidateId']) }
}
