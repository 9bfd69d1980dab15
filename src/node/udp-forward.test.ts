// The UDP forwarder between two in-memory overlay stacks and a real node:dgram service.
import { createSocket, type Socket } from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import type { UDPSocketOpenInfo, UdpMessage } from '../overlay/index.ts'
import { AllowPolicy } from './allow.ts'
import { UdpForwarder, type UdpForwardEvent } from './udp-forward.ts'
import { CLIENT_ADDRESS, SERVER_ADDRESS, overlayPair, type OverlayPair } from './testing/overlay-pair.ts'
import { waitFor } from './testing/wait-for.ts'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A real UDP service that answers "<source port>:<payload>" so tests can see which socket sent. */
async function taggingEchoService(): Promise<{ port: number; sources: Set<number> }> {
  const socket: Socket = createSocket('udp4')
  const sources = new Set<number>()
  socket.on('message', (data, rinfo) => {
    sources.add(rinfo.port)
    socket.send(Buffer.concat([Buffer.from(`${rinfo.port}:`), data]), rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())))
  return { port: socket.address().port, sources }
}

function forward(pair: OverlayPair, targetPort: number, options: { allow?: string[]; idleMs?: number } = {}): { forwarder: UdpForwarder; events: UdpForwardEvent[] } {
  const events: UdpForwardEvent[] = []
  const forwarder = new UdpForwarder(pair.server.udp({ localPort: 53 }), {
    port: 53,
    target: { host: '127.0.0.1', port: targetPort },
    policy: new AllowPolicy(options.allow ?? []),
    peers: () => [{ hostname: 'client', addresses: [CLIENT_ADDRESS] }],
    onEvent: (event) => events.push(event),
    ...(options.idleMs !== undefined ? { idleMs: options.idleMs } : {}),
  })
  cleanups.push(() => forwarder.close())
  return { forwarder, events }
}

async function clientSocket(pair: OverlayPair): Promise<{ info: UDPSocketOpenInfo; send: (text: string) => Promise<void>; next: () => Promise<string> }> {
  const socket = pair.client.udp()
  cleanups.push(() => socket.close())
  const info = await socket.opened
  const writer = info.writable.getWriter()
  const reader = info.readable.getReader()
  return {
    info,
    send: (text) => writer.write({ data: new TextEncoder().encode(text), remoteAddress: SERVER_ADDRESS, remotePort: 53 } satisfies UdpMessage),
    next: async () => {
      const { value } = await reader.read()
      expect(value).toMatchObject({ remoteAddress: SERVER_ADDRESS, remotePort: 53 })
      return Buffer.from(value!.data).toString()
    },
  }
}

describe('UdpForwarder', () => {
  it('forwards datagrams both ways, one real socket per overlay remote', async () => {
    const service = await taggingEchoService()
    const pair = overlayPair()
    const { events } = forward(pair, service.port)
    const first = await clientSocket(pair)
    const second = await clientSocket(pair)
    await first.send('one')
    const a = await first.next()
    await second.send('two')
    const b = await second.next()
    await first.send('three')
    const c = await first.next()
    expect(a).toMatch(/^\d+:one$/)
    expect(b).toMatch(/^\d+:two$/)
    expect(c.split(':')[0]).toBe(a.split(':')[0]) // the same flow keeps its real socket
    expect(b.split(':')[0]).not.toBe(a.split(':')[0])
    expect(service.sources.size).toBe(2)
    expect(events.filter((e) => e.type === 'udp-session')).toEqual([
      { type: 'udp-session', port: 53, target: { host: '127.0.0.1', port: service.port }, remote: `${CLIENT_ADDRESS}:${first.info.localPort}`, peer: 'client' },
      { type: 'udp-session', port: 53, target: { host: '127.0.0.1', port: service.port }, remote: `${CLIENT_ADDRESS}:${second.info.localPort}`, peer: 'client' },
    ])
  })

  it('carries binary payloads byte-exact', async () => {
    const echo = createSocket('udp4')
    echo.on('message', (data, rinfo) => echo.send(data, rinfo.port, rinfo.address))
    await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => echo.close(() => resolve())))
    const pair = overlayPair()
    forward(pair, echo.address().port)
    const socket = pair.client.udp()
    cleanups.push(() => socket.close())
    const { readable, writable } = await socket.opened
    const payload = new Uint8Array(1200).map((_, i) => (i * 7) & 0xff)
    await writable.getWriter().write({ data: payload, remoteAddress: SERVER_ADDRESS, remotePort: 53 })
    const { value } = await readable.getReader().read()
    expect(Buffer.compare(value!.data, payload)).toBe(0)
  })

  it('closes a session after the idle timeout and opens a new one on the next datagram', async () => {
    const service = await taggingEchoService()
    const pair = overlayPair()
    const { forwarder, events } = forward(pair, service.port, { idleMs: 50 })
    const client = await clientSocket(pair)
    await client.send('a')
    const before = (await client.next()).split(':')[0]
    await waitFor('the idle session to close', () => events.some((e) => e.type === 'udp-session-ended'))
    expect(events.find((e) => e.type === 'udp-session-ended')).toMatchObject({ why: 'idle', datagramsIn: 1, datagramsOut: 1 })
    expect(forwarder.sessionCount).toBe(0)
    await client.send('b')
    const after = (await client.next()).split(':')[0]
    expect(after).not.toBe(before)
  })

  it('drops datagrams from peers the policy does not admit, and says so', async () => {
    const service = await taggingEchoService()
    const pair = overlayPair()
    const { forwarder, events } = forward(pair, service.port, { allow: ['laptop'] })
    const client = await clientSocket(pair)
    await client.send('let me in')
    await waitFor('the denial', () => events.length > 0)
    expect(events).toEqual([
      {
        type: 'udp-denied',
        port: 53,
        remote: `${CLIENT_ADDRESS}:${client.info.localPort}`,
        peer: 'client',
        reason: `client (${CLIENT_ADDRESS}) matches no --allow entry (laptop)`,
      },
    ])
    expect(service.sources.size).toBe(0)
    expect(forwarder.dropped).toBe(1)
  })

  it('drops a reply too big for the tunnel and keeps forwarding the next ones', async () => {
    const service = createSocket('udp4')
    service.on('message', (data, rinfo) => {
      service.send(new Uint8Array(2000), rinfo.port, rinfo.address)
      service.send(data, rinfo.port, rinfo.address)
    })
    await new Promise<void>((resolve) => service.bind(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => service.close(() => resolve())))
    const pair = overlayPair()
    const { forwarder, events } = forward(pair, service.address().port)
    const client = await clientSocket(pair)
    await client.send('small')
    expect(await client.next()).toBe('small')
    await client.send('again')
    expect(await client.next()).toBe('again')
    expect(forwarder.dropped).toBe(2)
    expect(events.filter((e) => e.type === 'udp-dropped')[0]).toMatchObject({
      reason: `a 2000-byte reply from 127.0.0.1:${service.address().port} exceeds the 1392-byte UDP payload the tunnel MTU allows`,
    })
  })

  it('reports a taken overlay port through ready', async () => {
    const pair = overlayPair()
    const first = pair.server.udp({ localPort: 53 })
    cleanups.push(() => first.close())
    await expect(forward(pair, 1).forwarder.ready).rejects.toThrow('UDP port 53 is already bound')
  })

  it('ends a session whose service port is closed (ICMP port unreachable)', async () => {
    const probe = createSocket('udp4')
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve))
    const closedPort = probe.address().port
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    const pair = overlayPair()
    const { events } = forward(pair, closedPort)
    const client = await clientSocket(pair)
    await client.send('anyone?')
    await waitFor('the session to end', () => events.some((e) => e.type === 'udp-session-ended'))
    expect(events.find((e) => e.type === 'udp-session-ended')).toMatchObject({ why: 'service-error', detail: `127.0.0.1:${closedPort}: nothing is listening` })
  })
})
