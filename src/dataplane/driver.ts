// The asynchronous shell around the dataplane core: owns the transports and the timer.
//
// It is one loop, expressed the JavaScript way: whichever happens first — a batch from an overlay
// transport, a batch from an underlay transport, a change of transports, or the timer — schedules
// one pass (a microtask). A pass drains the batches that arrived, runs the core's timers if they
// are due, fans the results out to the transports by id, and re-arms the timer at
// `nextWakeup(core.nextEvent(), now)`. Each core call is synchronous, so a pass is atomic with
// respect to everything else on this thread: that is the core's lock. Adding or removing a
// transport changes the tables immediately; nothing waits for the network or the timer.
import type { Prefix } from '../wire/index.ts'
import { systemClock, type DriverClock, type Timer } from '../clock/clock.ts'
import type { PeerId } from '../tunnel/index.ts'
import type { DataplaneCore, DiscoDatagram, OverlayBatch, UnderlayBatch } from './core.ts'
import { DataplaneError } from './errors.ts'
import type { Endpoint, OverlayId, OverlayTransport, UnderlayId, UnderlayTransport } from './transport.ts'
import { MAX_IDLE_SLEEP, nextWakeup } from './wakeup.ts'

export interface DriverOptions {
  clock?: DriverClock
  /** Longest sleep when the core has no deadline. Default `MAX_IDLE_SLEEP` (5 s). */
  maxIdleSleep?: number
  /** Receives disco datagrams, untouched, for path selection. Unhandled ones are counted and dropped. */
  onDisco?: (disco: DiscoDatagram) => void
  /** A transport or handler threw. The driver reports it and keeps serving everything else. */
  onError?: (error: unknown) => void
}

export interface DriverCounters {
  /** Timer callbacks that woke the driver. */
  timerWakeups: number
  /** Timer wake-ups armed for a core deadline that found nothing due (should stay 0). */
  wastedWakeups: number
  /** Timer wake-ups armed with no deadline (the `maxIdleSleep` safety net). */
  idleWakeups: number
  /** Passes that ran the core's timers. */
  eventPasses: number
  overlayBatches: number
  underlayBatches: number
  /** Deadlines still due right after the core processed them (a core that makes no progress). */
  stuckDeadlines: number
  /** Disco datagrams dropped because no `onDisco` handler was set. */
  discoUnhandled: number
  /** Batches for a transport id that was removed meanwhile. */
  orphanBatches: number
  errors: number
}

type Arrival = { kind: 'overlay'; id: OverlayId; packets: Uint8Array[] } | { kind: 'underlay'; id: UnderlayId; endpoint: Endpoint; datagrams: Uint8Array[] }

/**
 * If the core still reports a due deadline right after processing it, wait this long before
 * retrying instead of re-running at once: a misbehaving core must not turn the loop into a spin.
 */
const STUCK_DEADLINE_RETRY_MS = 1

export class DataplaneDriver {
  private readonly clock: DriverClock
  private readonly maxIdle: number
  private readonly onDisco: ((disco: DiscoDatagram) => void) | undefined
  private readonly onError: (error: unknown) => void
  private readonly overlays = new Map<OverlayId, OverlayTransport>()
  private readonly underlays = new Map<UnderlayId, UnderlayTransport>()
  private nextOverlayId = 1
  private nextUnderlayId = 1
  private arrivals: Arrival[] = []
  private passScheduled = false
  private timerFired = false
  private timer: Timer | undefined
  private armedAt = Number.NaN
  private armedForDeadline = false
  private stopped = false
  private readonly count: DriverCounters = {
    timerWakeups: 0,
    wastedWakeups: 0,
    idleWakeups: 0,
    eventPasses: 0,
    overlayBatches: 0,
    underlayBatches: 0,
    stuckDeadlines: 0,
    discoUnhandled: 0,
    orphanBatches: 0,
    errors: 0,
  }

  constructor(
    private readonly core: DataplaneCore,
    options: DriverOptions = {},
  ) {
    this.clock = options.clock ?? systemClock
    this.maxIdle = options.maxIdleSleep ?? MAX_IDLE_SLEEP
    if (!(this.maxIdle > 0)) throw new DataplaneError('bad-config', `maxIdleSleep must be positive, got ${this.maxIdle}`)
    this.onDisco = options.onDisco
    this.onError = options.onError ?? (() => {})
    this.rearm()
  }

  get counters(): Readonly<DriverCounters> {
    return { ...this.count }
  }

  underlayIds(): UnderlayId[] {
    return [...this.underlays.keys()]
  }

  overlayIds(): OverlayId[] {
    return [...this.overlays.keys()]
  }

  /** The instant the timer is armed for (NaN when stopped). */
  get wakeupAt(): number {
    return this.armedAt
  }

  /**
   * Runs `change` against the core (add peers, set routes…) between passes, then re-arms the
   * timer for whatever the change scheduled. The core must not be touched any other way while
   * the driver runs.
   */
  withCore<T>(change: (core: DataplaneCore) => T): T {
    this.assertRunning()
    try {
      return change(this.core)
    } finally {
      this.wake()
    }
  }

  addUnderlay(transport: UnderlayTransport<unknown>): UnderlayId {
    this.assertRunning()
    const id = this.nextUnderlayId++
    this.core.addUnderlay(id)
    this.underlays.set(id, transport)
    try {
      transport.start((endpoint, datagrams) => {
        if (this.underlays.get(id) !== transport) return
        this.arrivals.push({ kind: 'underlay', id, endpoint, datagrams })
        this.wake()
      })
    } catch (error) {
      this.underlays.delete(id)
      this.core.removeUnderlay(id)
      throw error
    }
    this.wake()
    return id
  }

  removeUnderlay(id: UnderlayId): void {
    const transport = this.underlays.get(id)
    if (!transport) throw new DataplaneError('unknown-transport', `no underlay transport ${id}`)
    this.underlays.delete(id)
    this.core.removeUnderlay(id)
    this.stopTransport(transport)
    this.wake()
  }

  /** Adds an overlay transport that serves `addresses` (our overlay addresses or prefixes). */
  addOverlay(transport: OverlayTransport, addresses: Prefix[]): OverlayId {
    this.assertRunning()
    const id = this.nextOverlayId++
    this.core.addOverlay(id, addresses)
    this.overlays.set(id, transport)
    try {
      transport.start((packets) => {
        if (this.overlays.get(id) !== transport) return
        this.arrivals.push({ kind: 'overlay', id, packets })
        this.wake()
      })
    } catch (error) {
      this.overlays.delete(id)
      this.core.removeOverlay(id)
      throw error
    }
    this.wake()
    return id
  }

  removeOverlay(id: OverlayId): void {
    const transport = this.overlays.get(id)
    if (!transport) throw new DataplaneError('unknown-transport', `no overlay transport ${id}`)
    this.overlays.delete(id)
    this.core.removeOverlay(id)
    this.stopTransport(transport)
    this.wake()
  }

  /** Starts a handshake with `peer` now (DataplaneCore.handshake) and sends its initiation; the retry timer is armed. */
  handshake(peer: PeerId): void {
    this.assertRunning()
    this.sendUnderlay(this.core.handshake(peer, this.clock.now()).toUnderlay)
    this.rearm()
  }

  /**
   * Sends datagrams that did not come from the core (disco pings for path selection) on an
   * underlay, at once. Throws for an unknown underlay.
   */
  sendDirect(underlay: UnderlayId, endpoint: Endpoint, datagrams: Uint8Array[]): void {
    this.assertRunning()
    if (!this.underlays.has(underlay)) throw new DataplaneError('unknown-transport', `no underlay transport ${underlay}`)
    this.sendUnderlay([{ underlay, endpoint, datagrams }])
  }

  /** Stops the timer and every transport. The driver cannot be restarted. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.timer?.clear()
    this.timer = undefined
    this.armedAt = Number.NaN
    for (const transport of this.underlays.values()) this.stopTransport(transport)
    for (const transport of this.overlays.values()) this.stopTransport(transport)
    this.underlays.clear()
    this.overlays.clear()
    this.arrivals = []
  }

  private assertRunning(): void {
    if (this.stopped) throw new DataplaneError('stopped', 'the dataplane driver has been stopped')
  }

  private wake(): void {
    if (this.passScheduled || this.stopped) return
    this.passScheduled = true
    queueMicrotask(() => this.pass())
  }

  private onTimer(): void {
    this.timer = undefined
    this.count.timerWakeups++
    if (this.armedForDeadline) {
      const deadline = this.core.nextEvent()
      if (deadline === undefined || deadline > this.clock.now()) this.count.wastedWakeups++
    } else {
      this.count.idleWakeups++
    }
    this.armedAt = Number.NaN
    this.timerFired = true
    this.wake()
  }

  private pass(): void {
    this.passScheduled = false
    if (this.stopped) return
    const arrivals = this.arrivals
    this.arrivals = []
    for (const arrival of arrivals) {
      try {
        if (arrival.kind === 'overlay') {
          this.count.overlayBatches++
          const { toUnderlay, loopback } = this.core.processOutbound(arrival.packets, this.clock.now())
          this.sendUnderlay(toUnderlay)
          this.sendOverlay(loopback)
        } else {
          this.count.underlayBatches++
          const transport = this.underlays.get(arrival.id)
          const source = transport?.endpointBytes?.(arrival.endpoint)
          const result = this.core.processInbound(arrival.datagrams, arrival.id, arrival.endpoint, this.clock.now(), source)
          this.sendUnderlay(result.toUnderlay)
          this.sendOverlay(result.toOverlay)
          for (const disco of result.disco) this.handOutDisco(disco)
        }
      } catch (error) {
        this.report(error)
      }
    }
    const now = this.clock.now()
    const deadline = this.core.nextEvent()
    const fired = this.timerFired
    this.timerFired = false
    if (fired || (deadline !== undefined && deadline <= now)) {
      this.count.eventPasses++
      try {
        this.sendUnderlay(this.core.poll(now).toUnderlay)
      } catch (error) {
        this.report(error)
      }
    }
    this.rearm()
  }

  private rearm(): void {
    if (this.stopped) return
    const now = this.clock.now()
    const deadline = this.core.nextEvent()
    let at = nextWakeup(deadline, now, this.maxIdle)
    if (deadline !== undefined && deadline <= now) {
      this.count.stuckDeadlines++
      at = now + STUCK_DEADLINE_RETRY_MS
    }
    const forDeadline = deadline !== undefined
    // An idle (no-deadline) timer already armed stays armed: re-arming it on every batch would
    // push the safety-net wake-up out forever under steady traffic, and churn the timer.
    if (this.timer && (at === this.armedAt || (!forDeadline && !this.armedForDeadline))) return
    this.timer?.clear()
    this.armedAt = at
    this.armedForDeadline = forDeadline
    this.timer = this.clock.setTimer(at, () => this.onTimer())
  }

  private sendUnderlay(batches: UnderlayBatch[]): void {
    for (const batch of batches) {
      const transport = this.underlays.get(batch.underlay)
      if (!transport) {
        this.count.orphanBatches++
        continue
      }
      try {
        transport.send(batch.endpoint, batch.datagrams)
      } catch (error) {
        this.report(error)
      }
    }
  }

  private sendOverlay(batches: OverlayBatch[]): void {
    for (const batch of batches) {
      const transport = this.overlays.get(batch.overlay)
      if (!transport) {
        this.count.orphanBatches++
        continue
      }
      try {
        transport.send(batch.packets)
      } catch (error) {
        this.report(error)
      }
    }
  }

  private handOutDisco(disco: DiscoDatagram): void {
    if (!this.onDisco) {
      this.count.discoUnhandled++
      return
    }
    try {
      this.onDisco(disco)
    } catch (error) {
      this.report(error)
    }
  }

  private stopTransport(transport: UnderlayTransport<unknown> | OverlayTransport): void {
    try {
      transport.stop()
    } catch (error) {
      this.report(error)
    }
  }

  private report(error: unknown): void {
    this.count.errors++
    try {
      this.onError(error)
    } catch {
      // An error handler that throws must not take the dataplane down with it.
    }
  }
}
