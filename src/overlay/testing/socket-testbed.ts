import type { DriverClock, Timer } from '../../clock/clock.ts'
import { StackHost } from '../host.ts'
import { Sockets } from '../sockets.ts'
import { Stack } from '../stack.ts'
import { ADDRESS_A, ADDRESS_A6, ADDRESS_B, ADDRESS_B6 } from './pair.ts'
import { SimLink, type SimLinkOptions, type Side } from './sim-link.ts'

/** One host's clock on shared fake time (a host keeps one timer); the testbed fires it when due. */
class FakeClock implements DriverClock {
  deadline: number | undefined
  due: (() => void) | undefined
  constructor(private readonly bed: SocketTestbed) {}
  now(): number {
    return this.bed.now
  }
  setTimer(at: number, callback: () => void): Timer {
    this.deadline = at
    this.due = callback
    return {
      clear: () => {
        if (this.due !== callback) return
        this.deadline = undefined
        this.due = undefined
      },
    }
  }
}

/**
 * Two Sockets APIs over two stacks on a SimLink, with fake time that only advances when every
 * promise has settled: streams and promises run for real, timers never sleep.
 */
export class SocketTestbed {
  now = 0
  readonly link: SimLink
  readonly a: Sockets
  readonly b: Sockets
  private readonly clocks: Record<Side, FakeClock>
  private readonly hosts: Record<Side, StackHost>

  constructor(link: SimLinkOptions = { delayMs: 5 }) {
    this.link = new SimLink(link)
    this.clocks = { a: new FakeClock(this), b: new FakeClock(this) }
    const make = (side: Side, addresses: string[], fill: number): StackHost =>
      new StackHost(new Stack({ addresses, secret: new Uint8Array(32).fill(fill) }), {
        clock: this.clocks[side],
        sink: (packets) => {
          for (const p of packets) this.link.send(side, p, this.now)
        },
      })
    this.hosts = { a: make('a', [ADDRESS_A, ADDRESS_A6], 1), b: make('b', [ADDRESS_B, ADDRESS_B6], 2) }
    this.a = new Sockets(this.hosts.a)
    this.b = new Sockets(this.hosts.b)
  }

  /** Lets promises and stream callbacks run. */
  private async quiesce(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve))
  }

  /** Runs fake time forward until `done` holds (checked whenever the system is quiet) or `limitMs` passes. */
  async runUntil(done: () => boolean, limitMs = 60_000): Promise<boolean> {
    const until = this.now + limitMs
    for (;;) {
      await this.quiesce()
      for (const { to, packet } of this.link.deliver(this.now)) this.hosts[to].receive(packet)
      await this.quiesce()
      for (const side of ['a', 'b'] as const) {
        const c = this.clocks[side]
        if (c.deadline !== undefined && c.deadline <= this.now) {
          const due = c.due
          c.deadline = undefined
          c.due = undefined
          due?.()
        }
      }
      await this.quiesce()
      if (done()) return true
      const candidates = [this.clocks.a.deadline, this.clocks.b.deadline, this.link.nextEvent()].filter((t): t is number => t !== undefined)
      const next = candidates.length > 0 ? Math.min(...candidates) : undefined
      if (next === undefined || next > until) {
        this.now = until
        return done()
      }
      this.now = Math.max(this.now, next)
    }
  }

  /** Waits for a promise while driving fake time. */
  async settle<T>(promise: Promise<T>, limitMs = 60_000): Promise<T> {
    let finished = false
    const tracked = promise.finally(() => (finished = true))
    tracked.catch(() => {})
    await this.runUntil(() => finished, limitMs)
    if (!finished) throw new Error(`still pending after ${limitMs} ms of simulated time`)
    return tracked
  }

  stack(side: Side): Stack {
    return this.hosts[side].stack
  }
}
