// Chooses, for one peer, whether WireGuard datagrams go over the relay, the direct (WebRTC) path,
// or both. Sans-IO: every input takes `now`; `poll(now)` returns what to do; `nextEvent()` says
// when to poll again. Rules (Tailscale's magicsock, docs/ARCHITECTURE.md):
//
// - while the peer is active (data within `idleTimeoutMs`, 45 s), ping it over the direct path
//   every `heartbeatIntervalMs` (3 s); heartbeats stop when it goes idle and restart at once on
//   the next activity;
// - each pong trusts the direct path for `trustMs` (6.5 s); while trusted, data goes direct only;
//   while a direct path exists but is not trusted, data goes on both it and the relay;
// - an active peer without a direct path gets a WebRTC attempt; failed or timed-out attempts and
//   closed channels are retried with exponential backoff (reset by a successful open).
import { randomBytes, toHex } from '../../crypto/index.ts'
import { TX_ID_LENGTH } from './messages.ts'

export type PathKind = 'relay' | 'direct'

export interface PathSelectorOptions {
  heartbeatIntervalMs?: number
  trustMs?: number
  idleTimeoutMs?: number
  /** A ping without a pong after this long is forgotten (its pong would not count). */
  pingTimeoutMs?: number
  /** A WebRTC attempt not open after this long is abandoned and counts as a failure. */
  connectTimeoutMs?: number
  retryInitialMs?: number
  retryMaxMs?: number
  /** Makes 12-byte transaction ids; tests pass a deterministic one. */
  newTxId?: () => Uint8Array
}

export type PathAction =
  /** Send a disco ping with this transaction id over the direct path. */
  | { type: 'ping'; txId: Uint8Array }
  /** Start a WebRTC attempt towards this peer; answer with `directOpened` or `directClosed`. */
  | { type: 'connect-direct' }
  /** The attempt in progress took too long: tear it down (no `directClosed` needed). */
  | { type: 'abandon-direct' }
  /** The path data uses changed; carries the latest RTT. */
  | { type: 'path-changed'; path: PathKind; rttMs: number | undefined }

export interface PathStatus {
  path: PathKind
  rttMs: number | undefined
  direct: 'none' | 'connecting' | 'open'
  active: boolean
  /** Direct attempts that failed since the last successful open. */
  failures: number
}

export const PATH_DEFAULTS = {
  heartbeatIntervalMs: 3_000,
  trustMs: 6_500,
  idleTimeoutMs: 45_000,
  pingTimeoutMs: 5_000,
  connectTimeoutMs: 15_000,
  retryInitialMs: 1_000,
  retryMaxMs: 60_000,
} as const

/** At most this many unanswered pings are remembered; older ones are forgotten first. */
const MAX_PENDING_PINGS = 16

const RELAY_ONLY: readonly PathKind[] = Object.freeze(['relay'])
const DIRECT_ONLY: readonly PathKind[] = Object.freeze(['direct'])
const BOTH: readonly PathKind[] = Object.freeze(['direct', 'relay'])

export class PeerPathSelector {
  private readonly config: Required<Omit<PathSelectorOptions, 'newTxId'>>
  private readonly newTxId: () => Uint8Array
  private lastActivity: number | undefined
  private direct: PathStatus['direct'] = 'none'
  private connectStartedAt = 0
  private failures = 0
  private retryAt = -Infinity
  private nextPingAt: number | undefined
  private trustedUntil = -Infinity
  private rttMs: number | undefined
  private readonly pending = new Map<string, number>()
  private lastPolled = -Infinity
  private reported: { path: PathKind; rttMs: number | undefined } = { path: 'relay', rttMs: undefined }

  constructor(options: PathSelectorOptions = {}) {
    const { newTxId, ...timing } = options
    this.config = { ...PATH_DEFAULTS, ...timing }
    for (const [name, value] of Object.entries(this.config)) {
      if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`path selector: ${name} must be a positive number of ms, got ${value}`)
    }
    this.newTxId = newTxId ?? (() => randomBytes(TX_ID_LENGTH))
  }

  /** Data was sent to or received from the peer. */
  noteActivity(now: number): void {
    const wasActive = this.isActive(now)
    this.lastActivity = now
    // Coming back from idle: re-validate the direct path at once rather than at the old cadence.
    if (!wasActive && this.direct === 'open') this.nextPingAt = now
  }

  /** The WebRTC channel to the peer is open. */
  directOpened(now: number): void {
    this.direct = 'open'
    this.failures = 0
    this.pending.clear()
    this.nextPingAt = now
  }

  /**
   * A path that needs no setup (plain UDP) answered a probe ping with a pong `rttMs` after it was
   * sent: it is open and trusted at once, as a heartbeat pong would have made it. The next
   * heartbeat is due one interval later.
   */
  directProven(now: number, rttMs: number): void {
    this.direct = 'open'
    this.failures = 0
    this.pending.clear()
    this.rttMs = rttMs
    this.trustedUntil = now + this.config.trustMs
    this.nextPingAt = now + this.config.heartbeatIntervalMs
  }

  /** The WebRTC attempt failed or the open channel closed. */
  directClosed(now: number): void {
    if (this.direct === 'none') return
    this.giveUpDirect(now)
  }

  /** A pong arrived over the direct path. Returns false when it answers no ping we are waiting for. */
  handlePong(txId: Uint8Array, now: number): boolean {
    const id = toHex(txId)
    const sentAt = this.pending.get(id)
    if (sentAt === undefined || this.direct !== 'open') return false
    this.pending.delete(id)
    if (now - sentAt > this.config.pingTimeoutMs) return false
    this.rttMs = now - sentAt
    this.trustedUntil = now + this.config.trustMs
    return true
  }

  /** What to do now. Call after every input and whenever `nextEvent()` comes due. */
  poll(now: number): PathAction[] {
    const actions: PathAction[] = []
    this.lastPolled = now
    for (const [id, sentAt] of this.pending) if (now - sentAt > this.config.pingTimeoutMs) this.pending.delete(id)
    const active = this.isActive(now)

    if (this.direct === 'connecting' && now >= this.connectStartedAt + this.config.connectTimeoutMs) {
      actions.push({ type: 'abandon-direct' })
      this.giveUpDirect(now)
    }
    if (active && this.direct === 'none' && now >= this.retryAt) {
      actions.push({ type: 'connect-direct' })
      this.direct = 'connecting'
      this.connectStartedAt = now
    }
    if (this.direct === 'open' && this.nextPingAt !== undefined && now >= this.nextPingAt) {
      if (active) {
        const txId = this.newTxId()
        this.remember(toHex(txId), now)
        actions.push({ type: 'ping', txId })
        this.nextPingAt = now + this.config.heartbeatIntervalMs
      } else {
        this.nextPingAt = undefined
      }
    }
    const path = this.pathAt(now)
    // Only the path itself is news; the RTT moves with every pong and is read through status().
    if (path !== this.reported.path) {
      this.reported = { path, rttMs: this.rttMs }
      actions.push({ type: 'path-changed', path, rttMs: this.rttMs })
    }
    return actions
  }

  /** When `poll` next has something to do; undefined while the peer is idle and nothing is pending. */
  nextEvent(): number | undefined {
    let next: number | undefined
    const consider = (at: number): void => {
      if (next === undefined || at < next) next = at
    }
    const idleAt = this.lastActivity === undefined ? -Infinity : this.lastActivity + this.config.idleTimeoutMs
    // Once a poll has seen the peer idle, overdue retries and heartbeats wait for new activity.
    const asleep = this.lastPolled >= idleAt
    if (this.direct === 'connecting') consider(this.connectStartedAt + this.config.connectTimeoutMs)
    if (this.direct === 'none' && !asleep && this.retryAt < idleAt) consider(Math.max(this.retryAt, this.lastActivity!))
    if (this.direct === 'open') {
      if (this.nextPingAt !== undefined && !asleep && this.nextPingAt < idleAt) consider(this.nextPingAt)
      // The moment trust lapses, data must go back on the relay too.
      if (this.reported.path === 'direct' && Number.isFinite(this.trustedUntil)) consider(this.trustedUntil)
    }
    return next
  }

  /** Where data for this peer goes now. */
  routes(now: number): readonly PathKind[] {
    if (this.direct !== 'open') return RELAY_ONLY
    return now < this.trustedUntil ? DIRECT_ONLY : BOTH
  }

  status(now: number): PathStatus {
    return { path: this.pathAt(now), rttMs: this.rttMs, direct: this.direct, active: this.isActive(now), failures: this.failures }
  }

  private pathAt(now: number): PathKind {
    return this.direct === 'open' && now < this.trustedUntil ? 'direct' : 'relay'
  }

  private isActive(now: number): boolean {
    return this.lastActivity !== undefined && now - this.lastActivity < this.config.idleTimeoutMs
  }

  private giveUpDirect(now: number): void {
    this.direct = 'none'
    this.failures++
    const delay = Math.min(this.config.retryMaxMs, this.config.retryInitialMs * 2 ** Math.min(this.failures - 1, 30))
    this.retryAt = now + delay
    this.trustedUntil = -Infinity
    this.nextPingAt = undefined
    this.pending.clear()
  }

  private remember(id: string, now: number): void {
    if (this.pending.size >= MAX_PENDING_PINGS) this.pending.delete(this.pending.keys().next().value!)
    this.pending.set(id, now)
  }
}
