import { DeadlineTimer, timerClock, type DriverClock } from '../clock/clock.ts'
import type { Stack } from './stack.ts'

/** Real time for Node and tests; its timers do not keep a process alive (the packets' transport does). */
const hostClock = timerClock(() => performance.now(), { unref: true })

export interface StackHostOptions {
  /** Receives each batch of packets the stack produced. */
  sink: (packets: Uint8Array[]) => void
  /**
   * Time and wake-ups. Default: `performance.now()` and `setTimeout`. In a page the worker is the
   * clock (page timers are throttled in hidden tabs): src/burrow-stack.ts passes one whose timers
   * are wake-ups the worker sends over the overlay port.
   */
  clock?: DriverClock
  /**
   * Keep a pending wake-up that is earlier than the new deadline instead of replacing it: one
   * early poll per timer period instead of a timer reset (for the page: a message to the worker)
   * after every poll while data flows and each ACK moves the retransmission deadline later.
   */
  keepEarlierWake?: boolean
  /**
   * Inbound packets are handed over for good (they arrive in buffers transferred from the
   * worker), so the stack may keep views of their payload instead of copying (`Stack.receive`).
   */
  ownsInboundPackets?: boolean
}

/**
 * Clocks a sans-IO Stack: feeds it packets, runs `poll` when its deadline comes or the
 * application touched a socket, and hands the output to the sink.
 */
export class StackHost {
  readonly clock: DriverClock
  private readonly wake: DeadlineTimer
  private readonly sink: (packets: Uint8Array[]) => void
  private flushQueued = false
  private readonly ownsInbound: boolean
  /** Number of polls run, for tests and benchmarks that count wake-ups. */
  polls = 0

  constructor(
    readonly stack: Stack,
    options: StackHostOptions,
  ) {
    this.sink = options.sink
    this.ownsInbound = options.ownsInboundPackets === true
    this.clock = options.clock ?? hostClock
    this.wake = new DeadlineTimer(this.clock, () => this.poll(), { keepEarlier: options.keepEarlierWake === true })
  }

  now(): number {
    return this.clock.now()
  }

  /** Inbound packets from the overlay network. */
  receive(packets: Uint8Array | Uint8Array[]): void {
    const now = this.clock.now()
    const owned = this.ownsInbound
    if (packets instanceof Uint8Array) this.stack.receive(packets, now, owned)
    else for (const p of packets) this.stack.receive(p, now, owned)
    this.kick()
  }

  /** Something changed (a socket call, inbound packets): poll soon, once, after the current task's work. */
  kick(): void {
    if (this.flushQueued) return
    this.flushQueued = true
    queueMicrotask(() => {
      this.flushQueued = false
      this.poll()
    })
  }

  /** Runs due work now and requests the next wake-up. */
  poll(): void {
    this.polls++
    const now = this.clock.now()
    this.stack.poll(now)
    if (this.stack.hasOutgoing) this.sink(this.stack.takeOutgoing())
    const next = this.stack.nextEvent()
    if (next === undefined) return
    if (next <= now) {
      this.kick()
      return
    }
    // Always re-request: the deadline can move later (a timer was cancelled) as well as earlier.
    this.wake.arm(next)
  }
}
