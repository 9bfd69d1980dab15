import type { Stack } from './stack.ts'

/**
 * Where the host gets time and wake-ups. In a page the worker is the clock (page timers are
 * throttled in hidden tabs): it calls `host.poll()` when a requested deadline arrives.
 */
export interface HostClock {
  now(): number
  /** Asks for one `host.poll()` at or after `deadline` (on the `now()` clock), replacing earlier requests. */
  wakeAt(deadline: number): void
}

/** A clock on `performance.now()` and `setTimeout`, for Node and tests with real time. */
export class TimerClock implements HostClock {
  private timer: ReturnType<typeof setTimeout> | undefined
  private deadline = Infinity

  constructor(private readonly wake: () => void) {}

  now(): number {
    return performance.now()
  }

  wakeAt(deadline: number): void {
    if (this.timer !== undefined && deadline === this.deadline) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.deadline = deadline
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.deadline = Infinity
      this.wake()
    }, Math.max(0, deadline - this.now()))
    // The transport carrying the packets keeps a process alive, not a protocol timer.
    ;(this.timer as { unref?: () => void }).unref?.()
  }
}

export interface StackHostOptions {
  /** Receives each batch of packets the stack produced. */
  sink: (packets: Uint8Array[]) => void
  /** Defaults to a TimerClock; an external clock must call `poll()` when woken. */
  clock?: HostClock
}

/**
 * Clocks a sans-IO Stack: feeds it packets, runs `poll` when its deadline comes or the
 * application touched a socket, and hands the output to the sink.
 */
export class StackHost {
  readonly clock: HostClock
  private readonly sink: (packets: Uint8Array[]) => void
  private flushQueued = false
  /** Number of polls run, for tests and benchmarks that count wake-ups. */
  polls = 0

  constructor(
    readonly stack: Stack,
    options: StackHostOptions,
  ) {
    this.sink = options.sink
    this.clock = options.clock ?? new TimerClock(() => this.poll())
  }

  now(): number {
    return this.clock.now()
  }

  /** Inbound packets from the overlay network. */
  receive(packets: Uint8Array | Uint8Array[]): void {
    const now = this.clock.now()
    if (packets instanceof Uint8Array) this.stack.receive(packets, now)
    else for (const p of packets) this.stack.receive(p, now)
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
    this.clock.wakeAt(next)
  }
}
