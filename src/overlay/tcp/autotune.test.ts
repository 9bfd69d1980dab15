import { describe, expect, it } from 'vitest'
import { Stack } from '../stack.ts'
import { ADDRESS_B, decodeTcp, drain, makePair, patternBytes } from '../testing/pair.ts'
import type { TcpConfig } from './config.ts'
import type { TcpConnection } from './connection.ts'

// Receive-window autotuning over a simulated long fat link: 100 ms RTT at 1 Gbit/s, so the
// bandwidth-delay product is 12.5 MB, twelve times the 1 MiB window a connection starts with.
// Time is the simulation's own clock, which jumps from event to event.
const RTT_MS = 100
const BANDWIDTH_BPS = 1e9
const BDP = (BANDWIDTH_BPS / 8) * (RTT_MS / 1000)

interface Run {
  server: TcpConnection
  /** The largest window the server advertised, in bytes (scaled). */
  largestAdvertised: number
  elapsedMs: number
  done: boolean
}

function upload(total: number, tcp: Partial<TcpConfig>): Run {
  const net = makePair({ delayMs: RTT_MS / 2, bandwidthBps: BANDWIDTH_BPS, queueBytes: 16 << 20 }, { tcp }, { tcp })
  const listener = net.b.listen({ port: 5001 })
  const client = net.a.connect({ address: ADDRESS_B, port: 5001 }, net.now)
  const chunk = patternBytes(256 * 1024, 5)
  let written = 0
  let received = 0
  let server: TcpConnection | undefined
  let largestAdvertised = 0
  const pump = (): void => {
    while (written < total) {
      const n = client.write(chunk.subarray(0, Math.min(chunk.length, total - written)))
      if (n === 0) return
      written += n
    }
  }
  client.events.established = pump
  client.events.writable = pump
  listener.onConnection = () => {
    server = listener.accept()!
    server.events.readable = () => drain(server!, (c) => (received += c.length))
  }
  net.tap = (from, packet) => {
    if (from !== 'b' || !server?.isSynchronized) return
    const seg = decodeTcp(packet)
    if (seg && !(seg.flags & 2)) largestAdvertised = Math.max(largestAdvertised, seg.window * 2 ** server.negotiated.receiveScale)
  }
  const start = net.now
  const done = net.runUntil(() => received === total, start + 600_000)
  return { server: server!, largestAdvertised, elapsedMs: net.now - start, done }
}

describe('receive-window autotuning', () => {
  it('grows the advertised window past the bandwidth-delay product of a long fat link, up to the cap the application set', () => {
    const cap = 32 << 20
    const tuned = upload(64 << 20, { maxReceiveWindow: cap, maxSendBuffer: 64 << 20 })
    expect(tuned.done).toBe(true)
    expect(tuned.server.negotiated.receiveScale).toBe(10) // chosen in the SYN for the 32 MiB cap
    expect(tuned.largestAdvertised).toBeGreaterThan(BDP)
    expect(tuned.largestAdvertised).toBeLessThanOrEqual(cap)
    expect(tuned.server.receiveWindowCapacity).toBeLessThanOrEqual(cap)
  }, 120_000)

  it('stops growing at the cap: a 4 MiB cap is reached and never exceeded', () => {
    const cap = 4 << 20
    const capped = upload(48 << 20, { maxReceiveWindow: cap, maxSendBuffer: 64 << 20 })
    expect(capped.done).toBe(true)
    expect(capped.server.receiveWindowCapacity).toBe(cap)
    expect(capped.largestAdvertised).toBeGreaterThan(cap - 64 * 1024)
    expect(capped.largestAdvertised).toBeLessThanOrEqual(cap)
  }, 120_000)

  it('keeps the window at receiveBufferSize when maxReceiveWindow equals it (autotuning off), and finishes later in simulated time than with it', () => {
    const fixed = upload(24 << 20, { maxReceiveWindow: 1 << 20, maxSendBuffer: 64 << 20 })
    const tuned = upload(24 << 20, { maxReceiveWindow: 32 << 20, maxSendBuffer: 64 << 20 })
    expect(fixed.done && tuned.done).toBe(true)
    expect(fixed.server.receiveWindowCapacity).toBe(1 << 20)
    expect(fixed.largestAdvertised).toBeLessThanOrEqual(1 << 20)
    expect(tuned.elapsedMs).toBeLessThan(fixed.elapsedMs)
  }, 120_000)
})

describe('autotuning options', () => {
  it('rejects a maxReceiveWindow or maxSendBuffer outside 4096..2^30, naming the option', () => {
    expect(() => new Stack({ addresses: ['100.64.0.1'], tcp: { maxReceiveWindow: 1000 } })).toThrow(/tcp\.maxReceiveWindow must be within 4096\.\.1073741824, not 1000/)
    expect(() => new Stack({ addresses: ['100.64.0.1'], tcp: { maxSendBuffer: Number.NaN } })).toThrow(/tcp\.maxSendBuffer/)
  })
})
