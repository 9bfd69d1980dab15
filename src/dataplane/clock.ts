// Time sources for the dataplane driver. The driver never calls setTimeout itself, so tests can
// run it on a manual clock and a benchmark can count its wake-ups.

export interface Timer {
  clear(): void
}

export interface DriverClock {
  /** Monotonic milliseconds. */
  now(): number
  /** Calls `callback` once, at or after instant `at` (never before: `now() >= at` when it runs). */
  setTimer(at: number, callback: () => void): Timer
}

/** setTimeout cannot wait longer (Node fires a longer timer after 1 ms); a later instant is reached in several sleeps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

/** `performance.now()` and `setTimeout`, in Node, workers and pages. */
export const systemClock: DriverClock = {
  now: () => performance.now(),
  setTimer(at, callback) {
    let handle: ReturnType<typeof setTimeout> | undefined
    const arm = (): void => {
      // setTimeout counts whole milliseconds and may fire a fraction early; re-arm rather than
      // let the driver wake before its deadline (which it would count as a wasted wake-up).
      const delay = at - performance.now()
      if (delay <= 0) {
        handle = undefined
        callback()
      } else {
        handle = setTimeout(arm, Math.min(MAX_TIMEOUT_MS, Math.ceil(delay)))
      }
    }
    handle = setTimeout(arm, Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(at - performance.now()))))
    return {
      clear() {
        if (handle !== undefined) clearTimeout(handle)
        handle = undefined
      },
    }
  },
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
