import type { Stack } from '../stack.ts'
import { SimLink, type SimLinkOptions, type Side } from './sim-link.ts'

/**
 * Two stacks joined by a SimLink and driven by a fake clock: each step jumps to the earliest
 * deadline of either stack or the link, so simulated seconds cost only the work done in them.
 */
export class SimNetwork {
  readonly link: SimLink
  now = 0
  steps = 0
  /** Sees every packet as it enters the link, for tests that watch the wire. */
  tap: ((from: Side, packet: Uint8Array, now: number) => void) | undefined
  /** Return false to drop a packet before it reaches the link (targeted loss in tests). */
  filter: ((from: Side, packet: Uint8Array, now: number) => boolean) | undefined

  constructor(
    readonly a: Stack,
    readonly b: Stack,
    options: SimLinkOptions = {},
  ) {
    this.link = new SimLink(options)
  }

  /** Moves output to the link and delivers what is due, until nothing more happens at `now`. */
  settle(): void {
    for (let guard = 0; guard < 1_000_000; guard++) {
      this.a.poll(this.now)
      this.b.poll(this.now)
      let moved = this.pump('a', this.a) + this.pump('b', this.b)
      for (const { to, packet } of this.link.deliver(this.now)) {
        ;(to === 'a' ? this.a : this.b).receive(packet, this.now)
        moved++
      }
      const aDue = this.a.nextEvent()
      const bDue = this.b.nextEvent()
      if (moved === 0 && !(aDue !== undefined && aDue <= this.now) && !(bDue !== undefined && bDue <= this.now)) return
    }
    throw new Error('simulation did not settle')
  }

  private pump(side: Side, stack: Stack): number {
    const out = stack.takeOutgoing()
    for (const packet of out) {
      this.tap?.(side, packet, this.now)
      if (this.filter && !this.filter(side, packet, this.now)) continue
      this.link.send(side, packet, this.now)
    }
    return out.length
  }

  /** The next time anything is scheduled, or undefined when the network is idle. */
  nextEvent(): number | undefined {
    let next: number | undefined
    for (const t of [this.a.nextEvent(), this.b.nextEvent(), this.link.nextEvent()]) {
      if (t !== undefined && (next === undefined || t < next)) next = t
    }
    return next
  }

  /** Advances one event. Returns false when idle. */
  step(limit = Infinity): boolean {
    this.settle()
    const next = this.nextEvent()
    if (next === undefined || next > limit) return false
    this.now = Math.max(this.now, next)
    this.steps++
    return true
  }

  /** Runs until `done()` holds or simulated time passes `until`; returns whether `done` held. */
  runUntil(done: () => boolean, until = this.now + 600_000): boolean {
    this.settle()
    while (!done()) {
      const next = this.nextEvent()
      if (next === undefined || next > until) {
        this.now = Math.max(this.now, Math.min(until, next ?? until))
        this.settle()
        return done()
      }
      this.now = Math.max(this.now, next)
      this.settle()
    }
    return true
  }

  /** Advances simulated time by `ms`, processing everything on the way. */
  advance(ms: number): void {
    const until = this.now + ms
    this.runUntil(() => false, until)
    this.now = until
    this.settle()
  }
}
