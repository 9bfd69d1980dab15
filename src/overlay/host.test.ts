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

  it.each([
    [true, 'keeps views of the handed-over packets'],
    [false, 'copies the payload out of packets it does not own'],
  ])('ownsInboundPackets %s: the receiving stack %s', async (owns) => {
    const clock = new RecordingClock()
    const a = new Stack({ addresses: ['100.64.0.1'] })
    const b = new Stack({ addresses: ['100.64.0.2'] })
    const toA: Uint8Array[] = []
    const toB: Uint8Array[] = []
    const hostA = new StackHost(a, { clock, sink: (packets) => toB.push(...packets) })
    const hostB = new StackHost(b, { clock, sink: (packets) => toA.push(...packets), ownsInboundPackets: owns })
    const listener = b.listen({ port: 80 })
    const client = a.connect({ address: '100.64.0.2', port: 80 }, clock.now())
    const carried: Uint8Array[] = []
    const settle = async (): Promise<void> => {
      for (let round = 0; round < 20; round++) {
        hostA.kick()
        hostB.kick()
        await flushMicrotasks()
        if (toA.length === 0 && toB.length === 0) return
        const forB = toB.splice(0)
        carried.push(...forB)
        hostB.receive(forB)
        hostA.receive(toA.splice(0))
      }
    }
    await settle()
    client.write(new TextEncoder().encode('hello, owned world'))
    await settle()
    const server = listener.accept()!
    const chunk = server.read()!
    expect(new TextDecoder().decode(chunk)).toBe('hello, owned world')
    // (Packets and copies may share a slab's buffer, so compare the bytes' place, not just the buffer.)
    const inPacket = (packet: Uint8Array): boolean =>
      packet.buffer === chunk.buffer && chunk.byteOffset >= packet.byteOffset && chunk.byteOffset + chunk.length <= packet.byteOffset + packet.length
    expect(carried.some(inPacket)).toBe(owns)
  })
})
