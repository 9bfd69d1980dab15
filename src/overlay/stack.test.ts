import { describe, expect, it } from 'vitest'
import { ACK, SYN } from '../wire/index.ts'
import { Stack } from './stack.ts'
import { decodeTcp, encodeTcp } from './testing/pair.ts'

describe('Stack demultiplexing', () => {
  it('keeps serving an accepted connection after the caller reuses the SYN packet buffer', () => {
    const stack = new Stack({ addresses: ['100.64.0.2'], secret: new Uint8Array(32).fill(3) })
    const listener = stack.listen({ port: 80 })
    // A receive buffer the caller overwrites with the next packet, as a driver with one buffer does.
    const buffer = encodeTcp('100.64.0.9', '100.64.0.2', { srcPort: 4000, dstPort: 80, seq: 1000, flags: SYN })
    stack.receive(buffer, 0)
    const synAck = decodeTcp(stack.takeOutgoing()[0]!)!
    expect(synAck.flags).toBe(SYN | ACK)
    const ack = encodeTcp('100.64.0.9', '100.64.0.2', { srcPort: 4000, dstPort: 80, seq: 1001, ack: (synAck.seq + 1) >>> 0, flags: ACK })
    expect(ack.length).toBe(buffer.length)
    buffer.set(ack) // the SYN's source and destination bytes are now the ACK's; scribble over them too
    buffer.fill(0xee, 12, 20)
    expect(listener.accept()).toBeUndefined()
    stack.receive(ack, 1)
    const connection = listener.accept()
    expect(connection?.state).toBe('ESTABLISHED')
    expect(stack.connectionCount).toBe(1)
    expect(stack.stats.resetsSent).toBe(0)
  })
})
