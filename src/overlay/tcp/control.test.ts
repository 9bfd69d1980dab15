import { describe, expect, it } from 'vitest'
import { Cubic } from './congestion.ts'
import { InFlight } from './in-flight.ts'
import { RttEstimator } from './rtt.ts'

describe('RttEstimator (RFC 6298)', () => {
  it('starts at 1 s, follows samples with a 200 ms floor, and backs off exponentially to 60 s', () => {
    const rtt = new RttEstimator()
    expect(rtt.rto).toBe(1000)
    rtt.sample(100)
    expect(rtt.srtt).toBe(100)
    expect(rtt.rto).toBe(300) // 100 + 4 × 50
    for (let i = 0; i < 50; i++) rtt.sample(20)
    expect(rtt.rto).toBe(200)
    for (let i = 0; i < 20; i++) rtt.backoff()
    expect(rtt.rto).toBe(60_000)
    rtt.sample(20)
    expect(rtt.rto).toBe(200)
  })
})

describe('Cubic (RFC 9438)', () => {
  it('slow-starts, reduces by β = 0.7 on loss, and falls to one segment on timeout', () => {
    const cc = new Cubic(1000)
    expect(cc.cwnd).toBe(10_000)
    cc.onAck(2000, 10_000, 0, 50)
    expect(cc.cwnd).toBe(12_000)
    cc.onAck(2000, 1000, 0, 50) // not cwnd-limited: no growth
    expect(cc.cwnd).toBe(12_000)
    cc.onCongestion()
    expect(cc.cwnd).toBeCloseTo(8400)
    expect(cc.ssthresh).toBeCloseTo(8400)
    cc.onTimeout()
    expect(cc.cwnd).toBe(1000)
  })

  it('grows back towards the previous maximum in congestion avoidance', () => {
    const cc = new Cubic(1000)
    cc.cwnd = 100_000
    cc.onCongestion()
    let now = 0
    for (let rtt = 0; rtt < 200; rtt++) {
      now += 50
      for (let i = 0; i < cc.cwnd / 1000; i++) cc.onAck(1000, cc.cwnd, now, 50)
    }
    expect(cc.cwnd).toBeGreaterThan(100_000)
  })
})

describe('InFlight (RACK, RFC 8985)', () => {
  it('marks a segment lost once a later one is delivered beyond the reordering window', () => {
    const f = new InFlight()
    f.minRtt = 40
    for (let i = 0; i < 5; i++) f.sent(i * 1000, (i + 1) * 1000, i)
    f.sack(2000, 5000, 45)
    expect(f.deliveredBytes).toBe(3000)
    // Segments 0 and 1 were sent within 10 ms of the newest delivered one (t=4): only the reorder timer may declare them.
    expect(f.detectLosses(45, 10, 40)).toBe(0)
    expect(f.reorderDeadline).toBe(0 + 40 + 10)
    expect(f.detectLosses(51, 10, 40)).toBe(2000)
    expect([...f.lost()].map((s) => s.start)).toEqual([0, 1000])
    const [first] = [...f.lost()]
    f.resent(first!, 60)
    expect(f.lostBytes).toBe(1000)
    f.acknowledge(5000, 100)
    expect(f.isEmpty).toBe(true)
    expect(f.lostBytes).toBe(0)
    expect(f.deliveredBytes).toBe(0)
  })

  it('detects a lost retransmission when data sent after it is delivered', () => {
    const f = new InFlight()
    f.minRtt = 40
    f.sent(0, 1000, 0)
    f.sent(1000, 2000, 1)
    f.sack(1000, 2000, 45)
    f.detectLosses(200, 10, 40)
    const [lost] = [...f.lost()]
    f.resent(lost!, 200)
    f.sent(2000, 3000, 210)
    f.sack(2000, 3000, 260) // sent 10 ms after the retransmission, delivered; the retransmission was not
    expect(f.detectLosses(260, 10, 40)).toBe(1000)
  })

  it('marks everything unSACKed lost on a retransmission timeout', () => {
    const f = new InFlight()
    for (let i = 0; i < 4; i++) f.sent(i * 100, (i + 1) * 100, 0)
    f.sack(100, 200, 10)
    f.markAllLost()
    expect(f.lostBytes).toBe(300)
  })
})

describe('HyStart++ (RFC 9406)', () => {
  it('enters Conservative Slow Start when the round minimum RTT rises, and ends slow start after 5 CSS rounds', async () => {
    const { HyStart } = await import('./hystart.ts')
    const h = new HyStart()
    let sent = 0
    const round = (rtt: number): boolean => {
      for (let i = 0; i < 8; i++) h.onRttSample(rtt)
      sent += 10
      return h.onAck(sent - 10, sent)
    }
    h.onAck(0, 0)
    round(50)
    round(50)
    expect(h.growthDivisor).toBe(1)
    round(60) // +10 ms ≥ clamp(50/8, 4, 16) = 6.25 ms
    expect(h.inConservativeSlowStart).toBe(true)
    expect(h.growthDivisor).toBe(4)
    // The round that entered CSS is the first of its 5.
    const ends = [round(60), round(60), round(60), round(60)]
    expect(ends).toEqual([false, false, false, true])
    expect(h.inConservativeSlowStart).toBe(false)
  })
})
