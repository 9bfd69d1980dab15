// The driver for one relay: dials, runs a DerpClientSession over the stream, flushes coalesced
// output on a microtask, keeps one timer (a DeadlineTimer on its DriverClock) at the session's
// next deadline, and reconnects with backoff. Packets sent while (re)connecting wait in a bounded queue (oldest dropped, counted).
import { DeadlineTimer, systemClock, type DriverClock } from '../../clock/clock.ts'
import { ReconnectBackoff, type BackoffOptions } from './backoff.ts'
import type { DerpDialer, DerpStream } from './dialer.ts'
import { Emitter } from './emitter.ts'
import type { ServerInfo } from './info.ts'
import { DerpClientSession, type DerpClientSessionOptions } from './session.ts'

export interface DerpConnectionOptions extends DerpClientSessionOptions {
  url: string
  dial: DerpDialer
  /** Packets held while not logged in; beyond this the oldest are dropped. */
  pendingLimit?: number
  /** Drop packets instead of buffering without bound when the socket has this many bytes unsent. */
  highWaterBytes?: number
  backoff?: BackoffOptions
  /** Time and timers; default the system clock (monotonic). */
  clock?: DriverClock
}

export interface DerpConnectionEvents {
  packet: [source: Uint8Array, packet: Uint8Array]
  connected: [serverKey: Uint8Array, serverInfo: ServerInfo]
  disconnected: [reason: string, retryInMs: number]
  'peer-gone': [key: Uint8Array, reason: number]
  'peer-present': [key: Uint8Array]
  health: [problem: string]
  restarting: [reconnectInMs: number, tryForMs: number]
  pong: [data: Uint8Array]
}

export interface DerpConnectionStats {
  connects: number
  packetsSent: number
  packetsReceived: number
  droppedWhileReconnecting: number
  droppedRateLimited: number
  droppedBackpressure: number
  droppedOversize: number
}

export class DerpConnection extends Emitter<DerpConnectionEvents> {
  /** The relay dialed; `retarget` moves the connection to another relay of the same region. */
  url: string
  readonly stats: DerpConnectionStats = {
    connects: 0,
    packetsSent: 0,
    packetsReceived: 0,
    droppedWhileReconnecting: 0,
    droppedRateLimited: 0,
    droppedBackpressure: 0,
    droppedOversize: 0,
  }
  /** The relay's current health problem ('' when healthy). */
  health = ''

  private session: DerpClientSession | undefined
  private stream: DerpStream | undefined
  private readonly backoff: ReconnectBackoff
  private readonly clock: DriverClock
  private readonly pending: Array<[Uint8Array, Uint8Array]> = []
  private pendingHead = 0
  private readonly pendingLimit: number
  private readonly highWaterBytes: number
  /** At the session's next deadline while connected; at the next dial while waiting to reconnect. */
  private readonly timer: DeadlineTimer
  private flushQueued = false
  private preferred = false
  /** `holdLogin` until `login()`: every session (reconnects too) waits to log in. */
  private loginHeld: boolean
  private stopped = false
  private started = false

  constructor(private readonly options: DerpConnectionOptions) {
    super()
    this.url = options.url
    this.clock = options.clock ?? systemClock
    // An earlier timer is kept: when it fires it finds nothing due and re-arms. This avoids
    // resetting a timer on every message, since each one moves the ping deadline.
    this.timer = new DeadlineTimer(this.clock, () => this.onTimer(), { keepEarlier: true })
    this.backoff = new ReconnectBackoff(options.backoff)
    this.pendingLimit = options.pendingLimit ?? 512
    this.highWaterBytes = options.highWaterBytes ?? 8 << 20
    this.loginHeld = options.holdLogin === true
  }

  /** Whether the connection waits for `login()` before logging in (`holdLogin`). */
  get isLoginHeld(): boolean {
    return this.loginHeld
  }

  /** Lets a `holdLogin` connection log in: on the stream already open (its ServerKey may be in), and on every reconnect. */
  login(): void {
    if (!this.loginHeld) return
    this.loginHeld = false
    const session = this.session
    if (!session) return
    session.login(this.clock.now())
    this.afterSessionWork(session)
    // The ClientInfo leaves now, not at the end of the task: the caller (a node that just got
    // its netmap) has CPU work to do that the relay's round trip can overlap.
    this.flush()
  }

  get isConnected(): boolean {
    return this.session?.state === 'ready'
  }

  get serverKey(): Uint8Array | undefined {
    return this.session?.serverKey
  }

  /** Bytes handed to the socket but not yet sent; senders that can wait use it to pace themselves. */
  get bufferedAmount(): number {
    return this.stream?.bufferedAmount ?? 0
  }

  get pendingCount(): number {
    return this.pending.length - this.pendingHead
  }

  start(): this {
    if (this.started) return this
    this.started = true
    this.dial()
    return this
  }

  /** Sends (or queues, while reconnecting) a packet to `destination`; never throws for network trouble. */
  send(destination: Uint8Array, packet: Uint8Array): void {
    const session = this.session
    if (!session || session.state !== 'ready') {
      if (this.stopped) return
      if (this.pendingCount >= this.pendingLimit) {
        this.pending[this.pendingHead++] = undefined as unknown as [Uint8Array, Uint8Array]
        this.stats.droppedWhileReconnecting++
      }
      this.pending.push([destination, packet])
      return
    }
    if ((this.stream?.bufferedAmount ?? 0) > this.highWaterBytes) {
      this.stats.droppedBackpressure++
      return
    }
    this.sendNow(session, destination, packet)
  }

  /** Marks this relay as our home (NotePreferred); remembered across reconnects. */
  setPreferred(preferred: boolean): void {
    this.preferred = preferred
    this.session?.notePreferred(preferred)
    this.scheduleFlush()
  }

  ping(data: Uint8Array): void {
    this.session?.ping(data)
    this.scheduleFlush()
  }

  /** Relay mesh: hands a packet to the relay at the other end as ForwardPacket; dropped (counted) while not logged in. */
  forwardPacket(source: Uint8Array, destination: Uint8Array, packet: Uint8Array): boolean {
    const session = this.session
    if (!session || !session.forwardPacket(source, destination, packet)) {
      this.stats.droppedWhileReconnecting++
      return false
    }
    this.stats.packetsSent++
    this.scheduleFlush()
    return true
  }

  /**
   * Moves this connection to another relay (another of the region's meshed relays, after this
   * one died): the current session ends without a `disconnected` event, the new relay is dialed
   * at once, and packets sent meanwhile wait in the queue as on any reconnect.
   */
  retarget(url: string): void {
    if (this.stopped || url === this.url) return
    this.url = url
    this.clearTimer()
    const stream = this.stream
    this.stream = undefined
    this.session = undefined
    this.health = ''
    stream?.close()
    if (this.started) this.dial()
  }

  close(): void {
    if (this.stopped) return
    this.stopped = true
    this.clearTimer()
    this.stream?.close()
    this.stream = undefined
    this.session = undefined
  }

  private sendNow(session: DerpClientSession, destination: Uint8Array, packet: Uint8Array): void {
    const before = session.counters
    const rateLimited = before.droppedRateLimited
    const oversize = before.droppedOversize
    if (session.send(destination, packet, this.clock.now())) {
      this.stats.packetsSent++
      this.scheduleFlush()
    } else {
      this.stats.droppedRateLimited += session.counters.droppedRateLimited - rateLimited
      this.stats.droppedOversize += session.counters.droppedOversize - oversize
    }
  }

  private dial(): void {
    if (this.stopped) return
    const session = new DerpClientSession({ ...this.options, holdLogin: this.loginHeld }, this.clock.now())
    session.notePreferred(this.preferred)
    this.session = session
    this.stream = this.options.dial(this.url, {
      onOpen: () => {},
      onData: (bytes) => {
        if (this.session !== session) return
        session.receive(bytes, this.clock.now())
        this.afterSessionWork(session)
      },
      onClose: (reason) => {
        if (this.session !== session) return
        session.close(reason)
        this.afterSessionWork(session)
      },
    })
    this.armTimer(session)
  }

  /** Drains events, flushes output, and re-arms the timer after anything touched the session. */
  private afterSessionWork(session: DerpClientSession): void {
    for (let event = session.takeEvent(); event; event = session.takeEvent()) {
      switch (event.type) {
        case 'packet':
          this.stats.packetsReceived++
          this.emit('packet', event.source, event.packet)
          break
        case 'connected':
          this.stats.connects++
          this.backoff.connected(this.clock.now())
          this.emit('connected', event.serverKey, event.serverInfo)
          this.drainPending(session)
          break
        case 'closed':
          this.onSessionClosed(session, event.reason)
          return
        case 'peer-gone':
          this.emit('peer-gone', event.key, event.reason)
          break
        case 'peer-present':
          this.emit('peer-present', event.key)
          break
        case 'health':
          this.health = event.problem
          this.emit('health', event.problem)
          break
        case 'restarting':
          this.backoff.restarting(event.reconnectInMs, event.tryForMs, this.clock.now())
          this.emit('restarting', event.reconnectInMs, event.tryForMs)
          break
        case 'pong':
          this.emit('pong', event.data)
          break
      }
      if (this.session !== session) return
    }
    if (session.hasOutput) this.scheduleFlush()
    this.armTimer(session)
  }

  private drainPending(session: DerpClientSession): void {
    while (this.pendingHead < this.pending.length && session.state === 'ready') {
      const [destination, packet] = this.pending[this.pendingHead]!
      this.pending[this.pendingHead++] = undefined as unknown as [Uint8Array, Uint8Array]
      this.sendNow(session, destination, packet)
    }
    this.pending.length = 0
    this.pendingHead = 0
  }

  private onSessionClosed(session: DerpClientSession, reason: string): void {
    if (this.session !== session) return
    this.clearTimer()
    this.stream?.close()
    this.stream = undefined
    this.session = undefined
    this.health = ''
    if (this.stopped) return
    const delay = this.backoff.nextDelay(this.clock.now())
    this.emit('disconnected', reason, delay)
    this.timer.arm(this.clock.now() + delay)
  }

  private onTimer(): void {
    const session = this.session
    if (!session) {
      this.dial()
      return
    }
    session.poll(this.clock.now())
    this.afterSessionWork(session)
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return
    this.flushQueued = true
    // A microtask, not a timer: frames sent in the same task share a message, a lone packet waits for nothing.
    queueMicrotask(() => {
      this.flushQueued = false
      this.flush()
    })
  }

  private flush(): void {
    const session = this.session
    const stream = this.stream
    if (!session || !stream) return
    for (let out = session.takeOutput(); out; out = session.takeOutput()) stream.send(out)
  }

  private armTimer(session: DerpClientSession): void {
    this.timer.arm(session.nextEvent())
  }

  private clearTimer(): void {
    this.timer.clear()
  }
}
