import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ACK } from '../../wire/index.ts'
import { ADDRESS_A, ADDRESS_B, decodeTcp, drain, encodeTcp, makePair, patternBytes } from '../testing/pair.ts'
import type { TcpConnection } from './connection.ts'

describe('TCP under hostile input', () => {
  it('survives arbitrary segments on a live connection and still delivers byte-exact', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            seqDelta: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
            ackDelta: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
            nearSeq: fc.boolean(),
            flags: fc.integer({ min: 0, max: 255 }),
            window: fc.integer({ min: 0, max: 0xffff }),
            sack: fc.array(fc.tuple(fc.integer({ min: -100_000, max: 100_000 }), fc.integer({ min: -100_000, max: 100_000 })), { maxLength: 3 }),
            ts: fc.option(fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }))),
            payload: fc.uint8Array({ maxLength: 64 }),
          }),
          { maxLength: 30 },
        ),
        (attacks) => {
          const net = makePair({ delayMs: 5 })
          let lastFromB: { seq: number; ack: number } = { seq: 0, ack: 0 }
          net.tap = (from, packet) => {
            const seg = decodeTcp(packet)
            if (seg && from === 'b') lastFromB = { seq: (seg.seq + seg.payload.length) >>> 0, ack: seg.ack }
          }
          const listener = net.b.listen({ port: 80 })
          let server: TcpConnection | undefined
          let received = 0
          const chunks: Uint8Array[] = []
          listener.onConnection = () => {
            server = listener.accept()
            server!.events.readable = () =>
              drain(server!, (c) => {
                chunks.push(c)
                received += c.length
              })
          }
          const client = net.a.connect({ address: ADDRESS_B, port: 80 }, net.now)
          net.runUntil(() => server !== undefined)
          const data = patternBytes(200_000)
          client.write(data.subarray(0, 100_000))
          net.advance(20)
          for (const a of attacks) {
            // Half the attacks aim near the real sequence numbers, where they can do damage.
            const seq = a.nearSeq ? (lastFromB.seq + (a.seqDelta % 5000)) >>> 0 : a.seqDelta >>> 0
            const ack = a.nearSeq ? (lastFromB.ack + (a.ackDelta % 5000)) >>> 0 : a.ackDelta >>> 0
            const packet = encodeTcp(ADDRESS_B, ADDRESS_A, {
              srcPort: 80,
              dstPort: client.localPort,
              seq,
              ack,
              flags: a.flags & ~0x04 ? a.flags & ~0x04 : ACK, // RST is covered by its own tests: keep the connection alive
              window: a.window,
              options: {
                ...(a.sack.length > 0 && { sack: a.sack.map(([l, r]) => [(ack + l) >>> 0, (ack + r) >>> 0] as [number, number]) }),
                ...(a.ts && { timestamp: { value: a.ts[0], echo: a.ts[1] } }),
              },
              payload: a.payload,
            })
            net.a.receive(packet, net.now)
            net.settle()
          }
          client.write(data.subarray(100_000))
          client.shutdown()
          net.runUntil(() => server!.readEnded || client.isDead, net.now + 600_000)
          // Forged segments may legitimately kill the connection (e.g. an acceptable FIN-less
          // state change is not possible, but a forged ACK beyond what was sent is dropped);
          // what must never happen is corrupted data or an exception.
          const got = Buffer.concat(chunks)
          expect(Buffer.compare(got, data.subarray(0, got.length))).toBe(0)
          if (!client.isDead) expect(received).toBe(data.length)
        },
      ),
      { numRuns: 60, seed: 20261126 },
    )
  })

  it('drops malformed packets without throwing', () => {
    const net = makePair()
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        net.a.receive(bytes, net.now)
        net.settle()
      }),
      { numRuns: 500, seed: 7 },
    )
    expect(net.a.stats.malformed + net.a.stats.notForUs + net.a.stats.unsupported).toBeGreaterThan(0)
  })
})
