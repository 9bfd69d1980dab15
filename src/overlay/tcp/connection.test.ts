import { describe, expect, it } from 'vitest'
import { concatBytes } from '../../crypto/index.ts'
import { ACK, FIN, PROTO_ICMP, RST, SYN, buildIcmpError, buildIp, parseAddress } from '../../wire/index.ts'
import { ADDRESS_A, ADDRESS_B, decodeTcp, drain, encodeTcp, makePair, patternBytes, type WireSegment } from '../testing/pair.ts'
import type { SimNetwork } from '../testing/sim-network.ts'
import type { TcpConnection } from './connection.ts'
import type { TcpError } from './errors.ts'

interface Established {
  net: SimNetwork
  client: TcpConnection
  server: TcpConnection
  wire: Array<{ from: 'a' | 'b'; seg: WireSegment; at: number }>
}

function establish(link = {}, port = 7000): Established {
  const net = makePair({ delayMs: 10, ...link })
  const wire: Established['wire'] = []
  net.tap = (from, packet, at) => {
    const seg = decodeTcp(packet)
    if (seg) wire.push({ from, seg, at })
  }
  const listener = net.b.listen({ port })
  const client = net.a.connect({ address: ADDRESS_B, port }, net.now)
  let server: TcpConnection | undefined
  listener.onConnection = () => (server = listener.accept())
  expect(net.runUntil(() => server !== undefined && client.state === 'ESTABLISHED')).toBe(true)
  return { net, client, server: server!, wire }
}

/** Writes `data` whenever the connection has room (shutting down after the last byte if asked); returns the count written so far. */
function writeAll(connection: TcpConnection, data: Uint8Array, { shutdownAtEnd = false } = {}): () => number {
  let written = 0
  const pump = (): void => {
    while (written < data.length) {
      const n = connection.write(data.subarray(written))
      if (n === 0) break
      written += n
    }
    if (shutdownAtEnd && written === data.length) connection.shutdown()
  }
  connection.events.writable = pump
  pump()
  return () => written
}

function collect(connection: TcpConnection): { bytes: () => Uint8Array; length: () => number; ended: () => boolean } {
  const chunks: Uint8Array[] = []
  let length = 0
  const take = (): void =>
    drain(connection, (c) => {
      chunks.push(c)
      length += c.length
    })
  connection.events.readable = take
  take()
  return {
    bytes: () => {
      take()
      return concatBytes(chunks)
    },
    length: () => length,
    ended: () => connection.readEnded,
  }
}

/** Byte comparison without the deep-equality walk that makes multi-megabyte toEqual crawl. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length)
  expect(Buffer.compare(actual, expected)).toBe(0)
}

function closedWith(connection: TcpConnection): { error: () => TcpError | undefined | 'open' } {
  let result: TcpError | undefined | 'open' = 'open'
  connection.events.closed = (e) => (result = e)
  return { error: () => result }
}

describe('TCP handshake and negotiation', () => {
  it('negotiates MSS, window scaling, SACK and timestamps; SYN windows are unscaled', () => {
    const { client, server, wire } = establish()
    expect(client.negotiated).toEqual({ mss: 1420 - 40 - 12, sendScale: 5, receiveScale: 5, timestamps: true, sack: true })
    expect(server.negotiated).toEqual(client.negotiated)
    const syn = wire.find((w) => w.seg.flags === SYN)!.seg
    expect(syn.options).toMatchObject({ mss: 1380, windowScale: 5, sackPermitted: true })
    expect(syn.window).toBe(0xffff)
    const synAck = wire.find((w) => w.seg.flags === (SYN | ACK))!.seg
    expect(synAck.options.windowScale).toBe(5)
    expect(synAck.window).toBe(0xffff)
  })

  it('clamps the MSS to the smaller MTU and honours the peer MSS', () => {
    const net = makePair({}, {}, { mtu: 1280 })
    const listener = net.b.listen({ port: 80 })
    let server: TcpConnection | undefined
    listener.onConnection = () => (server = listener.accept())
    const client = net.a.connect({ address: ADDRESS_B, port: 80 }, net.now)
    const sizes: number[] = []
    net.tap = (from, packet) => {
      const seg = decodeTcp(packet)
      if (seg && from === 'a') sizes.push(seg.payload.length)
    }
    client.events.established = () => client.write(patternBytes(100_000))
    net.runUntil(() => server !== undefined && server.readableLength === 100_000)
    expect(Math.max(...sizes)).toBe(1280 - 40 - 12)
  })

  it('uses no window scaling unless both sides offer it', () => {
    const net = makePair({}, {}, { tcp: { windowScaling: false } })
    const listener = net.b.listen({ port: 80 })
    let server: TcpConnection | undefined
    listener.onConnection = () => (server = listener.accept())
    const client = net.a.connect({ address: ADDRESS_B, port: 80 }, net.now)
    net.runUntil(() => server !== undefined)
    expect(client.negotiated.sendScale).toBe(0)
    expect(client.negotiated.receiveScale).toBe(0)
    expect(server!.negotiated.receiveScale).toBe(0)
  })

  it('reports a refused connection', () => {
    const net = makePair({ delayMs: 5 })
    const client = net.a.connect({ address: ADDRESS_B, port: 9 }, net.now)
    const closed = closedWith(client)
    net.runUntil(() => closed.error() !== 'open')
    expect((closed.error() as TcpError).code).toBe('refused')
    expect(client.state).toBe('CLOSED')
    expect(net.a.connectionCount).toBe(0)
  })

  it('fails a connection attempt at once on ICMP host unreachable, but not an established one', () => {
    const net = makePair({ delayMs: 5 })
    const client = net.a.connect({ address: '100.64.0.77', port: 80 }, net.now)
    const closed = closedWith(client)
    const [syn] = net.a.takeOutgoing()
    const router = parseAddress('100.64.0.254')
    const icmp = (original: Uint8Array): Uint8Array =>
      buildIp({ src: router, dst: parseAddress(ADDRESS_A), protocol: PROTO_ICMP, payload: buildIcmpError({ type: 3, code: 1, original }, 4, router, parseAddress(ADDRESS_A)) })
    net.a.receive(icmp(syn!), net.now)
    expect((closed.error() as TcpError).code).toBe('unreachable')
    expect((closed.error() as TcpError).message).toBe('host unreachable')
    expect(net.a.connectionCount).toBe(0)

    const { net: net2, client: established, wire } = establish()
    const lastData = encodeTcp(ADDRESS_A, ADDRESS_B, { srcPort: established.localPort, dstPort: established.remotePort, seq: wire.at(-1)!.seg.ack, flags: ACK })
    net2.a.receive(icmp(lastData), net2.now)
    expect(established.state).toBe('ESTABLISHED')
  })

  it('completes a simultaneous open (RFC 9293 figure 7)', () => {
    const net = makePair({ delayMs: 20 })
    const a = net.a.connect({ address: ADDRESS_B, port: 6000, localPort: 5000 }, net.now)
    const b = net.b.connect({ address: ADDRESS_A, port: 5000, localPort: 6000 }, net.now)
    const seen: string[] = []
    net.tap = (_from, packet) => seen.push(String(decodeTcp(packet)?.flags))
    expect(net.runUntil(() => a.state === 'ESTABLISHED' && b.state === 'ESTABLISHED', 5000)).toBe(true)
    const got = collect(b)
    a.write(new TextEncoder().encode('hello'))
    net.runUntil(() => got.length() === 5)
    expect(new TextDecoder().decode(got.bytes())).toBe('hello')
  })

  it('drops SYNs beyond the listen backlog instead of refusing them', () => {
    const net = makePair({ delayMs: 5 })
    net.b.listen({ port: 80, backlog: 2 })
    const clients = [0, 1, 2, 3].map(() => net.a.connect({ address: ADDRESS_B, port: 80 }, net.now))
    net.advance(500)
    expect(clients.filter((c) => c.state === 'ESTABLISHED')).toHaveLength(2)
    expect(clients.filter((c) => c.state === 'SYN_SENT')).toHaveLength(2)
    expect(net.b.stats.backlogDrops).toBeGreaterThanOrEqual(2)
  })
})

describe('Stack configuration', () => {
  it('rejects nonsensical TCP settings with the setting named', async () => {
    const { Stack } = await import('../stack.ts')
    expect(() => new Stack({ addresses: [ADDRESS_A], tcp: { receiveBufferSize: 10 } })).toThrow(/tcp.receiveBufferSize must be within 4096/)
    expect(() => new Stack({ addresses: [ADDRESS_A], tcp: { delayedAckMs: 600 } })).toThrow(/tcp.delayedAckMs/)
    expect(() => new Stack({ addresses: [ADDRESS_A], mtu: 100 })).toThrow(/MTU 100/)
    expect(() => new Stack({ addresses: ['not-an-ip'] })).toThrow()
  })
})

describe('TCP sequence space', () => {
  it('carries data across the 2^32 wrap of sequence numbers and timestamps', () => {
    const net = makePair({ delayMs: 5, loss: 0.02, seed: 8 })
    for (const stack of [net.a, net.b]) {
      ;(stack as unknown as { isn: { generate: () => { isn: number; timestampOffset: number } } }).isn.generate = () => ({
        isn: 0xffffff00,
        timestampOffset: 0xfffffff0,
      })
    }
    const listener = net.b.listen({ port: 80 })
    let server: TcpConnection | undefined
    listener.onConnection = () => (server = listener.accept())
    const client = net.a.connect({ address: ADDRESS_B, port: 80 }, net.now)
    net.runUntil(() => server !== undefined)
    const up = collect(server!)
    const down = collect(client)
    const data = patternBytes(1_000_000)
    client.write(data)
    server!.write(data)
    client.shutdown()
    server!.shutdown()
    net.runUntil(() => up.ended() && down.ended())
    expectSameBytes(up.bytes(), data)
    expectSameBytes(down.bytes(), data)
    expect(client.stats.pawsDrops + server!.stats.pawsDrops).toBe(0)
  })
})

describe('TCP closing', () => {
  it('half-closes: data keeps flowing towards the side that sent FIN', () => {
    const { net, client, server } = establish()
    const atServer = collect(server)
    const atClient = collect(client)
    client.write(new TextEncoder().encode('request'))
    client.shutdown()
    net.runUntil(() => atServer.ended() && client.state === 'FIN_WAIT_2')
    expect(new TextDecoder().decode(atServer.bytes())).toBe('request')
    expect(client.state).toBe('FIN_WAIT_2')
    expect(server.state).toBe('CLOSE_WAIT')
    const reply = patternBytes(300_000)
    server.write(reply)
    server.shutdown()
    net.runUntil(() => atClient.ended())
    expectSameBytes(atClient.bytes(), reply)
    expect(client.state).toBe('TIME_WAIT')
    net.runUntil(() => server.state === 'CLOSED')
    expect(net.b.connectionCount).toBe(0)
    net.advance(60_000)
    expect(client.state).toBe('CLOSED')
    expect(net.a.connectionCount).toBe(0)
  })

  it('closes simultaneously through CLOSING into TIME_WAIT on both sides', () => {
    const { net, client, server } = establish({ delayMs: 20 })
    const states: string[] = []
    client.shutdown()
    server.shutdown()
    net.a.poll(net.now)
    net.b.poll(net.now)
    net.runUntil(() => {
      states.push(client.state)
      return client.state === 'TIME_WAIT' && server.state === 'TIME_WAIT'
    })
    expect(states).toContain('CLOSING')
    expect(client.state).toBe('TIME_WAIT')
    expect(server.state).toBe('TIME_WAIT')
  })

  it('lets a new SYN reuse a 4-tuple in TIME_WAIT', () => {
    const { net, client, server } = establish({}, 7100)
    const listener = net.b.listen({ port: 7101 })
    void listener
    // Server closes first, so the server side holds TIME_WAIT.
    server.shutdown()
    net.runUntil(() => client.state === 'CLOSE_WAIT')
    client.shutdown()
    net.runUntil(() => server.state === 'TIME_WAIT' && client.state === 'CLOSED')
    const localPort = client.localPort
    // Reconnect from the same port to the same server port: the TIME_WAIT entry must yield.
    let second: TcpConnection | undefined
    const l2 = net.b.listen({ port: 7102 })
    void l2
    const serverListener = (net.b as unknown as { listeners: Map<number, { onConnection: () => void; accept: () => TcpConnection }> }).listeners.get(7100)!
    serverListener.onConnection = () => (second = serverListener.accept())
    const again = net.a.connect({ address: ADDRESS_B, port: 7100, localPort }, net.now)
    expect(net.runUntil(() => again.state === 'ESTABLISHED' && second !== undefined, net.now + 5000)).toBe(true)
    expect(second!.state).toBe('ESTABLISHED')
  })

  it('reuses its own TIME_WAIT 4-tuple for a new outgoing connection', () => {
    const { net, client, server } = establish({}, 7200)
    client.shutdown()
    net.runUntil(() => server.state === 'CLOSE_WAIT')
    server.shutdown()
    net.runUntil(() => client.state === 'TIME_WAIT')
    const again = net.a.connect({ address: ADDRESS_B, port: 7200, localPort: client.localPort }, net.now)
    expect(net.runUntil(() => again.state === 'ESTABLISHED', net.now + 5000)).toBe(true)
  })

  it('errors both sides on RST: the peer sees "connection reset by peer"', () => {
    const { net, client, server } = establish()
    const closed = closedWith(client)
    server.abort()
    net.runUntil(() => closed.error() !== 'open')
    const error = closed.error() as TcpError
    expect(error.code).toBe('reset')
    expect(error.message).toBe('connection reset by peer')
    expect(net.a.connectionCount).toBe(0)
    expect(net.b.connectionCount).toBe(0) // the aborting side forgets it too
  })
})

describe('TCP robustness (RFC 5961, RFC 7323)', () => {
  it('answers an in-window RST that is not exact with a challenge ACK, and honours an exact one', () => {
    const { net, client, wire } = establish()
    const lastFromServer = wire.filter((w) => w.from === 'b').at(-1)!.seg
    const rcvNxt = (lastFromServer.seq + lastFromServer.payload.length + (lastFromServer.flags & SYN ? 1 : 0)) >>> 0
    const before = wire.length
    const rst = (seq: number): Uint8Array => encodeTcp(ADDRESS_B, ADDRESS_A, { srcPort: client.remotePort, dstPort: client.localPort, seq, flags: RST })
    net.a.receive(rst((rcvNxt + 1000) >>> 0), net.now)
    net.settle()
    expect(client.state).toBe('ESTABLISHED')
    expect(client.stats.challengeAcks).toBe(1)
    const challenge = wire.slice(before).find((w) => w.from === 'a')!.seg
    expect(challenge.flags).toBe(ACK)
    expect(challenge.ack).toBe(rcvNxt)
    // Out of window: silently ignored.
    net.a.receive(rst((rcvNxt + 0x40000000) >>> 0), net.now)
    net.settle()
    expect(client.state).toBe('ESTABLISHED')
    expect(client.stats.challengeAcks).toBe(1)
    const closed = closedWith(client)
    net.a.receive(rst(rcvNxt), net.now)
    net.settle()
    expect(client.state).toBe('CLOSED')
    expect((closed.error() as TcpError).code).toBe('reset')
  })

  it('throttles challenge ACKs (RFC 5961 §7)', () => {
    const { net, client } = establish()
    for (let i = 0; i < 50; i++) {
      net.a.receive(encodeTcp(ADDRESS_B, ADDRESS_A, { srcPort: client.remotePort, dstPort: client.localPort, seq: 999 + i, flags: SYN }), net.now)
    }
    net.settle()
    expect(client.stats.challengeAcks).toBe(10)
    net.advance(1000)
    net.a.receive(encodeTcp(ADDRESS_B, ADDRESS_A, { srcPort: client.remotePort, dstPort: client.localPort, seq: 5, flags: SYN }), net.now)
    net.settle()
    expect(client.stats.challengeAcks).toBe(11)
    expect(client.state).toBe('ESTABLISHED')
  })

  it('challenges a SYN on an established connection (RFC 5961 §4)', () => {
    const { net, client } = establish()
    net.a.receive(encodeTcp(ADDRESS_B, ADDRESS_A, { srcPort: client.remotePort, dstPort: client.localPort, seq: 12345, flags: SYN }), net.now)
    net.settle()
    expect(client.state).toBe('ESTABLISHED')
    expect(client.stats.challengeAcks).toBe(1)
  })

  it('drops a segment with an old timestamp (PAWS) and ACKs it', () => {
    const { net, client, server, wire } = establish()
    const got = collect(client)
    server.write(new TextEncoder().encode('fresh'))
    net.runUntil(() => got.length() === 5)
    const last = wire.filter((w) => w.from === 'b' && w.seg.payload.length > 0).at(-1)!.seg
    const staleTs = (last.options.timestamp!.value - 1000) >>> 0
    const before = wire.length
    net.a.receive(
      encodeTcp(ADDRESS_B, ADDRESS_A, {
        srcPort: client.remotePort,
        dstPort: client.localPort,
        seq: (last.seq + 5) >>> 0,
        ack: last.ack,
        flags: ACK,
        window: 1000,
        options: { timestamp: { value: staleTs, echo: last.options.timestamp!.echo } },
        payload: new TextEncoder().encode('stale'),
      }),
      net.now,
    )
    net.settle()
    expect(client.stats.pawsDrops).toBe(1)
    expect(client.readableLength).toBe(0)
    expect(new TextDecoder().decode(got.bytes())).toBe('fresh')
    expect(wire.slice(before).some((w) => w.from === 'a' && w.seg.flags === ACK)).toBe(true)
  })

  it('ignores garbage without disturbing connections', () => {
    const { net, client, server } = establish()
    const got = collect(server)
    net.b.receive(new Uint8Array([0x45, 0, 0, 10]), net.now)
    net.b.receive(new Uint8Array(0), net.now)
    const good = encodeTcp(ADDRESS_A, ADDRESS_B, { srcPort: 1, dstPort: 2, flags: SYN })
    good[good.length - 1]! ^= 0xff // breaks the checksum
    net.b.receive(good, net.now)
    expect(net.b.stats.malformed).toBe(3)
    client.write(new Uint8Array([1, 2, 3]))
    net.runUntil(() => got.length() === 3)
  })
})

describe('TCP SACK', () => {
  it('sends SACK blocks for held data and the sender never resends SACKed bytes', () => {
    const { net, client, server, wire } = establish({ delayMs: 10 })
    const got = collect(server)
    const data = patternBytes(2_000_000)
    let dropped = 0
    // Drop the 5th, 6th and 40th data segments from the client once each.
    let dataSegments = 0
    net.filter = (from, packet) => {
      const seg = decodeTcp(packet)
      if (from !== 'a' || !seg || seg.payload.length === 0) return true
      dataSegments++
      if ([5, 6, 40].includes(dataSegments)) {
        dropped++
        return false
      }
      return true
    }
    writeAll(client, data)
    net.runUntil(() => got.length() === data.length)
    expect(dropped).toBe(3)
    expectSameBytes(got.bytes(), data)
    // The receiver advertised what it held.
    const sacks = wire.filter((w) => w.from === 'b' && w.seg.options.sack && w.seg.options.sack.length > 0)
    expect(sacks.length).toBeGreaterThan(0)
    // No data segment sent after a SACK arrived overlaps that SACKed range.
    const violations: string[] = []
    const fromClient = wire.filter((w) => w.from === 'a' && w.seg.payload.length > 0)
    for (const s of sacks) {
      const arrival = s.at + 10
      for (const w of fromClient) {
        if (w.at <= arrival) continue
        const start = w.seg.seq
        const end = (w.seg.seq + w.seg.payload.length) >>> 0
        for (const [left, right] of s.seg.options.sack!) {
          if (((start - right) | 0) < 0 && ((end - left) | 0) > 0) violations.push(`[${start}, ${end}) inside SACKed [${left}, ${right})`)
        }
      }
    }
    expect(violations).toEqual([])
    expect(client.stats.retransmitTimeouts).toBe(0)
    expect(client.stats.fastRecoveries).toBeGreaterThan(0)
    expect(client.stats.bytesRetransmitted).toBe(3 * client.mss)
  })
})

describe('TCP tail loss probe (RFC 8985 §7)', () => {
  it('repairs a lost last segment well before the retransmission timeout', () => {
    const { net, client, server } = establish({ delayMs: 10 })
    const got = collect(server)
    let dataSegments = 0
    net.filter = (from, packet) => {
      const seg = decodeTcp(packet)
      if (from === 'a' && seg && seg.payload.length > 0 && ++dataSegments === 3) return false
      return true
    }
    const start = net.now
    client.write(patternBytes(3 * client.mss))
    net.runUntil(() => got.length() === 3 * client.mss)
    expect(client.stats.tailLossProbes).toBe(1)
    expect(client.stats.retransmitTimeouts).toBe(0)
    expect(net.now - start).toBeLessThan(120)
    expectSameBytes(got.bytes(), patternBytes(3 * client.mss))
  })
})

describe('TCP spurious retransmission undo (Eifel, RFC 3522 / RFC 4015)', () => {
  it('restores the congestion window after an RTO caused by a relay stall, not loss', () => {
    const { net, client, server } = establish({ delayMs: 10 })
    const got = collect(server)
    const data = patternBytes(8 << 20)
    writeAll(client, data)
    net.runUntil(() => got.length() > 2 << 20)
    const cwndBefore = client.congestionWindow
    // Head-of-line blocking: nothing is delivered for 600 ms, then everything at once.
    net.link.stall(net.now + 600)
    net.runUntil(() => got.length() === data.length)
    expectSameBytes(got.bytes(), data)
    expect(client.stats.retransmitTimeouts).toBeGreaterThanOrEqual(1)
    expect(client.stats.spuriousRetransmissions).toBeGreaterThanOrEqual(1)
    expect(client.congestionWindow).toBeGreaterThanOrEqual(0.7 * cwndBefore)
  })
})

describe('TCP flow control and timers', () => {
  it('probes a zero window and resumes when the reader does, losing nothing', () => {
    const { net, client, server } = establish({ delayMs: 25 })
    const data = patternBytes(5_000_000)
    const written = writeAll(client, data, { shutdownAtEnd: true })
    // The server does not read for 10 simulated seconds.
    net.advance(10_000)
    // Full, to the window-scale granularity (2^5 bytes).
    expect(server.readableLength).toBeGreaterThan((1 << 20) - 32)
    expect(written()).toBeLessThan(data.length)
    expect(client.stats.zeroWindowProbes).toBeGreaterThan(0)
    const probesBefore = client.stats.zeroWindowProbes
    // Lose the reader's window update: only a probe can restart the flow.
    let dropUpdate = true
    net.filter = (from) => {
      if (from === 'b' && dropUpdate) {
        dropUpdate = false
        return false
      }
      return true
    }
    const got = collect(server)
    expect(net.runUntil(() => got.ended(), net.now + 120_000)).toBe(true)
    expectSameBytes(got.bytes(), data)
    expect(client.stats.zeroWindowProbes).toBeGreaterThan(probesBefore)
  })

  it('keepalive detects a dead peer', () => {
    const net = makePair({ delayMs: 10 })
    const listener = net.b.listen({ port: 22 })
    listener.onConnection = () => listener.accept()
    const client = net.a.connect({ address: ADDRESS_B, port: 22, keepAlive: { idleMs: 10_000, intervalMs: 1000, count: 3 } }, net.now)
    const closed = closedWith(client)
    net.runUntil(() => client.state === 'ESTABLISHED')
    // While the peer answers, probes keep the connection up.
    net.advance(30_000)
    expect(client.state).toBe('ESTABLISHED')
    expect(client.stats.keepAliveProbes).toBeGreaterThanOrEqual(2)
    net.link.configure({ loss: 1 })
    const cutAt = net.now
    net.runUntil(() => closed.error() !== 'open', net.now + 60_000)
    expect((closed.error() as TcpError).code).toBe('timeout')
    // idle 10 s, then 3 unanswered probes 1 s apart, then give up.
    expect(net.now - cutAt).toBeLessThanOrEqual(10_000 + 4 * 1000 + 100)
  })

  it('gives up after repeated retransmission timeouts with exponential backoff', () => {
    const { net, client } = establish({ delayMs: 10 })
    const closed = closedWith(client)
    net.link.configure({ loss: 1 })
    client.write(new Uint8Array(100))
    const times: number[] = []
    net.tap = (from, _p, at) => from === 'a' && times.push(at)
    net.runUntil(() => closed.error() !== 'open', net.now + 3_600_000)
    expect((closed.error() as TcpError).code).toBe('timeout')
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    expect(gaps[1]! / gaps[0]!).toBeCloseTo(2, 1)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(60_000)
  })

  it('delays a lone ACK but acknowledges every second full segment at once', () => {
    const { net, client, server, wire } = establish({ delayMs: 10 })
    collect(server)
    // Let the first window update (64 KiB SYN window → 1 MiB) go out first.
    client.write(new Uint8Array(10))
    net.advance(1000)
    const start = wire.length
    client.write(new Uint8Array(10))
    net.runUntil(() => wire.slice(start).some((w) => w.from === 'b'))
    const sent = wire.slice(start).find((w) => w.from === 'a')!
    const acked = wire.slice(start).find((w) => w.from === 'b')!
    expect(acked.at - sent.at).toBeGreaterThanOrEqual(10 + 40 - 1)
    expect(acked.at - sent.at).toBeLessThanOrEqual(10 + 200)
    const mark = wire.length
    client.write(new Uint8Array(2 * client.mss))
    net.runUntil(() => wire.slice(mark).some((w) => w.from === 'b'))
    const first = wire.slice(mark).find((w) => w.from === 'a')!
    const ack = wire.slice(mark).find((w) => w.from === 'b')!
    expect(ack.at - first.at).toBeLessThan(10 + 1)
  })

  it('Nagle holds a second small write until the first is acknowledged; noDelay does not', () => {
    for (const noDelay of [false, true]) {
      const { net, client, server, wire } = establish({ delayMs: 10 })
      client.noDelay = noDelay
      collect(server)
      const mark = wire.length
      client.write(new Uint8Array(10))
      net.a.poll(net.now)
      client.write(new Uint8Array(10))
      net.settle()
      const immediate = wire.slice(mark).filter((w) => w.from === 'a' && w.seg.payload.length > 0)
      expect(immediate).toHaveLength(noDelay ? 2 : 1)
    }
  })
})

describe('FIN handling', () => {
  it('does not send FIN before queued data and delivers EOF after it', () => {
    const { net, client, server, wire } = establish()
    const got = collect(server)
    client.write(patternBytes(50_000))
    client.shutdown()
    net.runUntil(() => got.ended())
    expectSameBytes(got.bytes(), patternBytes(50_000))
    const fins = wire.filter((w) => w.from === 'a' && w.seg.flags & FIN)
    expect(fins.length).toBeGreaterThan(0)
    expect(() => client.write(new Uint8Array(1))).toThrow(/after the sending side was closed/)
  })
})
