import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { InFlight } from './in-flight.ts'

type Op =
  | { kind: 'send'; length: number; advance: number }
  | { kind: 'ack'; upTo: number; advance: number }
  | { kind: 'sack'; from: number; to: number; advance: number }
  | { kind: 'resend-lost'; advance: number }
  | { kind: 'detect'; window: number; rtt: number; advance: number }

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('send' as const), length: fc.integer({ min: 1, max: 3000 }), advance: fc.oneof(fc.constant(0), fc.nat(5)) }),
  fc.record({ kind: fc.constant('ack' as const), upTo: fc.double({ min: 0, max: 1, noNaN: true }), advance: fc.oneof(fc.constant(0), fc.nat(5)) }),
  fc.record({
    kind: fc.constant('sack' as const),
    from: fc.double({ min: 0, max: 1, noNaN: true }),
    to: fc.double({ min: 0, max: 1, noNaN: true }),
    advance: fc.oneof(fc.constant(0), fc.nat(5)),
  }),
  fc.record({ kind: fc.constant('resend-lost' as const), advance: fc.oneof(fc.constant(0), fc.nat(5)) }),
  fc.record({ kind: fc.constant('detect' as const), window: fc.integer({ min: 1, max: 20 }), rtt: fc.integer({ min: 1, max: 30 }), advance: fc.oneof(fc.constant(0), fc.nat(5)) }),
)

/** Applies `ops` with a monotonic clock and records everything observable. */
function run(ops: Op[], fullScan: boolean): unknown[] {
  const f = new InFlight()
  // The reference instance takes the plain full scan of every outstanding segment.
  if (fullScan) (f as unknown as { sendTimesOrdered: boolean }).sendTimesOrdered = false
  f.minRtt = 5
  let now = 0
  let acked = 0
  let sent = 0
  // Segment edges, so SACK blocks usually cover whole segments as a receiver's do.
  const edges: number[] = [0]
  const edgeAt = (fraction: number): number => {
    const live = edges.filter((e) => e >= acked)
    return live[Math.min(live.length - 1, Math.floor(fraction * live.length))] ?? acked
  }
  const log: unknown[] = []
  for (const op of ops) {
    now += op.advance
    switch (op.kind) {
      case 'send':
        f.sent(sent, sent + op.length, now)
        sent += op.length
        edges.push(sent)
        break
      case 'ack':
        acked = Math.max(acked, edgeAt(op.upTo * op.upTo))
        f.acknowledge(acked, now)
        break
      case 'sack': {
        const [a, b] = [edgeAt(op.from), edgeAt(op.to)]
        log.push(f.sack(Math.min(a, b), Math.max(a, b), now))
        break
      }
      case 'resend-lost':
        for (const seg of [...f.lost()]) f.resent(seg, now)
        break
      case 'detect':
        log.push(f.detectLosses(now, op.window, op.rtt), f.reorderDeadline)
        break
    }
    log.push(f.lostBytes, f.deliveredBytes, f.count)
  }
  return log
}

describe('InFlight.detectLosses early exit', () => {
  it('still finds a segment sent before the RACK segment behind a later retransmission', () => {
    const f = new InFlight()
    f.sent(0, 100, 0)
    f.sent(100, 200, 2)
    f.sent(200, 300, 3)
    f.markFirstLost()
    f.resent([...f.lost()][0]!, 10) // [0, 100) again, now the latest send time
    f.sack(200, 300, 20) // RACK segment: sent at 3
    expect(f.detectLosses(20, 1, 5)).toBe(100) // [100, 200), sent at 2, stays lost
    expect([...f.lost()].map((s) => s.start)).toEqual([100])
  })

  it('still finds a segment sent in the same millisecond as the RACK segment but below it', () => {
    const f = new InFlight()
    f.sent(0, 100, 0)
    f.sent(100, 200, 0)
    f.sack(100, 200, 1)
    expect(f.detectLosses(1, 2, 10)).toBe(0)
    expect(f.reorderDeadline).toBe(12)
    expect(f.detectLosses(12, 2, 10)).toBe(100)
  })

  it('marks exactly what a scan of every outstanding segment marks', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { maxLength: 120 }), (ops) => {
        expect(run(ops, false)).toEqual(run(ops, true))
      }),
      { numRuns: 400 },
    )
  })
})
