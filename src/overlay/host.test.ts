import { describe, expect, it } from 'vitest'
import type { DriverClock, Timer } from '../clock/clock.ts'
import { StackHost } from './host.ts'
import { Stack } from './stack.ts'

/** Records the wake-ups asked for and never fires them: the test polls by hand. */
class RecordingClock implements DriverClock {
  time = 0
  requests: number[] = []
  now(): number {
    return this.time
  }
  setTimer(at: number): Timer {
    this.requests.push(at)
    return { clear() {} }
  }
}

const flushMicrotasks = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('StackHost', () => {
  it('polls on demand, forwards output to the sink and asks an external clock for the next deadline', async () => {
    const clock = new RecordingClock()
    const sent: Uint8Array[] = []
    const stack = new Stack({ addresses: ['100.64.0.1'] })
    const host = new StackHost(stack, { clock, sink: (packets) => sent.push(...packets) })
    stack.connect({ address: '100.64.0.2', port: 80 }, clock.now())
    host.kick()
    await flushMicrotasks()
    expect(sent).toHaveLength(1) // the SYN
    expect(clock.requests.at(-1)).toBe(1000) // its retransmission timeout
    clock.time = 1000
    host.poll()
    expect(sent).toHaveLength(2) // SYN retransmitted
    expect(clock.requests.at(-1)).toBe(3000) // backed off to 2 s
  })

  it('re-requests a deadline that moved later after an earlier one was cancelled', async () => {
    const clock = new RecordingClock()
    const a = new Stack({ addresses: ['100.64.0.1'] })
    const host = new StackHost(a, { clock, sink: () => {} })
    a.ping('100.64.0.2', 0, 500, () => {})
    host.poll()
    expect(clock.requests.at(-1)).toBe(500)
    a.ping('100.64.0.2', 0, 800, () => {})
    clock.time = 500
    host.poll()
    expect(clock.requests.at(-1)).toBe(800)
  })
})
