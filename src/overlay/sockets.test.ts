import { describe, expect, it } from 'vitest'
import { concatBytes } from '../crypto/index.ts'
import { ADDRESS_A, ADDRESS_A6, ADDRESS_B, ADDRESS_B6, patternBytes } from './testing/pair.ts'
import { SocketTestbed } from './testing/socket-testbed.ts'
import type { TCPSocket } from './sockets.ts'

async function readAll(readable: ReadableStream<Uint8Array>, bed: SocketTestbed): Promise<Uint8Array> {
  const reader = readable.getReader()
  const chunks: Uint8Array[] = []
  for (;;) {
    const { done, value } = await bed.settle(reader.read())
    if (done) break
    chunks.push(value)
  }
  return concatBytes(chunks)
}

describe('Sockets API', () => {
  it('connects, echoes through streams and closes', async () => {
    const bed = new SocketTestbed()
    const server = bed.b.listen({ port: 7 })
    const { readable: incoming } = await bed.settle(server.opened)
    const accepting = (async () => {
      const reader = incoming.getReader()
      const { value: socket } = await reader.read()
      const { readable, writable } = await socket!.opened
      await readable.pipeTo(writable) // echo until the client half-closes, then close ours
    })()
    const client = bed.a.connect({ host: ADDRESS_B, port: 7 })
    const info = await bed.settle(client.opened)
    expect(info).toMatchObject({ remoteAddress: ADDRESS_B, remotePort: 7, localAddress: ADDRESS_A })
    const payload = patternBytes(3_000_000)
    const writer = info.writable.getWriter()
    const writing = writer.write(payload).then(() => writer.close())
    const echoed = await readAll(info.readable, bed)
    await bed.settle(writing)
    await bed.settle(accepting)
    expect(Buffer.compare(echoed, payload)).toBe(0)
    await bed.settle(client.closed)
  })

  it('keeps writing after the reader cancels its readable', async () => {
    const bed = new SocketTestbed()
    const server = bed.b.listen({ port: 9 })
    const { readable: incoming } = await bed.settle(server.opened)
    const client = bed.a.connect({ host: ADDRESS_B, port: 9 })
    const info = await bed.settle(client.opened)
    const { value: accepted } = await bed.settle(incoming.getReader().read())
    const serverInfo = await bed.settle((accepted as TCPSocket).opened)
    await bed.settle(info.readable.cancel())
    const writer = info.writable.getWriter()
    await bed.settle(writer.write(new TextEncoder().encode('still here')))
    await bed.settle(writer.close())
    expect(new TextDecoder().decode(await readAll(serverInfo.readable, bed))).toBe('still here')
  })

  it('connects over IPv6, with or without URL brackets', async () => {
    const bed = new SocketTestbed()
    const server = bed.b.listen({ port: 80 })
    await bed.settle(server.opened)
    for (const host of [ADDRESS_B6, `[${ADDRESS_B6}]`]) {
      const info = await bed.settle(bed.a.connect({ host, port: 80 }).opened)
      expect(info).toMatchObject({ remoteAddress: ADDRESS_B6, localAddress: ADDRESS_A6 })
    }
  })

  it('rejects a refused connection with host:port and "connection refused"', async () => {
    const bed = new SocketTestbed()
    const client = bed.a.connect({ host: ADDRESS_B, port: 4444 })
    await expect(bed.settle(client.opened)).rejects.toThrow(`${ADDRESS_B}:4444: connection refused`)
    await expect(client.closed).rejects.toThrow(/connection refused/)
  })

  it('rejects a name it cannot resolve with a clear error', async () => {
    const bed = new SocketTestbed()
    await expect(bed.settle(bed.a.connect({ host: 'example.internal', port: 80 }).opened)).rejects.toThrow(/not an IP address and no resolver/)
  })

  it('errors the streams with "connection reset by peer" on RST', async () => {
    const bed = new SocketTestbed()
    const server = bed.b.listen({ port: 80 })
    const { readable: incoming } = await bed.settle(server.opened)
    const client = bed.a.connect({ host: ADDRESS_B, port: 80 })
    const info = await bed.settle(client.opened)
    const { value: accepted } = await bed.settle(incoming.getReader().read())
    const serverSide = await bed.settle((accepted as TCPSocket).opened)
    // Unread data + close() = abort (RST).
    const w = info.writable.getWriter()
    await bed.settle(w.write(new Uint8Array(100)))
    await bed.runUntil(() => false, 500)
    void serverSide
    await bed.settle((accepted as TCPSocket).close())
    await expect(bed.settle(info.readable.getReader().read())).rejects.toThrow(`${ADDRESS_B}:80: connection reset by peer`)
    await expect(client.closed).rejects.toThrow(/connection reset by peer/)
  })

  it('applies backpressure end to end: a stalled reader closes the window and blocks the writer', async () => {
    const bed = new SocketTestbed({ delayMs: 10 })
    const server = bed.b.listen({ port: 80 })
    const { readable: incoming } = await bed.settle(server.opened)
    const client = bed.a.connect({ host: ADDRESS_B, port: 80 })
    const info = await bed.settle(client.opened)
    const { value: accepted } = await bed.settle(incoming.getReader().read())
    const serverInfo = await bed.settle((accepted as TCPSocket).opened)
    const total = 4 << 20
    const payload = patternBytes(total)
    const writer = info.writable.getWriter()
    let written = 0
    const writing = (async () => {
      for (let o = 0; o < total; o += 64 * 1024) {
        await writer.write(payload.subarray(o, o + 64 * 1024))
        written = o + 64 * 1024
      }
      await writer.close()
    })()
    // Nobody reads for 10 simulated seconds: only receive buffer + send buffer can be in flight.
    await bed.runUntil(() => false, 10_000)
    expect(written).toBeLessThan(total)
    expect(written).toBeLessThanOrEqual(2 * (1 << 20) + 64 * 1024)
    expect(written).toBeGreaterThan(1 << 20)
    const received = await readAll(serverInfo.readable, bed)
    await bed.settle(writing)
    expect(Buffer.compare(received, payload)).toBe(0)
  })

  it('sends and receives UDP datagrams over IPv4 and IPv6', async () => {
    const bed = new SocketTestbed()
    const server = bed.b.udp({ localPort: 53 })
    const serverInfo = await bed.settle(server.opened)
    const echo = (async () => {
      const reader = serverInfo.readable.getReader()
      const writer = serverInfo.writable.getWriter()
      for (let i = 0; i < 2; i++) {
        const { value } = await reader.read()
        await writer.write({ data: value!.data.reverse(), remoteAddress: value!.remoteAddress, remotePort: value!.remotePort })
      }
    })()
    const client = bed.a.udp()
    const info = await bed.settle(client.opened)
    const reader = info.readable.getReader()
    const writer = info.writable.getWriter()
    await bed.settle(writer.write({ data: new Uint8Array([1, 2, 3]), remoteAddress: ADDRESS_B, remotePort: 53 }))
    const first = await bed.settle(reader.read())
    expect(first.value).toMatchObject({ data: new Uint8Array([3, 2, 1]), remoteAddress: ADDRESS_B, remotePort: 53 })
    await bed.settle(writer.write({ data: new Uint8Array([4, 5]), remoteAddress: ADDRESS_B6, remotePort: 53 }))
    const second = await bed.settle(reader.read())
    expect(second.value).toMatchObject({ data: new Uint8Array([5, 4]), remoteAddress: ADDRESS_B6, remotePort: 53 })
    await bed.settle(echo)
    await expect(writer.write({ data: new Uint8Array(2000), remoteAddress: ADDRESS_B, remotePort: 53 })).rejects.toThrow(/exceeds/)
  })

  it('answers a datagram to an unbound UDP port with ICMP port unreachable', async () => {
    const bed = new SocketTestbed()
    const client = bed.a.udp()
    const info = await bed.settle(client.opened)
    const writer = info.writable.getWriter()
    const seen: number[] = []
    const original = bed.stack('a').receive.bind(bed.stack('a'))
    bed.stack('a').receive = (packet, now) => {
      seen.push(packet[9]!)
      original(packet, now)
    }
    await bed.settle(writer.write({ data: new Uint8Array([1]), remoteAddress: ADDRESS_B, remotePort: 9999 }))
    await bed.runUntil(() => seen.length > 0, 1000)
    expect(bed.stack('b').stats.udpNoPort).toBe(1)
    expect(seen).toEqual([1]) // protocol 1: ICMP
  })

  it('pings over ICMP and ICMPv6 and times out when nobody answers', async () => {
    const bed = new SocketTestbed({ delayMs: 7 })
    expect(await bed.settle(bed.a.ping(ADDRESS_B))).toBe(14)
    expect(await bed.settle(bed.b.ping(ADDRESS_A6))).toBe(14)
    await expect(bed.settle(bed.a.ping('100.64.0.99', { timeout: 1000 }))).rejects.toThrow(/no reply within 1000 ms/)
    expect(bed.stack('b').stats.notForUs).toBe(1)
  })
})
