// The one timer abstraction every driver uses (the dataplane driver, DERP connections, the
// coordination client and server, the TCP/IP stack's host, the node agent): a driver never calls
// setTimeout itself, so its tests run on a ManualClock and a benchmark can count its wake-ups.
// Imports nothing: every layer may import it.

export interface Timer {
  clear(): void
}

export interface DriverClock {
  /** Milliseconds; monotonic for `systemClock`, epoch for `wallClock`. */
  now(): number
  /** Calls `callback` once, at or after instant `at` (never before: `now() >= at` when it runs). */
  setTimer(at: number, callback: () => void): Timer
}

/** setTimeout cannot wait longer (Node fires a longer timer after 1 ms); a later instant is reached in several sleeps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

/**
 * `setTimeout` on the time source `now`. With `unref`, a pending timer does not keep a Node
 * process alive (for protocol timers, where the transport's socket is what should).
 */
export function timerClock(now: () => number, options: { unref?: boolean } = {}): DriverClock {
  return {
    now,
    setTimer(at, callback) {
      let handle: ReturnType<typeof setTimeout> | undefined
      const schedule = (delay: number): void => {
        handle = setTimeout(arm, Math.min(MAX_TIMEOUT_MS, delay))
        if (options.unref) (handle as { unref?: () => void }).unref?.()
      }
      const arm = (): void => {
        // setTimeout counts whole milliseconds and may fire a fraction early; re-arm rather than
        // let the driver wake before its deadline (which it would count as a wasted wake-up).
        const delay = at - now()
        if (delay <= 0) {
          handle = undefined
          callback()
        } else {
          schedule(Math.ceil(delay))
        }
      }
      schedule(Math.max(0, Math.ceil(at - now())))
      return {
        clear() {
          if (handle !== undefined) clearTimeout(handle)
          handle = undefined
        },
      }
    },
  }
}

/** `performance.now()` and `setTimeout`, in Node, workers and pages. */
export const systemClock: DriverClock = timerClock(() => performance.now())

/** `Date.now()` and `setTimeout`: for drivers whose cores keep epoch times (last seen, expiry). */
export const wallClock: DriverClock = timerClock(() => Date.now())

/**
 * The one timer a driver keeps at its core's next deadline (`nextEvent()`): `arm` it after every
 * call into the core, and it calls `onDue` once that instant comes.
 */
export class DeadlineTimer {
  private timer: Timer | undefined
  private armedAt: number | undefined

  /**
   * With `keepEarlier`, an armed timer at or before a new deadline is kept: when it fires, the
   * core finds nothing due and the driver re-arms. That saves resetting a timer on every call
   * when each one moves the deadline a little later (a ping or retransmission timer).
   */
  constructor(
    private readonly clock: DriverClock,
    private readonly onDue: () => void,
    private readonly options: { keepEarlier?: boolean } = {},
  ) {}

  /** The instant the timer is armed for, if it is. */
  get at(): number | undefined {
    return this.armedAt
  }

  /** Wakes at `deadline` (replacing the armed one, unless kept as above); `undefined` disarms. */
  arm(deadline: number | undefined): void {
    if (deadline !== undefined && this.armedAt !== undefined && (this.armedAt === deadline || (this.options.keepEarlier && this.armedAt <= deadline))) return
    this.clear()
    if (deadline === undefined) return
    this.armedAt = deadline
    this.timer = this.clock.setTimer(deadline, () => {
      this.timer = undefined
      this.armedAt = undefined
      this.onDue()
    })
  }

  clear(): void {
    this.timer?.clear()
    this.timer = undefined
    this.armedAt = undefined
  }
}

/** A clock that only moves when told to; timers fire in deadline order as time passes them. */
export class ManualClock implements DriverClock {
  private current: number
  private timers: Array<{ at: number; seq: number; callback: () => void }> = []
  private seq = 0

  constructor(start = 0) {
    this.current = start
  }

  now(): number {
    return this.current
  }

  setTimer(at: number, callback: () => void): Timer {
    const entry = { at, seq: this.seq++, callback }
    this.timers.push(entry)
    return {
      clear: () => {
        const index = this.timers.indexOf(entry)
        if (index >= 0) this.timers.splice(index, 1)
      },
    }
  }

  /** Pending timers. */
  get pending(): number {
    return this.timers.length
  }

  /** The earliest pending timer's instant. */
  nextTimer(): number | undefined {
    let best: number | undefined
    for (const t of this.timers) if (best === undefined || t.at < best) best = t.at
    return best
  }

  /**
   * Fires the earliest timer due at or before `until`, moving the clock to its instant (never
   * backwards). Returns false, leaving the clock alone, when no timer is due by then.
   */
  fireNext(until: number): boolean {
    let index = -1
    for (let i = 0; i < this.timers.length; i++) {
      const t = this.timers[i]!
      if (t.at > until) continue
      const best = index >= 0 ? this.timers[index]! : undefined
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) index = i
    }
    if (index < 0) return false
    const [timer] = this.timers.splice(index, 1)
    this.current = Math.max(this.current, timer!.at)
    timer!.callback()
    return true
  }

  /** Moves the clock to `to` without firing anything (call `fireNext` first to run due timers). */
  set(to: number): void {
    if (to < this.current) throw new RangeError(`clock cannot go backwards from ${this.current} to ${to}`)
    this.current = to
  }
}
