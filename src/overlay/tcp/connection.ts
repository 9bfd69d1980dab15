import {
  ACK as imported_ACK,
  FIN as imported_FIN,
  PSH as imported_PSH,
  RST as imported_RST,
  SYN as imported_SYN,
  MAX_WINDOW_SCALE as imported_MAX_WINDOW_SCALE,
  type TcpOptions,
  type TcpSegment,
} from '../../wire/index.ts'
import type { IpAddress } from '../../wire/index.ts'
import type { TcpConfig } from './config.ts'
import { Cubic, type CubicState } from './congestion.ts'
import { TcpError } from './errors.ts'
import { ReceiveBuffer } from './receive-buffer.ts'
import { RttEstimator, MAX_RTO_MS } from './rtt.ts'
import { InFlight } from './in-flight.ts'
import { SendBuffer } from './send-buffer.ts'

// Module-local copies of the imports the per-packet path calls: under Node's ESM→CJS interop
// (tsx, vitest) every use of an imported binding is a getter call, ~10 % of a 1420-byte profile.
const ACK = imported_ACK
const FIN = imported_FIN
const PSH = imported_PSH
const RST = imported_RST
const SYN = imported_SYN
const MAX_WINDOW_SCALE = imported_MAX_WINDOW_SCALE

/** Shared by every segment without data: zero bytes, so nothing can write into it. */
const NO_PAYLOAD = new Uint8Array(0)

// The RFC 9293 state machine. Internally every sequence number is turned into a stream offset
// (a plain number that never wraps): send offset 0 is ISS+1, receive offset 0 is IRS+1, the SYN
// sits at offset -1 and a FIN at the offset just past the last data byte. Only segment
// encoding and decoding see 32-bit sequence numbers.

export type TcpState = 'SYN_SENT' | 'SYN_RECEIVED' | 'ESTABLISHED' | 'FIN_WAIT_1' | 'FIN_WAIT_2' | 'CLOSE_WAIT' | 'CLOSING' | 'LAST_ACK' | 'TIME_WAIT' | 'CLOSED'

export interface TcpConnectionEvents {
  /** The three-way handshake completed. */
  established?(): void
  /** In-order data or the end of the stream is ready to `read()`. */
  readable?(): void
  /** Send buffer space was freed. */
  writable?(): void
  /** The connection is finished for the application: cleanly (undefined) or with an error. */
  closed?(error: TcpError | undefined): void
}

export interface TcpEndpoints {
  localAddress: IpAddress
  localPort: number
  remoteAddress: IpAddress
  remotePort: number
}

/** What the connection needs from the stack that hosts it. */
export interface TcpHost {
  /**
   * Sends `segment` now. The segment object and its options are reused for the connection's
   * next segment: the host encodes it during the call and must not keep it.
   */
  emit(connection: TcpConnection, segment: TcpSegment): void
  /** The application changed something that may let the connection send; flush on the next poll. */
  markDirty(connection: TcpConnection): void
}

export interface TcpStats {
  segmentsSent: number
  segmentsReceived: number
  bytesSent: number
  bytesRetransmitted: number
  retransmitTimeouts: number
  fastRecoveries: number
  challengeAcks: number
  pawsDrops: number
  zeroWindowProbes: number
  keepAliveProbes: number
  tailLossProbes: number
  spuriousRetransmissions: number
  duplicateSacks: number
}

const TIMESTAMP_OPTION_BYTES = 12
const DEFAULT_MSS_V4 = 536
const DEFAULT_MSS_V6 = 1220
const DUP_ACK_THRESHOLD = 3
const MAX_SYN_WINDOW = 0xffff
const CHALLENGE_ACKS_PER_SECOND = 10

const SYNCHRONIZED: ReadonlySet<TcpState> = new Set(['ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2', 'CLOSE_WAIT', 'CLOSING', 'LAST_ACK', 'TIME_WAIT'])
const SENDS_DATA: ReadonlySet<TcpState> = new Set(['ESTABLISHED', 'CLOSE_WAIT', 'FIN_WAIT_1', 'CLOSING', 'LAST_ACK'])
const ACCEPTS_DATA: ReadonlySet<TcpState> = new Set(['ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2'])

interface Recovery {
  mode: 'fast' | 'timeout'
  /** RecoveryPoint: SND.NXT when loss was detected; recovery ends when it is acknowledged. */
  point: number
  /** Proportional Rate Reduction state (RFC 6937), fast recovery only. */
  prr?: { delivered: number; out: number; recoverFs: number; budget: number }
  /** The first retransmission goes out at once, whatever the window (RFC 6675 §5 step 4.3). */
  fastRetransmitDue?: boolean
}

export class TcpConnection {
  state: TcpState
  readonly localAddress: IpAddress
  readonly localPort: number
  readonly remoteAddress: IpAddress
  readonly remotePort: number
  events: TcpConnectionEvents = {}
  readonly stats: TcpStats = {
    segmentsSent: 0,
    segmentsReceived: 0,
    bytesSent: 0,
    bytesRetransmitted: 0,
    retransmitTimeouts: 0,
    fastRecoveries: 0,
    challengeAcks: 0,
    pawsDrops: 0,
    zeroWindowProbes: 0,
    keepAliveProbes: 0,
    tailLossProbes: 0,
    spuriousRetransmissions: 0,
    duplicateSacks: 0,
  }
  noDelay: boolean
  keepAlive: TcpConfig['keepAlive']
  /** True for connections created by a listener. */
  readonly passive: boolean

  // Send side.
  private readonly iss: number
  private sndUna = -1
  private sndNxt = -1
  private sndWnd = 0
  private maxSndWnd = 0
  private sndWl1 = -1
  private sndWl2 = -1
  private finOffset: number | undefined
  private readonly sendBuffer: SendBuffer
  private dupAcks = 0
  private recovery: Recovery | undefined
  private readonly inFlight = new InFlight()
  private readonly rtt: RttEstimator
  private readonly cc: Cubic
  /** Karn-compliant timing of one segment when timestamps are off. */
  private timed: { offset: number; sentAt: number } | undefined
  /** Reused for every segment sent (see `TcpHost.emit`), so sending allocates no header objects. */
  private readonly outSegment: TcpSegment
  private readonly outOptions: TcpOptions = {}
  private readonly outTimestamp = { value: 0, echo: 0 }
  private retransmissions = 0
  private tlpAt: number | undefined
  private reorderWindowMultiplier = 1
  private recoveriesSinceDsack = 0
  /** Congestion state before the latest loss response, and the TSval of its first retransmission (Eifel, RFC 3522). */
  private undo: { state: CubicState; tsVal: number; retransmittedEnd: number | undefined } | undefined
  /** SND.NXT when a tail loss probe went out; no second probe until it is acknowledged. */
  private tlpEnd: number | undefined

  // Receive side.
  private irs = 0
  private synReceived = false
  private readonly receiveBuffer: ReceiveBuffer
  private peerFinOffset: number | undefined
  private finConsumed = false
  private rcvAdvRight = 0
  private lastAckSent = 0
  private ackNow = false
  private unackedBytes = 0
  private readClosed = false
  /** A duplicate segment to report as the first SACK block of the next ACK (D-SACK). */
  private duplicateReport: { start: number; end: number } | undefined
  /** Whether the segment being received may be kept without a copy (see `receive`). */
  private payloadOwned = false
  /** Receiver-side RTT estimate from echoed timestamps (ms), for window autotuning. */
  private rcvRtt: number | undefined
  /** Autotuning measurement: when it started, the bytes read by then, the best per-RTT figure so far. */
  private rcvSpaceAt: number
  private rcvSpaceRead = 0
  private rcvSpace = 0

  // Negotiated options.
  private readonly ourMss: number
  private peerMss: number
  private effectiveMss: number
  private readonly ourScale: number
  private sndScale = 0
  private rcvScale = 0
  private peerOfferedScale = false
  private timestampsOk = false
  private sackOk = false
  private tsRecent = 0
  private readonly tsOffset: number

  // Timers (absolute deadlines in ms).
  private rtoAt: number | undefined
  private delayedAckAt: number | undefined
  private persistAt: number | undefined
  private persistBackoff = 0
  private keepAliveAt: number | undefined
  private keepAliveProbes = 0
  private timeWaitAt: number | undefined
  private lastReceivedAt: number

  private closedReported = false

  constructor(
    private readonly host: TcpHost,
    endpoints: TcpEndpoints,
    private readonly config: TcpConfig,
    /** Our MSS from the tunnel MTU, already net of IP and TCP headers. */
    mss: number,
    iss: number,
    timestampOffset: number,
    now: number,
    passive: boolean,
  ) {
    this.localAddress = endpoints.localAddress
    this.localPort = endpoints.localPort
    this.remoteAddress = endpoints.remoteAddress
    this.remotePort = endpoints.remotePort
    this.outSegment = { srcPort: this.localPort, dstPort: this.remotePort, seq: 0, ack: 0, flags: 0, window: 0, urgent: 0, options: this.outOptions, payload: NO_PAYLOAD }
    this.iss = iss >>> 0
    this.tsOffset = timestampOffset >>> 0
    this.ourMss = mss
    this.peerMss = endpoints.remoteAddress.length === 4 ? DEFAULT_MSS_V4 : DEFAULT_MSS_V6
    this.effectiveMss = Math.min(mss, this.peerMss)
    this.sendBuffer = new SendBuffer(config.sendBufferSize)
    this.receiveBuffer = new ReceiveBuffer(config.receiveBufferSize)
    this.rtt = new RttEstimator(config.minRtoMs)
    this.cc = new Cubic(this.effectiveMss)
    this.noDelay = config.noDelay
    this.keepAlive = config.keepAlive
    this.passive = passive
    this.lastReceivedAt = now
    this.rcvSpaceAt = now
    // The scale is fixed by the SYN (RFC 7323 §2.2), so it must already cover the autotuning cap.
    const largestWindow = Math.max(config.receiveBufferSize, config.maxReceiveWindow)
    let scale = 0
    while (scale < MAX_WINDOW_SCALE && largestWindow / 2 ** scale > 0xffff) scale++
    this.ourScale = config.windowScaling ? scale : 0
    this.state = passive ? 'SYN_RECEIVED' : 'SYN_SENT'
  }

  // ---------------------------------------------------------------- opening

  /** Active open: queue the SYN. */
  open(now: number): void {
    this.sendSyn(now)
  }

  /** Passive open from a listener: adopt the peer's SYN and answer with SYN-ACK. */
  acceptSyn(seg: TcpSegment, now: number): void {
    this.adoptSyn(seg)
    this.sndWnd = seg.window
    this.maxSndWnd = this.sndWnd
    this.sendSyn(now)
  }

  private adoptSyn(seg: TcpSegment): void {
    this.irs = seg.seq >>> 0
    this.synReceived = true
    const o = seg.options
    this.peerOfferedScale = o.windowScale !== undefined
    if (o.mss !== undefined && o.mss > 0) this.peerMss = o.mss
    if (this.config.windowScaling && o.windowScale !== undefined) {
      this.sndScale = Math.min(o.windowScale, MAX_WINDOW_SCALE)
      this.rcvScale = this.ourScale
    } else {
      this.sndScale = 0
      this.rcvScale = 0
    }
    this.timestampsOk = this.config.timestamps && o.timestamp !== undefined
    if (this.timestampsOk) this.tsRecent = o.timestamp!.value >>> 0
    this.sackOk = this.config.sack && o.sackPermitted === true
    this.effectiveMss = Math.max(64, Math.min(this.ourMss, this.peerMss) - (this.timestampsOk ? TIMESTAMP_OPTION_BYTES : 0))
    this.cc.setMss(this.effectiveMss)
    this.rcvAdvRight = 0
    this.lastAckSent = 0
  }

  /** SYN, or SYN-ACK once the peer's SYN is known; a SYN-ACK only echoes options the SYN offered. */
  private sendSyn(now: number): void {
    const options: TcpOptions = { mss: this.ourMss }
    const synAck = this.synReceived
    if (this.config.windowScaling && (!synAck || this.peerOfferedScale)) options.windowScale = this.ourScale
    if (this.config.sack && (!synAck || this.sackOk)) options.sackPermitted = true
    if (this.config.timestamps && (!synAck || this.timestampsOk)) {
      options.timestamp = { value: this.tsNow(now), echo: synAck ? this.tsRecent : 0 }
    }
    this.sndNxt = 0
    this.emit(SYN | (synAck ? ACK : 0), -1, NO_PAYLOAD, options)
    if (this.rtoAt === undefined) this.rtoAt = now + this.rtt.rto
    if (this.timed === undefined && this.retransmissions === 0) this.timed = { offset: 0, sentAt: now }
  }

  // ---------------------------------------------------------------- application side

  get mss(): number {
    return this.effectiveMss
  }
  /** Bytes `write` would accept now. */
  get writableSpace(): number {
    if (this.finOffset !== undefined || this.state === 'CLOSED') return 0
    return this.sendBuffer.space
  }
  get bufferedToSend(): number {
    return this.sendBuffer.length
  }
  get readableLength(): number {
    return this.receiveBuffer.readable
  }
  /** The peer finished sending and every byte has been read. */
  get readEnded(): boolean {
    return this.finConsumed && this.receiveBuffer.readable === 0
  }
  get isSynchronized(): boolean {
    return SYNCHRONIZED.has(this.state)
  }
  /** The stack may forget this connection. */
  get isDead(): boolean {
    return this.state === 'CLOSED'
  }
  get smoothedRtt(): number | undefined {
    return this.rtt.srtt
  }
  get congestionWindow(): number {
    return this.cc.cwnd
  }
  get negotiated(): { mss: number; sendScale: number; receiveScale: number; timestamps: boolean; sack: boolean } {
    return { mss: this.effectiveMss, sendScale: this.sndScale, receiveScale: this.rcvScale, timestamps: this.timestampsOk, sack: this.sackOk }
  }

  /** Queues bytes to send and returns how many were taken (0 when the send buffer is full). */
  write(data: Uint8Array): number {
    if (this.finOffset !== undefined) throw new TcpError('closed', 'cannot write after the sending side was closed')
    if (this.state === 'CLOSED') throw new TcpError('closed', 'cannot write to a closed connection')
    const n = this.sendBuffer.write(data)
    if (n > 0) this.host.markDirty(this)
    return n
  }

  /** Takes up to `max` in-order received bytes. */
  read(max = Infinity): Uint8Array | undefined {
    const data = this.receiveBuffer.read(max)
    if (data && this.isSynchronized && !this.finConsumed) {
      // Window update (RFC 9293 §3.8.6.2.2): announce once the window has at least doubled.
      const gain = this.windowEdgeCandidate() - this.rcvAdvRight
      const remaining = this.rcvAdvRight - this.receiveBuffer.end
      if (gain >= this.swsThreshold() && gain >= remaining) {
        this.ackNow = true
        this.host.markDirty(this)
      }
    }
    return data
  }

  /** Half-close: send FIN after the queued data; reading continues. */
  shutdown(): void {
    if (this.finOffset !== undefined) return
    switch (this.state) {
      case 'SYN_SENT':
        this.finish(undefined)
        return
      case 'SYN_RECEIVED':
      case 'ESTABLISHED':
        this.finOffset = this.sendBuffer.end
        if (this.state === 'ESTABLISHED') this.state = 'FIN_WAIT_1'
        break
      case 'CLOSE_WAIT':
        this.finOffset = this.sendBuffer.end
        this.state = 'LAST_ACK'
        break
      default:
        return
    }
    this.host.markDirty(this)
  }

  /** Stops reading: buffered and future data is discarded (the window stays open); writing continues. */
  shutdownRead(): void {
    this.readClosed = true
    while (this.receiveBuffer.read() !== undefined);
    if (this.isSynchronized && !this.finConsumed) {
      this.ackNow = true
      this.host.markDirty(this)
    }
  }

  /** Full close: no more reading or writing. Unread data makes it an abort (RFC 2525 §2.17). */
  close(): void {
    this.readClosed = true
    if (this.receiveBuffer.readable > 0 && this.isSynchronized && !this.finConsumed) {
      this.abort()
      return
    }
    this.shutdown()
  }

  /** Sends RST and drops the connection. */
  abort(): void {
    if (this.state === 'CLOSED') return
    if (this.state !== 'SYN_SENT' && this.state !== 'TIME_WAIT') {
      this.emit(RST | ACK, this.sndNxt, NO_PAYLOAD, {})
    }
    this.finish(new TcpError('aborted', 'connection aborted locally'))
    this.host.markDirty(this)
  }

  // ---------------------------------------------------------------- timers

  nextEvent(): number | undefined {
    // Called for every connection on every poll: plain comparisons, no arrays.
    let next = earliest(this.rtoAt, this.delayedAckAt)
    next = earliest(next, this.persistAt)
    next = earliest(next, this.keepAliveDeadline())
    next = earliest(next, this.timeWaitAt)
    next = earliest(next, this.inFlight.reorderDeadline)
    return earliest(next, this.tlpAt)
  }

  private keepAliveDeadline(): number | undefined {
    if (!this.keepAlive || (this.state !== 'ESTABLISHED' && this.state !== 'CLOSE_WAIT')) return undefined
    if (this.sndUna < this.sndNxt) return undefined // the retransmission timer watches the peer
    if (this.keepAliveAt !== undefined) return this.keepAliveAt
    return this.lastReceivedAt + this.keepAlive.idleMs
  }

  /** Runs expired timers and sends what is due. */
  poll(now: number): void {
    if (this.timeWaitAt !== undefined && now >= this.timeWaitAt) {
      // TIME_WAIT over, or an orphaned FIN_WAIT_2 given up (as Linux's tcp_fin_timeout does).
      this.finish(undefined)
      return
    }
    if (this.rtoAt !== undefined && now >= this.rtoAt) this.onRetransmitTimeout(now)
    if (this.state === 'CLOSED') return
    const reorderDeadline = this.inFlight.reorderDeadline
    if (reorderDeadline !== undefined && now >= reorderDeadline) this.detectLosses(now)
    if (this.tlpAt !== undefined && now >= this.tlpAt) this.onTailLossProbe(now)
    if (this.persistAt !== undefined && now >= this.persistAt) this.onPersist(now)
    const keepAliveDue = this.keepAliveDeadline()
    if (keepAliveDue !== undefined && now >= keepAliveDue) this.onKeepAlive(now)
    if (this.isDead) return
    if (this.delayedAckAt !== undefined && now >= this.delayedAckAt) this.ackNow = true
    this.flush(now)
  }

  private onRetransmitTimeout(now: number): void {
    this.rtoAt = undefined
    this.stats.retransmitTimeouts++
    this.retransmissions++
    this.timed = undefined
    if (this.state === 'SYN_SENT' || this.state === 'SYN_RECEIVED') {
      if (this.retransmissions > this.config.synRetries) {
        this.finish(new TcpError('timeout', 'connection timed out'), this.state === 'SYN_RECEIVED')
        return
      }
      this.rtt.backoff()
      this.sendSyn(now)
      return
    }
    if (this.sndUna >= this.sndNxt) return
    if (this.retransmissions > this.config.maxRetransmissions) {
      this.finish(new TcpError('timeout', 'connection timed out'), true)
      return
    }
    this.rtt.backoff()
    if (this.retransmissions === 1) {
      this.undo = this.timestampsOk ? { state: this.cc.save(), tsVal: this.tsNow(now), retransmittedEnd: undefined } : undefined
      this.cc.onTimeout()
    } else {
      this.cc.cwnd = this.effectiveMss
    }
    this.recovery = { mode: 'timeout', point: this.sndNxt }
    this.inFlight.markAllLost()
    this.dupAcks = 0
    this.rtoAt = now + this.rtt.rto
  }

  private onPersist(now: number): void {
    this.persistAt = undefined
    const windowEnd = this.sndUna + this.sndWnd
    if (this.sndWnd > 0 && windowEnd > this.sndNxt) {
      // The window is open but too small for the sender's silly-window rules: force what fits.
      this.sendNewData(now, true)
    } else {
      // Probe with an already-acknowledged sequence number: any receiver answers with its window.
      this.stats.zeroWindowProbes++
      this.emit(ACK, this.sndUna - 1, NO_PAYLOAD, this.ackOptions(now))
    }
    this.persistBackoff++
    this.armPersist(now)
  }

  private onKeepAlive(now: number): void {
    const ka = this.keepAlive!
    if (this.keepAliveProbes >= ka.count) {
      this.finish(new TcpError('timeout', 'connection timed out (no keepalive response)'), true)
      return
    }
    this.keepAliveProbes++
    this.stats.keepAliveProbes++
    this.keepAliveAt = now + ka.intervalMs
    this.emit(ACK, this.sndUna - 1, NO_PAYLOAD, this.ackOptions(now))
  }

  // ---------------------------------------------------------------- input

  /** Processes one segment addressed to this connection; `owned` as in `Stack.receive` (the payload may be kept as is). */
  receive(seg: TcpSegment, now: number, owned = false): void {
    this.stats.segmentsReceived++
    if (this.state === 'CLOSED') return
    this.payloadOwned = owned
    if (this.state === 'SYN_SENT') {
      this.receiveInSynSent(seg, now)
      this.flush(now)
      return
    }
    this.receiveSynchronized(seg, now)
    if (!this.isDead) this.flush(now)
  }

  /** An ICMP destination-unreachable quoted our segment with sequence number `seq`. */
  unreachable(seq: number, reason: string): void {
    // Only a SYN we sent (matching ISS, so the error is not forged blindly) aborts the attempt.
    if (this.state === 'SYN_SENT' && seq >>> 0 === this.iss) this.finish(new TcpError('unreachable', reason))
  }

  /** In TIME_WAIT, may a new SYN take over this 4-tuple (RFC 9293 §3.6.1, RFC 6191)? */
  acceptsNewSyn(seg: TcpSegment): boolean {
    if (this.state !== 'TIME_WAIT' || (seg.flags & (SYN | ACK | RST)) !== SYN) return false
    const ts = seg.options.timestamp
    if (this.timestampsOk && ts) return ((ts.value - this.tsRecent) | 0) > 0
    return this.seqToOffset(seg.seq) > this.rcvNxt
  }

  private receiveInSynSent(seg: TcpSegment, now: number): void {
    const hasAck = (seg.flags & ACK) !== 0
    if (hasAck && seg.ack >>> 0 !== this.sendSeq(0)) {
      if (!(seg.flags & RST)) this.emitReset(seg.ack)
      return
    }
    if (seg.flags & RST) {
      if (hasAck) {
        this.finish(new TcpError('refused', `connection refused`))
      }
      return
    }
    if (!(seg.flags & SYN)) return
    this.adoptSyn(seg)
    this.lastReceivedAt = now
    if (hasAck) {
      this.sndUna = 0
      this.sndWnd = seg.window
      this.maxSndWnd = this.sndWnd
      this.sndWl1 = -1
      this.sndWl2 = 0
      this.sampleHandshakeRtt(seg, now)
      this.rtoAt = undefined
      this.retransmissions = 0
      this.state = 'ESTABLISHED'
      this.ackNow = true
      this.events.established?.()
      if (seg.payload.length > 0) this.acceptData(0, seg.payload, (seg.flags & FIN) !== 0, now)
    } else {
      // Simultaneous open (RFC 9293 figure 7).
      this.state = 'SYN_RECEIVED'
      this.sndWnd = seg.window
      this.maxSndWnd = this.sndWnd
      this.rtoAt = undefined
      this.sendSyn(now)
    }
  }

  private sampleHandshakeRtt(seg: TcpSegment, now: number): void {
    const echo = seg.options.timestamp?.echo
    if (this.timestampsOk && echo) this.sampleFromEcho(echo, now)
    else if (this.timed && this.retransmissions === 0) this.sampleRtt(now - this.timed.sentAt)
    this.timed = undefined
  }

  private receiveSynchronized(seg: TcpSegment, now: number): void {
    const flags = seg.flags
    let seq = seg.seq >>> 0
    let payload = seg.payload
    let syn = (flags & SYN) !== 0
    if (syn && seq === this.irs) {
      // A retransmitted SYN or SYN-ACK: its SYN is old news.
      if (this.state === 'SYN_RECEIVED' && !(flags & ACK)) {
        this.sendSyn(now)
        return
      }
      syn = false
      seq = (seq + 1) >>> 0
    }
    const segOffset = this.seqToOffset(seq)
    const segWindow = flags & SYN ? seg.window : seg.window * 2 ** this.sndScale
    const segLength = payload.length + (syn ? 1 : 0) + (flags & FIN ? 1 : 0)
    const rcvNxt = this.rcvNxt
    const rcvWnd = Math.max(0, this.rcvAdvRight - this.receiveBuffer.end)

    // RST (RFC 5961 §3): only an exact match resets; anything else in the window is challenged.
    if (flags & RST) {
      if (segOffset === rcvNxt) {
        if (this.state === 'SYN_RECEIVED' && this.passive) this.finish(undefined)
        else if (this.state === 'CLOSING' || this.state === 'LAST_ACK' || this.state === 'TIME_WAIT') this.finish(undefined)
        else this.finish(new TcpError('reset', 'connection reset by peer'))
      } else if (segOffset > rcvNxt && segOffset < rcvNxt + Math.max(rcvWnd, 1)) {
        this.challengeAck(now)
      }
      return
    }

    // A SYN on a synchronized connection, whatever its sequence number (RFC 5961 §4).
    if (syn && this.state !== 'SYN_RECEIVED') {
      this.challengeAck(now)
      return
    }

    // PAWS (RFC 7323 §5.3).
    const ts = seg.options.timestamp
    const pureAck = payload.length === 0 && !(flags & (SYN | FIN)) && segOffset === rcvNxt
    const staleBy = ts ? (this.tsRecent - ts.value) | 0 : 0
    // A reordered pure ACK is only a little older than TS.Recent; dropping it would discard its
    // SACK information for no protection (Linux's tcp_disordered_ack makes the same exception).
    if (this.timestampsOk && ts && staleBy > 0 && !(pureAck && staleBy <= this.rtt.rto)) {
      this.stats.pawsDrops++
      this.ackNow = true
      return
    }

    // Sequence acceptability (RFC 9293 §3.10.7.4).
    let acceptable: boolean
    if (segLength === 0) acceptable = rcvWnd === 0 ? segOffset === rcvNxt : segOffset >= rcvNxt && segOffset < rcvNxt + rcvWnd
    else acceptable = rcvWnd > 0 && ((segOffset >= rcvNxt && segOffset < rcvNxt + rcvWnd) || (segOffset + segLength - 1 >= rcvNxt && segOffset + segLength - 1 < rcvNxt + rcvWnd))
    if (!acceptable) {
      this.ackNow = true
      // Data we already have: report it as a D-SACK (RFC 2883) so the sender learns its
      // retransmission was spurious and widens its reordering window.
      if (payload.length > 0 && segOffset + payload.length <= rcvNxt && this.sackOk) {
        this.duplicateReport = { start: segOffset, end: segOffset + payload.length }
      }
      // A zero window must still let ACKs through, or two full receivers deadlock.
      if (rcvWnd === 0 && segOffset === rcvNxt && flags & ACK && this.state !== 'SYN_RECEIVED') this.processAck(seg, segOffset, segWindow, now)
      if (this.state === 'TIME_WAIT' && flags & FIN) this.timeWaitAt = now + this.config.timeWaitMs
      return
    }
    this.lastReceivedAt = now
    this.keepAliveAt = undefined
    this.keepAliveProbes = 0

    if (ts && segOffset <= this.lastAckSent && ((ts.value - this.tsRecent) | 0) >= 0) this.tsRecent = ts.value >>> 0
    if (this.timestampsOk && ts && ts.echo !== 0 && payload.length >= this.effectiveMss) this.sampleReceiverRtt((this.tsNow(now) - ts.echo) >>> 0)

    // SYN in a synchronized state (RFC 5961 §4).
    if (syn) {
      this.challengeAck(now)
      return
    }
    if (!(flags & ACK)) return

    if (this.state === 'SYN_RECEIVED') {
      const ackOffset = this.ackToOffset(seg.ack)
      if (ackOffset !== 0) {
        this.emitReset(seg.ack)
        return
      }
      this.sndUna = 0
      this.sndWnd = segWindow
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd)
      this.sndWl1 = segOffset
      this.sndWl2 = 0
      this.sampleHandshakeRtt(seg, now)
      this.rtoAt = undefined
      this.retransmissions = 0
      this.state = this.finOffset !== undefined ? 'FIN_WAIT_1' : 'ESTABLISHED'
      this.events.established?.()
    } else if (!this.processAck(seg, segOffset, segWindow, now)) {
      return
    }
    if (this.state === 'CLOSED') return

    // Trim to what is new and inside the window; anything beyond is dropped and re-sent later.
    const dataOffset = segOffset
    let fin = (flags & FIN) !== 0
    if (payload.length > 0 || fin) {
      if (!ACCEPTS_DATA.has(this.state)) {
        if (this.state === 'TIME_WAIT' && fin) {
          this.ackNow = true
          this.timeWaitAt = now + this.config.timeWaitMs
        }
        return
      }
      const windowEnd = rcvNxt + rcvWnd
      if (dataOffset + payload.length > windowEnd) {
        payload = payload.subarray(0, Math.max(0, windowEnd - dataOffset))
        fin = false
      }
      this.acceptData(dataOffset, payload, fin, now)
    }
  }

  /** Handles the ACK field; false means the segment must be dropped. */
  private processAck(seg: TcpSegment, segOffset: number, segWindow: number, now: number): boolean {
    const ackOffset = this.ackToOffset(seg.ack)
    if (ackOffset > this.sndNxt) {
      this.ackNow = true
      return false
    }
    if (ackOffset < this.sndUna - this.maxSndWnd) {
      // RFC 5961 §5.2: too old to be genuine.
      this.ackNow = true
      return false
    }
    let newlySacked = 0
    const deliveredBefore = this.inFlight.deliveredBytes
    if (this.sackOk && seg.options.sack) {
      const first = seg.options.sack[0]
      if (first && this.ackToOffset(first[1]) <= ackOffset && this.ackToOffset(first[1]) > this.ackToOffset(first[0])) {
        // D-SACK (RFC 2883): a segment arrived twice, so a retransmission was unneeded — the
        // network reorders more than our window allowed for (RFC 8985 §6.2 step 4).
        this.stats.duplicateSacks++
        this.reorderWindowMultiplier = Math.min(this.reorderWindowMultiplier + 1, 8)
        this.recoveriesSinceDsack = 0
      }
      for (const [left, right] of seg.options.sack) {
        const start = Math.max(this.ackToOffset(left), ackOffset)
        const end = Math.min(this.ackToOffset(right), this.sndNxt)
        if (end > start) newlySacked += this.inFlight.sack(start, end, now)
      }
    }
    const oldWindow = this.sndWnd
    const sndUnaBefore = this.sndUna
    const flightBefore = this.sndNxt - this.sndUna
    if (ackOffset > this.sndUna) {
      const acked = ackOffset - this.sndUna
      this.sndUna = ackOffset
      this.sendBuffer.acknowledge(Math.min(ackOffset, this.sendBuffer.end))
      this.inFlight.acknowledge(ackOffset, now)
      const echo = seg.options.timestamp?.echo
      const undo = this.undo
      if (undo && echo && undo.retransmittedEnd !== undefined && ackOffset >= undo.retransmittedEnd) {
        // Eifel detection (RFC 3522): the ACK for the retransmitted oldest segment echoes the
        // original's timestamp, so the original arrived and the loss response was spurious
        // (RFC 4015: undo it).
        if (((echo - undo.tsVal) | 0) < 0) {
          this.stats.spuriousRetransmissions++
          this.cc.restore(undo.state)
          this.inFlight.clearLost()
          this.recovery = undefined
        }
        this.undo = undefined
      }
      if (this.timestampsOk && echo) this.sampleFromEcho(echo, now)
      else if (this.timed && ackOffset >= this.timed.offset) {
        this.sampleRtt(now - this.timed.sentAt)
        this.timed = undefined
      }
      this.retransmissions = 0
      this.dupAcks = 0
      this.persistBackoff = 0
      // After a retransmission timeout the sender slow-starts again from one segment (RFC 5681
      // §3.1), so ACKs in timeout recovery must grow the window; fast recovery is paced by PRR.
      const recoveryMode = this.recovery?.mode
      if (this.recovery) {
        if (ackOffset >= this.recovery.point) {
          this.recovery = undefined
          this.undo = undefined
        } else if (!this.sackOk) {
          // NewReno partial ACK (RFC 6582 §3.2): the next hole is lost too.
          this.inFlight.markFirstLost()
        }
      }
      if (recoveryMode !== 'fast') this.cc.onAck(acked, flightBefore, now, this.rtt.srtt, ackOffset, this.sndNxt)
      // Send-buffer autotuning (as Linux tcp_sndbuf_expand): once the peer offers a window larger
      // than we can queue, room for two congestion windows, so a long fat path is not limited by
      // what the application may queue. A peer whose window stays small never grows it.
      if (this.maxSndWnd > this.sendBuffer.capacity) {
        // Whole bytes: CUBIC's cwnd is fractional, and the buffer's offsets must stay integers.
        const wanted = Math.floor(Math.min(this.config.maxSendBuffer, 2 * this.cc.cwnd, 2 * this.maxSndWnd))
        if (wanted > this.sendBuffer.capacity) this.sendBuffer.grow(wanted)
      }
      this.rtoAt = this.sndUna < this.sndNxt ? now + this.rtt.rto : undefined
      // Progress: the tail probe is re-armed from now by the next flush.
      this.tlpEnd = undefined
      this.tlpAt = undefined
      if (this.finOffset === undefined) this.events.writable?.()
    } else if (
      ackOffset === this.sndUna &&
      this.sndUna < this.sndNxt &&
      seg.payload.length === 0 &&
      !(seg.flags & (SYN | FIN)) &&
      segWindow === oldWindow &&
      (!this.sackOk || newlySacked > 0)
    ) {
      this.dupAcks++
    }

    // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 guard against old segments).
    if (this.sndWl1 < segOffset || (this.sndWl1 === segOffset && this.sndWl2 <= ackOffset)) {
      this.sndWnd = segWindow
      this.sndWl1 = segOffset
      this.sndWl2 = ackOffset
      if (this.sndWnd > this.maxSndWnd) this.maxSndWnd = this.sndWnd
      if (this.sndWnd > 0) {
        this.persistAt = undefined
        this.persistBackoff = 0
      }
    }

    const prr = this.recovery?.prr
    if (prr) {
      // RFC 6937: DeliveredData = change in SND.UNA + change in SACKed bytes.
      const deliveredData = this.sndUna - sndUnaBefore + (this.inFlight.deliveredBytes - deliveredBefore)
      if (deliveredData > 0) {
        prr.delivered += deliveredData
        const pipe = this.pipe()
        const ssthresh = this.cc.ssthresh
        const sndcnt =
          pipe > ssthresh
            ? Math.ceil((prr.delivered * ssthresh) / prr.recoverFs) - prr.out
            : Math.min(ssthresh - pipe, Math.max(prr.delivered - prr.out, deliveredData) + this.effectiveMss)
        prr.budget = Math.max(0, sndcnt)
      }
    }

    if (this.sackOk) {
      if (ackOffset > sndUnaBefore || newlySacked > 0) this.detectLosses(now)
    } else if (!this.recovery && this.dupAcks >= DUP_ACK_THRESHOLD && this.inFlight.markFirstLost() > 0) {
      this.enterFastRecovery(now)
    }

    // Our FIN acknowledged?
    if (this.finOffset !== undefined && this.sndUna > this.finOffset) {
      if (this.state === 'FIN_WAIT_1') {
        this.state = 'FIN_WAIT_2'
        if (this.readClosed) this.timeWaitAt = now + this.config.timeWaitMs
      } else if (this.state === 'CLOSING') this.enterTimeWait(now)
      else if (this.state === 'LAST_ACK') {
        this.finish(undefined)
        return false
      }
    }
    return true
  }

  private sampleFromEcho(echo: number, now: number): void {
    const elapsed = (this.tsNow(now) - echo) >>> 0
    if (elapsed < 0x7fffffff) this.sampleRtt(elapsed)
  }

  private sampleRtt(rtt: number): void {
    this.rtt.sample(rtt)
    this.cc.onRttSample(rtt)
    if (rtt < this.inFlight.minRtt) this.inFlight.minRtt = Math.max(rtt, 1)
  }

  private acceptData(offset: number, payload: Uint8Array, fin: boolean, now: number): void {
    if (payload.length > 0) {
      const endBefore = this.receiveBuffer.end
      const heldBefore = this.receiveBuffer.hasHeld
      const advanced = this.receiveBuffer.insert(offset, payload, this.payloadOwned)
      if (offset === endBefore && !heldBefore && advanced === payload.length) {
        // In order: delayed ACK, at least every second full-sized segment (RFC 5681 §4.2).
        this.unackedBytes += payload.length
        if (this.unackedBytes >= 2 * this.effectiveMss) this.ackNow = true
        else if (this.delayedAckAt === undefined) this.delayedAckAt = now + this.config.delayedAckMs
      } else {
        // Out of order, duplicate or hole-filling: ACK at once so the sender learns fast.
        this.ackNow = true
      }
      if (this.readClosed) while (this.receiveBuffer.read() !== undefined);
      if (advanced > 0) {
        this.events.readable?.()
        this.autotuneReceiveWindow(now)
      }
    }
    if (fin) this.peerFinOffset = offset + payload.length
    if (this.peerFinOffset !== undefined && !this.finConsumed && this.receiveBuffer.end === this.peerFinOffset) {
      this.finConsumed = true
      this.ackNow = true
      if (this.state === 'ESTABLISHED') this.state = 'CLOSE_WAIT'
      else if (this.state === 'FIN_WAIT_1') this.state = 'CLOSING'
      else if (this.state === 'FIN_WAIT_2') this.enterTimeWait(now)
      this.events.readable?.()
    }
  }

  /**
   * A full-sized segment echoed the timestamp of one of our ACKs: that is one round trip as the
   * receiver sees it (Linux tcp_rcv_rtt_measure_ts). Smoothed by 1/8, lower samples taken at
   * once, as in tcp_rcv_rtt_update, so a sender that was briefly idle does not inflate it.
   */
  private sampleReceiverRtt(sample: number): void {
    if (sample >= 0x7fffffff) return
    const rtt = Math.max(sample, 1)
    this.rcvRtt = this.rcvRtt === undefined || rtt < this.rcvRtt ? rtt : this.rcvRtt + (rtt - this.rcvRtt) / 8
  }

  /**
   * Receive-window autotuning (dynamic right-sizing, as Linux tcp_rcv_space_adjust): once per
   * RTT, the bytes the application read in that RTT are the path's bandwidth-delay product as
   * far as this connection can use it; the buffer, and with it the advertised window, grows to
   * twice that plus 16 segments (room for the sender's slow start) up to `maxReceiveWindow`.
   * A slow reader reads little per RTT, so its window does not grow. The window never shrinks.
   */
  private autotuneReceiveWindow(now: number): void {
    const rtt = this.rcvRtt ?? this.rtt.srtt
    if (rtt === undefined || now - this.rcvSpaceAt < rtt) return
    const read = this.receiveBuffer.consumed - this.rcvSpaceRead
    this.rcvSpaceAt = now
    this.rcvSpaceRead = this.receiveBuffer.consumed
    if (read <= this.rcvSpace) return
    this.rcvSpace = read
    // Without window scaling the field cannot say more than 64 KiB, so more buffer would be waste.
    const cap = Math.min(this.config.maxReceiveWindow, 0xffff * 2 ** this.rcvScale)
    this.receiveBuffer.grow(Math.min(cap, 2 * read + 16 * this.effectiveMss))
  }

  /** The largest window the receive buffer may grow to (tests and diagnostics). */
  get receiveWindowCapacity(): number {
    return this.receiveBuffer.capacity
  }

  private enterTimeWait(now: number): void {
    this.state = 'TIME_WAIT'
    this.rtoAt = undefined
    this.persistAt = undefined
    this.delayedAckAt = undefined
    this.timeWaitAt = now + this.config.timeWaitMs
    this.sendBuffer.release()
    this.receiveBuffer.release()
    this.reportClosed(undefined)
  }

  /** RFC 5961 challenge ACK, throttled (§7) so forged segments cannot turn us into an ACK flood. */
  private challengeAck(now: number): void {
    if (now - this.challengeWindowStart >= 1000) {
      this.challengeWindowStart = now
      this.challengesInWindow = 0
    }
    if (this.challengesInWindow >= CHALLENGE_ACKS_PER_SECOND) return
    this.challengesInWindow++
    this.stats.challengeAcks++
    this.ackNow = true
  }
  private challengeWindowStart = -Infinity
  private challengesInWindow = 0

  // ---------------------------------------------------------------- output

  /** Sends whatever the windows allow plus any owed ACK. */
  flush(now: number): void {
    if (SENDS_DATA.has(this.state)) {
      this.retransmitLost(now)
      this.sendNewData(now, false)
      this.armPersist(now)
      if (this.tlpAt === undefined || this.tlpAt <= now) this.armTailLossProbe(now)
    }
    if (this.ackNow && this.synReceived && this.state !== 'SYN_SENT' && this.state !== 'CLOSED') {
      if (this.state === 'SYN_RECEIVED') this.sendSyn(now)
      else this.emit(ACK, this.sndNxt, NO_PAYLOAD, this.ackOptions(now))
    }
  }

  /** Bytes still in the network (RFC 6675 pipe): sent, not SACKed, not deemed lost. */
  private pipe(): number {
    let pipe = this.sndNxt - this.sndUna - this.inFlight.deliveredBytes - this.inFlight.lostBytes
    if (!this.sackOk) pipe -= this.dupAcks * this.effectiveMss
    return Math.max(0, pipe)
  }

  /** RACK loss detection (RFC 8985) after new delivery information or the reorder timer. */
  private detectLosses(now: number): void {
    const minRtt = this.inFlight.minRtt
    const srtt = this.rtt.srtt ?? this.rtt.rto
    const reorderWindow = Number.isFinite(minRtt) ? Math.min((this.reorderWindowMultiplier * minRtt) / 4, srtt) : 0
    if (this.inFlight.detectLosses(now, reorderWindow, srtt) > 0 && !this.recovery) this.enterFastRecovery(now)
  }

  /**
   * Tail loss probe (RFC 8985 §7): when the tail of a flight goes unacknowledged for about two
   * RTTs, send one segment (new data, else the last one again) so that SACK can reveal the loss
   * and recovery start without waiting for the retransmission timeout.
   */
  private armTailLossProbe(now: number): void {
    this.tlpAt = undefined
    const srtt = this.rtt.srtt
    if (!this.sackOk || this.recovery || this.tlpEnd !== undefined || this.sndUna >= this.sndNxt || srtt === undefined) return
    if (this.state === 'SYN_SENT' || this.state === 'SYN_RECEIVED') return
    let pto = Math.max(2 * srtt, 10)
    // A lone segment may sit in the peer's delayed-ACK timer (worst case 200 ms).
    if (this.sndNxt - this.sndUna <= this.effectiveMss) pto += 200
    const at = now + pto
    if (this.rtoAt !== undefined && at >= this.rtoAt) return
    this.tlpAt = at
  }

  private onTailLossProbe(now: number): void {
    this.tlpAt = undefined
    if (this.recovery || this.sndUna >= this.sndNxt) return
    const pending = this.sendBuffer.end - this.sndNxt
    const windowRoom = this.sndUna + this.sndWnd - this.sndNxt
    if (pending > 0 && windowRoom > 0) {
      this.sendRange(this.sndNxt, this.sndNxt + Math.min(this.effectiveMss, pending, windowRoom), now, false)
    } else {
      const last = this.inFlight.lastOutstanding()
      if (!last) return
      this.sendRange(last.start, last.end, now, true)
      this.inFlight.resent(last, now)
    }
    this.stats.tailLossProbes++
    this.tlpEnd = this.sndNxt
    this.rtoAt = now + this.rtt.rto
  }

  private enterFastRecovery(now: number): void {
    this.stats.fastRecoveries++
    // RFC 8985 §6.2: the widened reordering window decays after 16 recoveries without D-SACK.
    if (++this.recoveriesSinceDsack >= 16) {
      this.reorderWindowMultiplier = 1
      this.recoveriesSinceDsack = 0
    }
    this.undo = this.timestampsOk ? { state: this.cc.save(), tsVal: this.tsNow(now), retransmittedEnd: undefined } : undefined
    this.cc.onCongestion()
    const flight = this.sndNxt - this.sndUna
    this.recovery = { mode: 'fast', point: this.sndNxt, prr: { delivered: 0, out: 0, recoverFs: Math.max(flight, 1), budget: 0 }, fastRetransmitDue: true }
    this.timed = undefined
  }

  /** Bytes the congestion state lets us send now: the PRR budget in fast recovery, else cwnd − pipe. */
  private sendAllowance(): number {
    const prr = this.recovery?.prr
    return prr ? prr.budget : this.cc.cwnd - this.pipe()
  }

  private consumeAllowance(bytes: number): void {
    const prr = this.recovery?.prr
    if (prr) {
      prr.budget -= bytes
      prr.out += bytes
    }
  }

  private retransmitLost(now: number): void {
    if (this.inFlight.lostBytes <= 0) return
    for (const seg of this.inFlight.lost()) {
      const length = seg.end - seg.start
      const due = this.recovery?.fastRetransmitDue === true
      if (!due && this.sendAllowance() < length && this.pipe() > 0) return
      if (this.recovery) this.recovery.fastRetransmitDue = false
      if (this.undo && this.undo.retransmittedEnd === undefined) {
        // Eifel only judges a retransmission of the oldest outstanding segment.
        if (seg.start === this.sndUna) {
          this.undo.retransmittedEnd = seg.end
          this.undo.tsVal = this.tsNow(now)
        } else {
          this.undo = undefined
        }
      }
      this.sendRange(seg.start, seg.end, now, true)
      this.inFlight.resent(seg, now)
      this.consumeAllowance(length)
    }
  }

  private sendNewData(now: number, force: boolean): void {
    const mss = this.effectiveMss
    for (;;) {
      const dataEnd = this.sendBuffer.end
      if (this.sndNxt < dataEnd) {
        const windowRoom = this.sndUna + this.sndWnd - this.sndNxt
        const cwndRoom = this.sendAllowance()
        const pending = dataEnd - this.sndNxt
        const length = Math.min(mss, pending, windowRoom, force ? Infinity : cwndRoom)
        if (length <= 0) return
        if (length < mss && !force) {
          // Nagle (RFC 9293 §3.7.4) and sender-side silly-window avoidance (§3.8.6.2.1): a short
          // segment goes out only as the tail of the data, or when the peer's window is the limit
          // and at least half the largest window it ever offered.
          const isTail = length === pending
          const idle = this.sndNxt === this.sndUna
          const windowLimited = length === windowRoom && length < cwndRoom
          if (!(isTail && (this.noDelay || idle)) && !(windowLimited && length >= this.maxSndWnd / 2)) return
        }
        this.sendRange(this.sndNxt, this.sndNxt + length, now, false)
        this.consumeAllowance(length)
        if (force) return
        continue
      }
      if (this.finOffset !== undefined && this.sndNxt === this.finOffset) this.sendRange(this.finOffset, this.finOffset + 1, now, false)
      return
    }
  }

  /** Sends [start, end) of the send sequence space: data, plus FIN if the range covers it. */
  private sendRange(start: number, end: number, now: number, retransmission: boolean): void {
    const dataEnd = Math.min(end, this.finOffset ?? Infinity, this.sendBuffer.end)
    const payload = dataEnd > start ? this.sendBuffer.slice(start, dataEnd - start) : NO_PAYLOAD
    const fin = this.finOffset !== undefined && end > this.finOffset
    let flags = ACK
    if (fin) flags |= FIN
    if (dataEnd === this.sendBuffer.end && payload.length > 0) flags |= PSH
    this.emit(flags, start, payload, this.ackOptions(now))
    const seqEnd = start + payload.length + (fin ? 1 : 0)
    if (retransmission || seqEnd <= this.sndNxt) {
      this.stats.bytesRetransmitted += payload.length
    } else {
      this.inFlight.sent(start, seqEnd, now)
      this.sndNxt = seqEnd
      if (!this.timestampsOk && this.timed === undefined) this.timed = { offset: seqEnd, sentAt: now }
    }
    if (retransmission && this.timed && this.timed.offset > start) this.timed = undefined
    this.stats.bytesSent += payload.length
    if (this.rtoAt === undefined) this.rtoAt = now + this.rtt.rto
  }

  private armPersist(now: number): void {
    const pendingData = this.sndNxt < this.sendBuffer.end
    if (pendingData && this.sndUna === this.sndNxt && this.rtoAt === undefined) {
      if (this.persistAt === undefined) {
        this.persistAt = now + Math.min(MAX_RTO_MS, Math.max(this.rtt.rto, this.config.minRtoMs) * 2 ** this.persistBackoff)
      }
    } else if (!pendingData) {
      this.persistAt = undefined
    }
  }

  /** The options of a non-SYN segment, in an object reused per segment (see `TcpHost.emit`). */
  private ackOptions(now: number): TcpOptions {
    const options = this.outOptions
    options.timestamp = undefined
    options.sack = undefined
    if (this.timestampsOk) {
      this.outTimestamp.value = this.tsNow(now)
      this.outTimestamp.echo = this.tsRecent
      options.timestamp = this.outTimestamp
    }
    if (this.sackOk && (this.receiveBuffer.hasHeld || this.duplicateReport)) {
      const room = this.timestampsOk ? 3 : 4
      const blocks = this.duplicateReport ? [this.duplicateReport] : []
      this.duplicateReport = undefined
      blocks.push(...this.receiveBuffer.sackBlocks(room - blocks.length))
      options.sack = blocks.map((b) => [this.recvSeq(b.start), this.recvSeq(b.end)])
    }
    return options
  }

  /** The right window edge we could advertise now. */
  private windowEdgeCandidate(): number {
    return this.receiveBuffer.limit
  }

  private swsThreshold(): number {
    return Math.min(this.config.receiveBufferSize / 2, this.effectiveMss)
  }

  private advertisedWindow(): number {
    const end = this.receiveBuffer.end
    let right = this.windowEdgeCandidate()
    // Receiver-side silly-window avoidance: hold the edge until it can move by a useful amount.
    if (right - this.rcvAdvRight < this.swsThreshold()) right = this.rcvAdvRight
    const field = Math.min(0xffff, Math.max(0, right - end) >> this.rcvScale)
    return field
  }

  private emit(flags: number, seqOffset: number, payload: Uint8Array, options: TcpOptions): void {
    let window: number
    let ack = 0
    if (flags & SYN) {
      // Windows in SYN segments are never scaled (RFC 7323 §2.2).
      window = Math.min(this.config.receiveBufferSize, MAX_SYN_WINDOW)
    } else {
      window = flags & ACK ? this.advertisedWindow() : 0
    }
    if (flags & ACK) {
      ack = this.recvSeq(this.rcvNxt)
      const scale = flags & SYN ? 1 : 2 ** this.rcvScale
      const right = this.receiveBuffer.end + window * scale
      if (right > this.rcvAdvRight) this.rcvAdvRight = right
      this.lastAckSent = this.rcvNxt
      this.ackNow = false
      this.unackedBytes = 0
      this.delayedAckAt = undefined
    }
    this.stats.segmentsSent++
    const segment = this.outSegment
    segment.seq = this.sendSeq(seqOffset)
    segment.ack = ack
    segment.flags = flags
    segment.window = window
    segment.options = options
    segment.payload = payload
    this.host.emit(this, segment)
    segment.payload = NO_PAYLOAD // don't pin the send buffer's storage
  }

  /** A bare RST answering an unacceptable ACK (RFC 9293 §3.10.7.3): SEQ = SEG.ACK. */
  private emitReset(seq: number): void {
    this.stats.segmentsSent++
    this.host.emit(this, {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: seq >>> 0,
      ack: 0,
      flags: RST,
      window: 0,
      urgent: 0,
      options: {},
      payload: NO_PAYLOAD,
    })
  }

  // ---------------------------------------------------------------- bookkeeping

  private finish(error: TcpError | undefined, sendReset = false): void {
    if (sendReset && this.state !== 'CLOSED') this.emit(RST | ACK, this.sndNxt, NO_PAYLOAD, {})
    this.state = 'CLOSED'
    this.rtoAt = this.delayedAckAt = this.persistAt = this.keepAliveAt = this.timeWaitAt = undefined
    this.reportClosed(error)
  }

  private reportClosed(error: TcpError | undefined): void {
    if (this.closedReported) return
    this.closedReported = true
    this.events.closed?.(error)
  }

  private get rcvNxt(): number {
    return this.receiveBuffer.end + (this.finConsumed ? 1 : 0)
  }
  private tsNow(now: number): number {
    return (Math.floor(now) + this.tsOffset) >>> 0
  }
  private sendSeq(offset: number): number {
    return (this.iss + 1 + offset) >>> 0
  }
  private recvSeq(offset: number): number {
    return (this.irs + 1 + offset) >>> 0
  }
  private ackToOffset(ack: number): number {
    return this.sndUna + ((ack - this.sendSeq(this.sndUna)) | 0)
  }
  private seqToOffset(seq: number): number {
    return this.rcvNxt + ((seq - this.recvSeq(this.rcvNxt)) | 0)
  }
}

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return a < b ? a : b
}
