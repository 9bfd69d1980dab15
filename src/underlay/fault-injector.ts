// A fault-injecting wrapper around any underlay transport (a DERP relay, a WebRTC channel, a UDP
// socket): seeded drop, delay with jitter, reordering, duplication and corruption, separately for
// each direction. Like smoltcp's `FaultInjector` around any device, it lets a test put a bad
// network under real code without a bespoke forwarder process, and the same seed gives the same
// faults, so a failure can be replayed.
import { DeadlineTimer, type DriverClock, systemClock } from '../clock/clock.ts'
import type { UnderlayTransport } from '../dataplane/transport.ts'

export interface FaultProfile {
  /** Probability (0..1) that a datagram is dropped. */
  drop?: number
  /** Probability that a datagram is delivered twice. */
  duplicate?: number
  /** Probability that one random bit of a datagram is flipped. */
  corrupt?: number
  /** Probability that a datagram is held back and delivered after the next one. */
  reorder?: number
  /** Fixed delay added to every datagram, in milliseconds. */
  delayMs?: number
  /** Extra delay, uniform in [0, jitterMs), per datagram; enough jitter reorders by itself. */
  jitterMs?: number
}

export interface FaultInjectorOptions {
  /** Seeds the pseudo-random choices: the same seed and traffic give the same faults. */
  seed: number
  /** Faults on datagrams the dataplane sends. */
  send?: FaultProfile
  /** Faults on datagrams the wrapped transport receives. */
  receive?: FaultProfile
  /** Clock for delays. Default: the system clock. */
  clock?: DriverClock
}

export interface FaultStats {
  /** Datagrams handed on (duplicates counted once more each). */
  passed: number
  dropped: number
  duplicated: number
  corrupted: number
  reordered: number
  delayed: number
}

type Direction = 'send' | 'receive'

/** A held-back reordered datagram is released after this long even if nothing follows it. */
const MAX_REORDER_HOLD_MS = 50

/** mulberry32: a small, fast, seedable PRNG; statistical quality is plenty for fault choices. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function checkProfile(direction: Direction, profile: FaultProfile): void {
  for (const key of ['drop', 'duplicate', 'corrupt', 'reorder'] as const) {
    const p = profile[key]
    if (p !== undefined && !(p >= 0 && p <= 1)) throw new RangeError(`fault ${direction}.${key} must be a probability from 0 to 1, got ${p}`)
  }
  for (const key of ['delayMs', 'jitterMs'] as const) {
    const ms = profile[key]
    if (ms !== undefined && !(ms >= 0 && Number.isFinite(ms))) throw new RangeError(`fault ${direction}.${key} must be a finite number of milliseconds ≥ 0, got ${ms}`)
  }
}

interface Scheduled<E> {
  at: number
  seq: number
  endpoint: E
  datagram: Uint8Array
}

/** One direction's faults: decides each datagram's fate and releases them in time order. */
class FaultLane<E> {
  profile: FaultProfile
  readonly stats: FaultStats = { passed: 0, dropped: 0, duplicated: 0, corrupted: 0, reordered: 0, delayed: 0 }
  private queue: Scheduled<E>[] = []
  private held: Scheduled<E> | undefined
  private readonly timer: DeadlineTimer
  private seq = 0

  constructor(
    readonly direction: Direction,
    profile: FaultProfile,
    private readonly random: () => number,
    private readonly clock: DriverClock,
    private readonly emit: (endpoint: E, datagrams: Uint8Array[]) => void,
  ) {
    checkProfile(direction, profile)
    this.profile = profile
    this.timer = new DeadlineTimer(clock, () => this.flushDue())
  }

  push(endpoint: E, datagrams: Uint8Array[]): void {
    const now = this.clock.now()
    const { drop = 0, duplicate = 0, corrupt = 0, reorder = 0, delayMs = 0, jitterMs = 0 } = this.profile
    const immediate: Uint8Array[] = []
    for (let datagram of datagrams) {
      if (drop > 0 && this.random() < drop) {
        this.stats.dropped++
        continue
      }
      if (corrupt > 0 && datagram.length > 0 && this.random() < corrupt) {
        // The datagram is ours once handed over (see transport.ts), so flipping in place is allowed.
        const bit = Math.floor(this.random() * datagram.length * 8)
        datagram[bit >> 3]! ^= 1 << (bit & 7)
        this.stats.corrupted++
      }
      const copies = duplicate > 0 && this.random() < duplicate ? 2 : 1
      if (copies === 2) this.stats.duplicated++
      for (let copy = 0; copy < copies; copy++) {
        // The receiver may transfer (detach) what it gets: a duplicate must be its own buffer.
        if (copy === 1) datagram = datagram.slice()
        const extra = delayMs + (jitterMs > 0 ? this.random() * jitterMs : 0)
        if (reorder > 0 && this.random() < reorder && this.held === undefined) {
          this.held = { at: now + extra + MAX_REORDER_HOLD_MS, seq: this.seq++, endpoint, datagram }
          this.stats.reordered++
          this.arm()
          continue
        }
        if (extra > 0) {
          this.schedule({ at: now + extra, seq: this.seq++, endpoint, datagram })
          this.stats.delayed++
        } else {
          immediate.push(datagram)
        }
        this.releaseHeldBehind(now + extra)
      }
    }
    if (immediate.length > 0) {
      this.stats.passed += immediate.length
      this.emit(endpoint, immediate)
    }
    this.flushDue()
  }

  /** The held datagram goes right after the one just let through (at the same instant or later). */
  private releaseHeldBehind(at: number): void {
    const held = this.held
    if (!held) return
    this.held = undefined
    this.schedule({ ...held, at, seq: this.seq++ })
  }

  private schedule(item: Scheduled<E>): void {
    // Keep the queue sorted by (at, seq); a binary search finds the place.
    let lo = 0
    let hi = this.queue.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      const other = this.queue[mid]!
      if (other.at < item.at || (other.at === item.at && other.seq < item.seq)) lo = mid + 1
      else hi = mid
    }
    this.queue.splice(lo, 0, item)
    this.arm()
  }

  private arm(): void {
    const next = Math.min(this.queue[0]?.at ?? Infinity, this.held?.at ?? Infinity)
    this.timer.arm(next === Infinity ? undefined : next)
  }

  /** Emits everything due, grouping consecutive datagrams for one endpoint into one batch. */
  flushDue(): void {
    const now = this.clock.now()
    if (this.held && this.held.at <= now) this.releaseHeldBehind(now)
    let count = 0
    while (count < this.queue.length && this.queue[count]!.at <= now) count++
    if (count > 0) {
      const due = this.queue.splice(0, count)
      let batch: Uint8Array[] = []
      let endpoint = due[0]!.endpoint
      for (const item of due) {
        if (item.endpoint !== endpoint && batch.length > 0) {
          this.stats.passed += batch.length
          this.emit(endpoint, batch)
          batch = []
        }
        endpoint = item.endpoint
        batch.push(item.datagram)
      }
      this.stats.passed += batch.length
      this.emit(endpoint, batch)
    }
    this.arm()
  }

  stop(): void {
    this.timer.clear()
    this.queue = []
    this.held = undefined
  }
}

/**
 * Wraps `inner` so that every datagram crossing it, in either direction, meets the configured
 * faults. It is itself an `UnderlayTransport`: add it to the driver instead of `inner`.
 */
export class FaultInjector<E> implements UnderlayTransport<E> {
  private readonly sendLane: FaultLane<E>
  private readonly receiveLane: FaultLane<E>
  private deliver: ((endpoint: E, datagrams: Uint8Array[]) => void) | undefined

  constructor(
    readonly inner: UnderlayTransport<E>,
    options: FaultInjectorOptions,
  ) {
    const random = seededRandom(options.seed)
    const clock = options.clock ?? systemClock
    this.sendLane = new FaultLane('send', options.send ?? {}, random, clock, (endpoint, datagrams) => inner.send(endpoint, datagrams))
    this.receiveLane = new FaultLane('receive', options.receive ?? {}, random, clock, (endpoint, datagrams) => this.deliver?.(endpoint, datagrams))
    if (inner.endpointBytes) this.endpointBytes = (endpoint) => inner.endpointBytes!(endpoint)
  }

  endpointBytes?: (endpoint: E) => Uint8Array

  /** What each direction did so far. */
  get stats(): { send: FaultStats; receive: FaultStats } {
    return { send: this.sendLane.stats, receive: this.receiveLane.stats }
  }

  /** Changes one direction's faults from now on (a partition: `{ drop: 1 }`; healed: `{}`). */
  setProfile(direction: Direction, profile: FaultProfile): void {
    checkProfile(direction, profile)
    ;(direction === 'send' ? this.sendLane : this.receiveLane).profile = profile
  }

  send(endpoint: E, datagrams: Uint8Array[]): void {
    this.sendLane.push(endpoint, datagrams)
  }

  start(deliver: (endpoint: E, datagrams: Uint8Array[]) => void): void {
    this.deliver = deliver
    this.inner.start((endpoint, datagrams) => this.receiveLane.push(endpoint, datagrams))
  }

  stop(): void {
    this.deliver = undefined
    this.sendLane.stop()
    this.receiveLane.stop()
    this.inner.stop()
  }
}
