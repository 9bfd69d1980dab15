// When the dataplane driver next wakes for its timer. Pure, so the cadence is testable without a runtime.

/**
 * The longest the driver sleeps when the core has no deadline at all. This is a safety net for
 * the "nothing scheduled" case only: it bounds how long an idle dataplane can go without
 * re-servicing the tunnel (never block forever) while keeping idle wake-ups rare (12/min).
 */
export const MAX_IDLE_SLEEP = 5000

/**
 * The instant (ms) to wake at. A real deadline is honoured exactly: not clamped down to the idle
 * floor (the core's deadline is already its soonest timer, so nothing is due earlier and waking
 * sooner is pure waste) and never later. With no deadline, wake at `now + maxIdle` — a finite
 * instant strictly after `now`, so the driver neither blocks forever nor spins.
 */
export function nextWakeup(deadline: number | undefined, now: number, maxIdle: number = MAX_IDLE_SLEEP): number {
  if (deadline !== undefined) return deadline
  if (!(maxIdle > 0)) throw new RangeError(`maxIdle must be a positive number of ms, got ${maxIdle}`)
  return now + maxIdle
}
