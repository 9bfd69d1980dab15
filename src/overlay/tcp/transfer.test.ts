import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { SimLinkOptions } from '../testing/sim-link.ts'
import { ADDRESS_B, drain, makePair, patternBytes } from '../testing/pair.ts'
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
function transfer(total: number, link: SimLinkOptions, limitMs = 3_600_000): TransferResult {
  const net = makePair(link)
  const listener = net.b.listen({ port: 5001 })
  const client = net.a.connect({ address: ADDRESS_B, port: 5001 }, net.now)
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
  }
}

describe('bulk transfer', () => {
  it('moves data byte-exact over a clean link', () => {
    const r = transfer(5 << 20, { delayMs: 5 })
    expect(r.ok).toBe(true)
    expect(r.received).toBe(5 << 20)
    expect(r.digestReceived).toBe(r.digestSent)
  })
})

describe('bulk transfer (probe)', () => {
  it('lossy 50MB', () => {
    const r = transfer(50 << 20, { seed: 42, delayMs: 10, loss: 0.05, reorder: 0.05, duplicate: 0.01, reorderDelayMs: 5 })
    console.log('lossy', r.ok, r.elapsedMs, r.received, r.client.stats, r.client.congestionWindow)
    expect(r.digestReceived).toBe(r.digestSent)
  }, 120_000)
  it('clean 50ms', () => {
    const r = transfer(20 << 20, { delayMs: 25, bandwidthBps: 1e9 })
    console.log('clean', r.ok, r.elapsedMs, (r.received * 8) / r.elapsedMs / 1000, r.client.stats, r.client.congestionWindow, r.client.negotiated)
  }, 120_000)
})
