import { describe, expect, it } from 'vitest'
import { ipv4Packet, Pair, seededRandom } from './testing.ts'

/**
 * Ten minutes of fake time with traffic both ways, timers polled as a driver would (at
 * nextEvent), optional loss: sessions must keep rekeying and packets keep flowing.
 */
function soak(lossPercent: number, seed: number) {
  const pair = new Pair({ seed })
  const coin = seededRandom(seed * 7 + 1)
  const lost = () => coin(1)[0]! < (lossPercent * 256) / 100
  const delivered = { a: 0, b: 0 }
  const sent = { a: 0, b: 0 }
  const wire: Array<{ to: 'a' | 'b'; message: Uint8Array }> = []
  const handshakes = new Set<number>()
  const flush = (now: number) => {
    while (wire.length > 0) {
      const { to, message } = wire.shift()!
      if (lost()) continue
      const tunnel = to === 'a' ? pair.a : pair.b
      const result = tunnel.receive(message, now)
      delivered[to] += result.packets.length
      for (const reply of result.replies) wire.push({ to: to === 'a' ? 'b' : 'a', message: reply })
    }
  }
  let now = 1_000
  const end = now + 600_000
  while (now < end) {
    // Bursty traffic: a talks every 700 ms, b answers every third tick, both go quiet for a while.
    const quiet = now % 200_000 > 150_000
    if (!quiet && now % 700 < 100) {
      sent.a++
      for (const message of pair.a.send(pair.toB, ipv4Packet(100), now)) wire.push({ to: 'b', message })
    }
    if (!quiet && now % 2100 < 100) {
      sent.b++
      for (const message of pair.b.send(pair.toA, ipv4Packet(120), now)) wire.push({ to: 'a', message })
    }
    flush(now)
    for (const { message } of pair.a.poll(now)) wire.push({ to: 'b', message })
    for (const { message } of pair.b.poll(now)) wire.push({ to: 'a', message })
    flush(now)
    const lastA = pair.a.stats(pair.toB).lastHandshake
    if (lastA !== undefined) handshakes.add(lastA)
    const next = Math.min(pair.a.nextEvent() ?? Infinity, pair.b.nextEvent() ?? Infinity)
    expect(next).toBeGreaterThan(now - 1) // nothing left overdue after a poll
    now = Math.min(now + 100, next)
  }
  return { pair, delivered, sent, handshakes }
}

describe('soak: ten minutes of fake time', () => {
  it('without loss every packet arrives across many rekeys and nothing is dropped', () => {
    const { pair, delivered, sent, handshakes } = soak(0, 3)
    expect(delivered.b).toBe(sent.a)
    expect(delivered.a).toBe(sent.b)
    expect(handshakes.size).toBeGreaterThanOrEqual(4)
    expect(pair.a.drops).toEqual({})
    expect(pair.b.drops).toEqual({})
    expect(pair.a.stats(pair.toB).drops).toEqual({})
    expect(pair.b.stats(pair.toA).drops).toEqual({})
  })

  it('with 20% loss the tunnel keeps recovering', () => {
    const { delivered, sent, handshakes } = soak(20, 4)
    expect(delivered.b).toBeGreaterThan(sent.a * 0.6)
    expect(delivered.a).toBeGreaterThan(sent.b * 0.6)
    expect(handshakes.size).toBeGreaterThanOrEqual(4)
  })
})
