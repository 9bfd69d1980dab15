// A path that goes dark for seconds (a relay restarting) costs a retransmission timeout; once
// the path is back the sender must slow-start again from one segment (RFC 5681 §3.1) instead of
// creeping along one segment per round trip until the whole lost flight is resent.
import { describe, expect, it } from 'vitest'
import { ADDRESS_B, drain, makePair, patternBytes } from '../testing/pair.ts'
import type { TcpConnection } from './connection.ts'

describe('recovery after a retransmission timeout', () => {
  it('regrows the window in slow start once a dead path comes back', () => {
    // Without timestamps, so no Eifel undo can restore the old window and hide the slow start.
    const tcp = { timestamps: false }
    const net = makePair({ seed: 5, delayMs: 10, bandwidthBps: 50e6, queueBytes: 4 << 20 }, { tcp }, { tcp })
    const listener = net.b.listen({ port: 5001 })
    const client = net.a.connect({ address: ADDRESS_B, port: 5001 }, net.now)
    const total = 6 << 20
    const chunk = patternBytes(256 * 1024, 9)
    let written = 0
    let received = 0
    let server: TcpConnection | undefined
    const pump = (): void => {
      while (written < total) {
        const n = client.write(chunk.subarray(0, Math.min(chunk.length, total - written)))
        if (n === 0) break
        written += n
      }
      if (written === total) client.shutdown()
    }
    client.events.established = pump
    client.events.writable = pump
    listener.onConnection = () => {
      server = listener.accept()!
      server.events.readable = () => drain(server!, (c) => (received += c.length))
    }
    expect(net.runUntil(() => received >= 1 << 20)).toBe(true)

    // Three seconds of silence in both directions, and everything in flight is lost with the
    // path (a relay process killed with packets in its queues).
    let dark = true
    for (const stack of [net.a, net.b]) {
      const receive = stack.receive.bind(stack)
      stack.receive = (packet, now) => {
        if (!dark) receive(packet, now)
      }
    }
    net.advance(3000)
    expect(client.stats.retransmitTimeouts).toBeGreaterThan(0)
    expect(client.congestionWindow).toBe(client.negotiated.mss)
    dark = false
    const timeouts = client.stats.retransmitTimeouts

    // Wait for the next (backed-off) retransmission, the first to get through; a second (50 round
    // trips) later the window must have grown far past one segment, and the transfer must finish.
    expect(net.runUntil(() => client.stats.retransmitTimeouts > timeouts, net.now + 20_000)).toBe(true)
    net.advance(1000)
    expect(client.congestionWindow).toBeGreaterThanOrEqual(32 * client.negotiated.mss)
    expect(net.runUntil(() => server?.readEnded === true, net.now + 60_000)).toBe(true)
    expect(received).toBe(total)
  })
})
