import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { SimLinkOptions } from '../testing/sim-link.ts'
import { ADDRESS_B, ADDRESS_B6, drain, makePair, patternBytes } from '../testing/pair.ts'
import type { SimNetwork } from '../testing/sim-network.ts'
import type { TcpConfig } from './config.ts'
import type { TcpConnection } from './connection.ts'

interface TransferResult {
  ok: boolean
  elapsedMs: number
  digestSent: string
  digestReceived: string
  received: number
  client: TcpConnection
  server: TcpConnection
}

/** Client on A uploads `total` bytes to a server on B, which hashes what it reads. */
function transfer(total: number, link: SimLinkOptions, limitMs = 3_600_000, target = ADDRESS_B, tcp: Partial<TcpConfig> = {}): TransferResult & { net: SimNetwork } {
  const net = makePair(link, { tcp }, { tcp })
  const listener = net.b.listen({ port: 5001 })
  const client = net.a.connect({ address: target, port: 5001 }, net.now)
  const chunk = patternBytes(256 * 1024, 3)
  const sentHash = createHash('sha256')
  const receivedHash = createHash('sha256')
  let written = 0
  let received = 0
  let server: TcpConnection | undefined
  const pump = (): void => {
    while (written < total) {
      const offset = written % chunk.length
      const piece = chunk.subarray(offset, Math.min(chunk.length, offset + (total - written)))
      const n = client.write(piece)
      if (n === 0) break
      sentHash.update(piece.subarray(0, n))
      written += n
    }
    if (written === total) client.shutdown()
  }
  client.events.established = pump
  client.events.writable = pump
  listener.onConnection = () => {
    server = listener.accept()!
    server.events.readable = () =>
      drain(server!, (c) => {
        receivedHash.update(c)
        received += c.length
      })
  }
  const start = net.now
  const ok = net.runUntil(() => server !== undefined && server.readEnded, start + limitMs)
  return {
    ok,
    elapsedMs: net.now - start,
    digestSent: sentHash.digest('hex'),
    digestReceived: receivedHash.digest('hex'),
    received,
    client,
    server: server!,
    net,
  }
}

describe('bulk transfer', () => {
  it('moves 50 MB byte-exact through 5 % loss, 5 % reordering and 1 % duplication', () => {
    const r = transfer(50 << 20, { seed: 42, delayMs: 10, loss: 0.05, reorder: 0.05, duplicate: 0.01, reorderDelayMs: 5 })
    expect(r.ok).toBe(true)
    expect(r.received).toBe(50 << 20)
    expect(r.digestReceived).toBe(r.digestSent)
    expect(r.net.link.stats.lost).toBeGreaterThan(1000)
    expect(r.net.link.stats.duplicated).toBeGreaterThan(100)
    expect(r.net.link.stats.reordered).toBeGreaterThan(1000)
  }, 60_000)

  it('survives corruption: bad checksums are dropped and recovered from', () => {
    const r = transfer(5 << 20, { seed: 9, delayMs: 10, corrupt: 0.02 })
    expect(r.ok).toBe(true)
    expect(r.digestReceived).toBe(r.digestSent)
    expect(r.net.link.stats.corrupted).toBeGreaterThan(50)
    expect(r.net.a.stats.malformed + r.net.b.stats.malformed).toBeGreaterThan(50)
  })

  it('exceeds 100 Mbit/s of simulated time over a clean 50 ms RTT link (windows open past 64 KiB)', () => {
    const r = transfer(40 << 20, { delayMs: 25, bandwidthBps: 1e9 })
    expect(r.ok).toBe(true)
    expect(r.digestReceived).toBe(r.digestSent)
    const mbit = (r.received * 8) / (r.elapsedMs / 1000) / 1e6
    expect(mbit).toBeGreaterThanOrEqual(100)
    expect(r.client.congestionWindow).toBeGreaterThan(64 * 1024)
    expect(r.client.negotiated.sendScale).toBeGreaterThan(0)
  }, 60_000)

  it('works over IPv6', () => {
    const r = transfer(2 << 20, { delayMs: 5, loss: 0.01 }, 3_600_000, ADDRESS_B6)
    expect(r.ok).toBe(true)
    expect(r.digestReceived).toBe(r.digestSent)
    expect(r.client.negotiated.mss).toBe(1420 - 60 - 12)
  })

  it('recovers with NewReno and Karn-timed RTTs when SACK and timestamps are off', () => {
    const r = transfer(2 << 20, { seed: 11, delayMs: 10, loss: 0.02, reorder: 0.02 }, 3_600_000, ADDRESS_B, { sack: false, timestamps: false })
    expect(r.ok).toBe(true)
    expect(r.digestReceived).toBe(r.digestSent)
    expect(r.client.negotiated).toMatchObject({ sack: false, timestamps: false, mss: 1380 })
    expect(r.client.stats.fastRecoveries).toBeGreaterThan(5)
    expect(r.client.smoothedRtt).toBeGreaterThan(15)
  })

  it('learns persistent reordering from D-SACKs instead of shrinking its window again and again', () => {
    const r = transfer(10 << 20, { seed: 4, delayMs: 25, reorder: 0.1, reorderDelayMs: 30 })
    expect(r.ok).toBe(true)
    expect(r.digestReceived).toBe(r.digestSent)
    expect(r.client.stats.duplicateSacks).toBeGreaterThan(0)
    expect(r.client.stats.fastRecoveries).toBeLessThan(20)
  })

  it('leaves slow start as a bottleneck queue builds (HyStart++), overflowing it far less', () => {
    const r = transfer(10 << 20, { seed: 3, delayMs: 25, bandwidthBps: 20e6, queueBytes: 200_000 })
    expect(r.ok).toBe(true)
    expect(r.digestReceived).toBe(r.digestSent)
    // Plain slow start doubles into the 200 kB queue and loses ~480 segments; CSS growth loses ~110.
    expect(r.net.link.stats.queueDrops).toBeLessThan(200)
    expect((r.received * 8) / r.elapsedMs / 1000).toBeGreaterThan(15) // Mbit/s of a 20 Mbit/s link
  })

  it('is deterministic for a given seed', () => {
    const link = { seed: 5, delayMs: 10, loss: 0.03, reorder: 0.03 }
    const first = transfer(1 << 20, link)
    const second = transfer(1 << 20, link)
    expect(second.elapsedMs).toBe(first.elapsedMs)
    expect(second.client.stats).toEqual(first.client.stats)
  })
})
