// Test doubles for the dataplane driver's tests and those of the managers built on it: an overlay
// that records what the dataplane delivers, and a way to run a ManualClock with asynchronous
// deliveries (relay links, channels) in between.
import type { ManualClock } from '../../clock/clock.ts'
import type { OverlayTransport } from '../transport.ts'

/** The overlay side of a driver: `received` is what the dataplane delivered, `inject` sends packets into it. */
export class MemoryOverlay implements OverlayTransport {
  received: Uint8Array[] = []
  stopped = false
  private deliver: ((packets: Uint8Array[]) => void) | undefined
  start(deliver: (packets: Uint8Array[]) => void): void {
    this.deliver = deliver
  }
  stop(): void {
    this.stopped = true
  }
  send(packets: Uint8Array[]): void {
    this.received.push(...packets)
  }
  inject(packets: Uint8Array[]): void {
    this.deliver!(packets)
  }
}

/** Lets a few turns of queued work (microtasks, immediates: link and channel deliveries) run. */
export async function settle(turns = 6): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

/** Advances `clock` to `until`, firing timers in order and letting asynchronous deliveries run after each and at the end. */
export async function runUntilSettled(clock: ManualClock, until: number): Promise<void> {
  await settle()
  while (clock.fireNext(until)) await settle()
  clock.set(until)
  await settle()
}
