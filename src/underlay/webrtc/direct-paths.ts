// The worker-side shell of path selection: one PeerPathSelector per peer, driven by the
// dataplane's clock. It answers disco pings, feeds pongs and WebRTC events to the selectors,
// carries WebRTC signals as sealed disco messages over the relay, and moves each peer's route
// between the relay and the WebRTC underlay as the selector decides.
//
// While a direct channel is open but not trusted, the peer's route points at the WebRTC underlay
// and every datagram is also copied to the relay (the core has one route per peer; the fan-out
// happens here, in `send`).
import type { DataplaneCore, DiscoDatagram } from '../../dataplane/core.ts'
import type { DataplaneDriver } from '../../dataplane/driver.ts'
import { DeadlineTimer, systemClock, type DriverClock } from '../../clock/clock.ts'
import type { UnderlayId } from '../../dataplane/transport.ts'
import { equalBytes, toHex } from '../../crypto/index.ts'
import { DiscoError } from '../disco/errors.ts'
import { DiscoKeyring } from '../disco/envelope.ts'
import { noteCounterActivity, relayMirrorCopies } from '../disco/peer-activity.ts'
import { UNSPECIFIED_ADDR_PORT, type DiscoMessage } from '../disco/messages.ts'
import { PeerPathSelector, type PathKind, type PathSelectorOptions, type PathStatus } from '../disco/path-selector.ts'
import type { WebRtcUnderlay } from './webrtc-underlay.ts'

export interface DirectPathsOptions {
  driver: DataplaneDriver
  /** Our disco private key (not the node key: disco keys are separate, as in Tailscale). */
  discoPrivateKey: Uint8Array
  /** The DERP underlay for peers added without one; its endpoint for a peer is the peer's node key. */
  relayUnderlay: UnderlayId
  webrtc: WebRtcUnderlay
  /** The id `driver.addUnderlay(webrtc)` returned. */
  webrtcUnderlay: UnderlayId
  clock?: DriverClock
  selector?: PathSelectorOptions
  /** How often traffic counters are read while some peer is active (default 1 s). */
  activityCheckMs?: number
  /** … and while every peer is idle (default 5 s, the dataplane's idle cap). */
  idleCheckMs?: number
  /**
   * Try a direct path as soon as a peer is set, instead of when its traffic counters first move
   * (read every `idleCheckMs`). Burrow's nodes probe every online peer anyway, so every peer
   * turns active within seconds; waiting for that only delays the upgrade. Default false.
   */
  attemptOnPeerKnown?: boolean
  /**
   * Start no attempt of our own before this clock time (peers set or turning active meanwhile are
   * tried when it passes; an offer from a peer is answered at once). A starting node sets it a
   * little past its join: opening an RTCPeerConnection and gathering candidates cost the page
   * and the worker tens of milliseconds just when its first connection is being made.
   */
  holdAttemptsUntil?: number
  onPathChange?: (nodeKey: Uint8Array, path: PathKind, rttMs: number | undefined) => void
  reportError?: (error: unknown) => void
}

/**
 * When each step of a peer's first path upgrade happened (the clock's ms), for diagnostics and the
 * `direct` bench: the peer was set, the first attempt started, the first WebRTC signal went out and
 * came in, the page finished ICE gathering, the channel opened, the first pong trusted it.
 */
export interface UpgradePhases {
  known: number
  attempt?: number
  signalSent?: number
  signalReceived?: number
  gathered?: number
  open?: number
  trusted?: number
}

export interface DirectPathCounters {
  pingsSent: number
  pingsAnswered: number
  pongsMatched: number
  signalsSent: number
  signalsReceived: number
  /** Disco messages that did not open or came from no known peer. */
  discoRejected: number
  /** Datagrams also copied to the relay while the direct path was untrusted. */
  mirroredToRelay: number
}

interface PeerEntry {
  nodeKey: Uint8Array
  discoKey: Uint8Array
  /** The relay (DERP underlay) this peer is reached through. */
  relayUnderlay: UnderlayId
  selector: PeerPathSelector
  txPackets: number
  rxPackets: number
  phases: UpgradePhases
}

/** Records the first time of a phase; later ones (retries, heartbeats) leave it alone. */
function mark(phases: UpgradePhases, phase: Exclude<keyof UpgradePhases, 'known'>, now: number): void {
  phases[phase] ??= now
}

/** How long a signal from a peer we do not know yet is kept, and how many are kept at most (all senders). */
const EARLY_SIGNAL_MAX_AGE_MS = 10_000
const EARLY_SIGNALS_MAX = 32

export class DirectPaths {
  readonly keyring: DiscoKeyring
  readonly counters: DirectPathCounters = { pingsSent: 0, pingsAnswered: 0, pongsMatched: 0, signalsSent: 0, signalsReceived: 0, discoRejected: 0, mirroredToRelay: 0 }
  private readonly peers = new Map<string, PeerEntry>()
  private readonly byDisco = new Map<string, PeerEntry>()
  /** WebRTC signals from disco keys not (yet) in the map, by sender, with when they came. */
  private readonly early = new Map<string, Array<{ disco: DiscoDatagram; at: number }>>()
  private readonly clock: DriverClock
  private readonly activityCheckMs: number
  private readonly idleCheckMs: number
  private readonly timer: DeadlineTimer
  private stopped = false
  /** Until the first poll after `holdAttemptsUntil`: peers known meanwhile still need their attempt. */
  private heldPeersPending: boolean

  constructor(private readonly options: DirectPathsOptions) {
    this.heldPeersPending = options.holdAttemptsUntil !== undefined
    this.keyring = new DiscoKeyring(options.discoPrivateKey)
    this.clock = options.clock ?? systemClock
    this.timer = new DeadlineTimer(this.clock, () => this.poll())
    this.activityCheckMs = options.activityCheckMs ?? 1000
    this.idleCheckMs = options.idleCheckMs ?? 5000
    const { webrtc } = options
    webrtc.on('signal', (peer, signal) => {
      const entry = this.peers.get(toHex(peer))
      if (entry) this.sendDisco(peer, entry.relayUnderlay, { type: 'webrtc-signal', signal }, 'signal')
    })
    webrtc.on('gathered', (peer) => {
      const entry = this.peers.get(toHex(peer))
      if (entry) mark(entry.phases, 'gathered', this.clock.now())
    })
    webrtc.on('open', (peer) =>
      this.withPeer(peer, (entry) => {
        // Route through the WebRTC underlay now; `send` mirrors to the relay until a pong trusts it.
        this.setRoute(entry, options.webrtcUnderlay)
        const now = this.clock.now()
        mark(entry.phases, 'open', now)
        // A channel opening means one side has traffic for the other: count it as activity, so the
        // side that waits for traffic (a Node peer) pings at once and its data is not mirrored to
        // the relay until the next counter read notices the transfer (a second of a fast one).
        entry.selector.noteActivity(now)
        entry.selector.directOpened(now)
      }),
    )
    webrtc.on('close', (peer) =>
      this.withPeer(peer, (entry) => {
        this.setRoute(entry, entry.relayUnderlay)
        entry.selector.directClosed(this.clock.now())
      }),
    )
    webrtc.setRelayMirror((peer, datagrams) => this.mirror(peer, datagrams))
    this.schedule()
  }

  /** Our disco public key (publish it with the node's coordination entry). */
  get discoPublicKey(): Uint8Array {
    return this.keyring.publicKey
  }

  /**
   * Adds or updates a peer (from the coordination peer map). The core must already know its node
   * key. `relayUnderlay` is the DERP underlay that reaches it (default: the one in the options).
   */
  setPeer(nodeKey: Uint8Array, discoKey: Uint8Array, relayUnderlay: UnderlayId = this.options.relayUnderlay): void {
    const id = toHex(nodeKey)
    const existing = this.peers.get(id)
    if (existing && equalBytes(existing.discoKey, discoKey)) {
      existing.relayUnderlay = relayUnderlay
      return
    }
    // A new disco key means the peer restarted: its old WebRTC session is gone too.
    if (existing) this.removePeer(nodeKey)
    const entry: PeerEntry = {
      nodeKey: nodeKey.slice(),
      discoKey: discoKey.slice(),
      relayUnderlay,
      selector: new PeerPathSelector(this.options.selector),
      txPackets: 0,
      rxPackets: 0,
      phases: { known: this.clock.now() },
    }
    this.peers.set(id, entry)
    this.byDisco.set(toHex(discoKey), entry)
    if (this.options.attemptOnPeerKnown && !this.holding(this.clock.now())) entry.selector.noteActivity(this.clock.now())
    const early = this.early.get(toHex(discoKey))
    this.early.delete(toHex(discoKey))
    const now = this.clock.now()
    for (const item of early ?? []) if (now - item.at <= EARLY_SIGNAL_MAX_AGE_MS) this.handleDisco(item.disco)
    this.poll()
  }

  removePeer(nodeKey: Uint8Array): void {
    const entry = this.peers.get(toHex(nodeKey))
    if (!entry) return
    // While the entry still exists, so that the bye reaches the peer over its relay.
    this.options.webrtc.disconnect(nodeKey, 'the peer was removed')
    this.peers.delete(toHex(nodeKey))
    this.byDisco.delete(toHex(entry.discoKey))
    this.keyring.forget(entry.discoKey)
  }

  status(nodeKey: Uint8Array): PathStatus | undefined {
    return this.peers.get(toHex(nodeKey))?.selector.status(this.clock.now())
  }

  /** When each phase of the peer's first upgrade happened (a copy), or undefined for an unknown peer. */
  phases(nodeKey: Uint8Array): UpgradePhases | undefined {
    const phases = this.peers.get(toHex(nodeKey))?.phases
    return phases ? { ...phases } : undefined
  }

  /** Give every disco datagram the dataplane hands out here (the worker extension's `onDisco`). */
  handleDisco(disco: DiscoDatagram): void {
    if (this.stopped) return
    let opened: { sender: Uint8Array; message: DiscoMessage }
    try {
      opened = this.keyring.open(disco.datagram)
    } catch (error) {
      if (!(error instanceof DiscoError)) throw error
      this.counters.discoRejected++
      return
    }
    const entry = this.byDisco.get(toHex(opened.sender))
    if (!entry) {
      this.counters.discoRejected++
      // A peer that knows us before we know it (its netmap came first) may already be signalling:
      // keep what it sent for a while and apply it when the coordination map names it.
      if (opened.message.type === 'webrtc-signal') this.stash(toHex(opened.sender), disco)
      return
    }
    const now = this.clock.now()
    const message = opened.message
    switch (message.type) {
      case 'ping':
        this.counters.pingsAnswered++
        // Neither a relay nor a datachannel has an IP endpoint to report.
        this.sendDisco(entry.nodeKey, disco.underlay, { type: 'pong', txId: message.txId, source: UNSPECIFIED_ADDR_PORT }, 'pong', disco.endpoint)
        break
      case 'pong':
        if (disco.underlay === this.options.webrtcUnderlay && entry.selector.handlePong(message.txId, now)) {
          this.counters.pongsMatched++
          mark(entry.phases, 'trusted', now)
        }
        break
      case 'webrtc-signal':
        this.counters.signalsReceived++
        mark(entry.phases, 'signalReceived', now)
        this.options.webrtc.handleSignal(entry.nodeKey, message.signal)
        break
      case 'call-me-maybe':
        // Burrow nodes have no UDP endpoints to try; nothing to do.
        break
    }
    this.poll()
  }

  /** Stops the timer and closes every direct session. */
  stop(): void {
    this.stopped = true
    this.timer.clear()
    for (const entry of [...this.peers.values()]) this.removePeer(entry.nodeKey)
  }

  /** Runs every selector that is due. Public for tests; the timer calls it. */
  poll(): void {
    if (this.stopped) return
    const now = this.clock.now()
    if (this.heldPeersPending && !this.holding(now)) {
      this.heldPeersPending = false
      if (this.options.attemptOnPeerKnown) for (const entry of this.peers.values()) entry.selector.noteActivity(now)
    }
    // While attempts are held the counters are not read, so traffic meanwhile counts when the hold ends.
    if (!this.holding(now)) this.readActivity(now)
    for (const entry of this.peers.values()) {
      for (const action of entry.selector.poll(now)) {
        switch (action.type) {
          case 'ping':
            this.counters.pingsSent++
            this.sendDisco(entry.nodeKey, this.options.webrtcUnderlay, { type: 'ping', txId: action.txId, nodeKey: this.ourNodeKey(), padding: 0 }, 'ping')
            break
          case 'connect-direct':
            mark(entry.phases, 'attempt', now)
            this.options.webrtc.connect(entry.nodeKey)
            break
          case 'abandon-direct':
            this.options.webrtc.disconnect(entry.nodeKey, 'the WebRTC attempt timed out')
            break
          case 'path-changed':
            this.options.onPathChange?.(entry.nodeKey, action.path, action.rttMs)
            break
        }
      }
    }
    this.schedule()
  }

  private stash(sender: string, disco: DiscoDatagram): void {
    const now = this.clock.now()
    let total = 0
    for (const [key, items] of this.early) {
      const fresh = items.filter((item) => now - item.at <= EARLY_SIGNAL_MAX_AGE_MS)
      if (fresh.length === 0) this.early.delete(key)
      else this.early.set(key, fresh)
      total += fresh.length
    }
    if (total >= EARLY_SIGNALS_MAX) return
    const items = this.early.get(sender) ?? []
    items.push({ disco: { ...disco, datagram: disco.datagram.slice() }, at: now })
    this.early.set(sender, items)
  }

  private ourNodeKey(): Uint8Array {
    return this.options.driver.withCore((core) => core.publicKey)
  }

  private mirror(peer: Uint8Array, datagrams: Uint8Array[]): void {
    const entry = this.peers.get(toHex(peer))
    if (!entry) return
    const copies = relayMirrorCopies(entry.selector, this.clock.now(), datagrams)
    if (copies.length === 0) return
    this.counters.mirroredToRelay += copies.length
    this.sendOn(entry.relayUnderlay, entry.nodeKey, copies)
  }

  private holding(now: number): boolean {
    return this.options.holdAttemptsUntil !== undefined && now < this.options.holdAttemptsUntil
  }

  private readActivity(now: number): void {
    this.options.driver.withCore((core) => noteCounterActivity(core, this.peers.values(), now))
  }

  private schedule(): void {
    if (this.stopped) return
    const now = this.clock.now()
    // Counters are read at this cadence so that a peer turning active is noticed promptly; an
    // idle worker wakes no more often than the dataplane's own idle cap.
    let anyActive = false
    for (const entry of this.peers.values()) if (entry.selector.status(now).active) anyActive = true
    let at = now + (anyActive ? this.activityCheckMs : this.idleCheckMs)
    if (this.heldPeersPending) at = Math.min(at, this.options.holdAttemptsUntil!)
    for (const entry of this.peers.values()) {
      const next = entry.selector.nextEvent()
      if (next !== undefined && next < at) at = Math.max(next, now)
    }
    this.timer.arm(at)
  }

  private withPeer(nodeKey: Uint8Array, run: (entry: PeerEntry) => void): void {
    const entry = this.peers.get(toHex(nodeKey))
    if (entry && !this.stopped) {
      run(entry)
      this.poll()
    }
  }

  private setRoute(entry: PeerEntry, underlay: UnderlayId): void {
    try {
      this.options.driver.withCore((core: DataplaneCore) => {
        const peer = core.peerByKey(entry.nodeKey)
        if (peer !== undefined) core.setPeerRoute(peer, underlay, entry.nodeKey)
      })
    } catch (error) {
      this.options.reportError?.(error)
    }
  }

  private sendDisco(nodeKey: Uint8Array, underlay: UnderlayId, message: DiscoMessage, what: 'signal' | 'ping' | 'pong', endpoint: unknown = nodeKey): void {
    const entry = this.peers.get(toHex(nodeKey))
    if (!entry) return
    if (what === 'signal') {
      this.counters.signalsSent++
      mark(entry.phases, 'signalSent', this.clock.now())
    }
    this.sendOn(underlay, endpoint, [this.keyring.seal(entry.discoKey, message)])
  }

  private sendOn(underlay: UnderlayId, endpoint: unknown, datagrams: Uint8Array[]): void {
    try {
      this.options.driver.sendDirect(underlay, endpoint, datagrams)
    } catch (error) {
      this.options.reportError?.(error)
    }
  }
}
