// The bridge between two real overlay stacks (back to back in memory) and real node:net servers.
// Real sockets mean real time: the tests wait for events, never for durations.
import { createServer as createHttpServer } from 'node:http'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { patternBytes } from '../overlay/testing/pair.ts'
import type { TCPSocketOpenInfo } from '../overlay/index.ts'
import { AllowPolicy, type PeerIdentity } from './allow.ts'
import type { TcpBridge } from './bridge.ts'
import { TcpService, type ServiceEvent } from './serve.ts'
import { CLIENT_ADDRESS, SERVER_ADDRESS, overlayPair, type OverlayPair } from './testing/overlay-pair.ts'
import { waitFor } from './testing/wait-for.ts'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function listenReal(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => {
    ;(server as { closeAllConnections?: () => void }).closeAllConnections?.()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as AddressInfo).port
}

interface Served {
  pair: OverlayPair
  service: TcpService
  events: ServiceEvent[]
  /** The bridges the service started, in order. */
  bridges: TcpBridge[]
}

async function serve(
  targetPort: number,
  options: { allow?: string[]; overlayPort?: number; maxConnections?: number; peers?: () => PeerIdentity[]; peersChanged?: () => Promise<void> } = {},
): Promise<Served> {
  const pair = overlayPair()
  const overlayPort = options.overlayPort ?? 80
  const events: ServiceEvent[] = []
  const service = new TcpService(pair.server.listen({ port: overlayPort }), {
    port: overlayPort,
    target: { host: '127.0.0.1', port: targetPort },
    policy: new AllowPolicy(options.allow ?? []),
    peers: options.peers ?? (() => [{ hostname: 'client', addresses: [CLIENT_ADDRESS] }]),
    onEvent: (event) => events.push(event),
    ...(options.peersChanged ? { peersChanged: options.peersChanged } : {}),
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
  })
  const bridges: TcpBridge[] = []
  const add = service.active.add.bind(service.active)
  service.active.add = (bridge) => {
    bridges.push(bridge)
    return add(bridge)
  }
  cleanups.push(() => service.close())
  return { pair, service, events, bridges }
}

async function connect(served: Served, port = 80): Promise<TCPSocketOpenInfo> {
  return served.pair.client.connect({ host: SERVER_ADDRESS, port }).opened
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  const reader = readable.getReader()
  for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value)
  return Buffer.concat(chunks)
}

function echoServer(): Server {
  return createServer({ allowHalfOpen: true }, (socket) => {
    socket.pipe(socket)
    socket.on('error', () => {})
  })
}

describe('TcpBridge', () => {
  it('carries 5 MB both ways byte-exact through a real echo server', async () => {
    const served = await serve(await listenReal(echoServer()))
    const info = await connect(served)
    const payload = patternBytes(5 << 20, 11)
    const writer = info.writable.getWriter()
    const writing = (async () => {
      for (let o = 0; o < payload.length; o += 100_000) await writer.write(payload.subarray(o, o + 100_000))
      await writer.close()
    })()
    const echoed = await readAll(info.readable)
    await writing
    expect(echoed.length).toBe(payload.length)
    expect(Buffer.compare(echoed, payload)).toBe(0)
    const ended = await waitForEnded(served)
    expect(ended).toMatchObject({ end: 'closed', bytesToService: payload.length, bytesToOverlay: payload.length, peer: 'client' })
  })

  it('downloads 5 MB byte-exact from a real HTTP server', async () => {
    const body = patternBytes(5 << 20, 12)
    const http = createHttpServer((request, response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length })
      response.end(body)
    })
    const served = await serve(await listenReal(http))
    const info = await connect(served)
    const writer = info.writable.getWriter()
    await writer.write(new TextEncoder().encode(`GET /blob HTTP/1.1\r\nHost: service\r\nConnection: close\r\n\r\n`))
    const raw = await readAll(info.readable)
    const split = raw.indexOf('\r\n\r\n')
    const head = raw.subarray(0, split).toString()
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(head).toContain(`content-length: ${body.length}`)
    expect(Buffer.compare(raw.subarray(split + 4), body)).toBe(0)
  })

  it('carries an overlay FIN to the service and keeps the reply direction open', async () => {
    // The service answers only after the request ends (like `wc -c`), so the FIN must cross.
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      let count = 0
      socket.on('data', (chunk: Buffer) => (count += chunk.length))
      socket.on('end', () => socket.end(`received ${count}\n`))
    })
    const served = await serve(await listenReal(server))
    const info = await connect(served)
    const writer = info.writable.getWriter()
    await writer.write(patternBytes(300_000))
    await writer.close()
    expect(Buffer.from(await readAll(info.readable)).toString()).toBe('received 300000\n')
    expect(await waitForEnded(served)).toMatchObject({ end: 'closed' })
  })

  it('carries a service FIN to the overlay while the overlay keeps sending', async () => {
    let serviceReceived = 0
    const serviceDone = signal<void>()
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.end('bye\n') // FIN first, then keep reading
      socket.on('data', (chunk: Buffer) => (serviceReceived += chunk.length))
      socket.on('end', () => serviceDone.resolve())
    })
    const served = await serve(await listenReal(server))
    const info = await connect(served)
    const reply = await readAll(info.readable) // ends at the service's FIN
    expect(Buffer.from(reply).toString()).toBe('bye\n')
    const writer = info.writable.getWriter()
    await writer.write(patternBytes(200_000))
    await writer.close()
    await serviceDone.promise
    expect(serviceReceived).toBe(200_000)
    expect(await waitForEnded(served)).toMatchObject({ end: 'closed', bytesToService: 200_000, bytesToOverlay: 4 })
  })

  it('leaves the real socket paused with bounded buffering while the overlay reader stalls', async () => {
    const total = 32 << 20
    const body = patternBytes(total, 13)
    let written = 0
    let finished = false
    let serviceSocket: Socket | undefined
    const server = createServer((socket) => {
      serviceSocket = socket
      socket.on('error', () => {})
      const pump = (): void => {
        while (written < total) {
          const chunk = body.subarray(written, written + 65536)
          written += chunk.length
          if (!socket.write(chunk)) {
            socket.once('drain', pump)
            return
          }
        }
        finished = true
        socket.end()
      }
      pump()
    })
    const served = await serve(await listenReal(server))
    const info = await connect(served)
    await waitFor('the bridge to start', () => served.bridges.length === 1)
    const bridge = served.bridges[0]!
    // Nobody reads the overlay. The bridge must stop reading the service, so the service ends up
    // blocked on a full kernel buffer instead of handing all 32 MB to the bridge.
    await waitFor('the service to block and the bridge to pause', () => (serviceSocket?.writableNeedDrain === true && bridge.servicePaused) || finished)
    const heldAtStall = bridge.bytesToOverlay
    expect(finished).toBe(false)
    // Overlay receive window (1 MiB) + overlay send buffer (1 MiB) + one chunk in the writer.
    expect(heldAtStall).toBeLessThanOrEqual((2 << 20) + 65536)
    expect(bridge.bufferedBytes).toBeLessThanOrEqual(256 * 1024)
    const received = await readAll(info.readable)
    expect(finished).toBe(true)
    expect(received.length).toBe(total)
    expect(Buffer.compare(received, body)).toBe(0)
  })

  it('stops reading the overlay while the service does not read, then delivers everything', async () => {
    const total = 32 << 20
    const upload = patternBytes(total, 14)
    let serviceSocket: Socket | undefined
    const received: Buffer[] = []
    const serviceDone = signal<void>()
    const server = createServer((socket) => {
      serviceSocket = socket
      socket.pause() // a service that is busy and reads nothing yet
      socket.on('data', (chunk: Buffer) => received.push(chunk))
      socket.on('end', () => serviceDone.resolve())
    })
    const served = await serve(await listenReal(server))
    const info = await connect(served)
    const writer = info.writable.getWriter()
    let accepted = 0
    const uploading = (async () => {
      for (let o = 0; o < total; o += 65536) {
        await writer.write(upload.subarray(o, o + 65536))
        accepted = o + 65536
      }
      await writer.close()
    })()
    await waitFor('the bridge to start', () => served.bridges.length === 1)
    const bridge = served.bridges[0]!
    // Until the whole path is full (nothing moves for 20 polls), watch the most Node ever held.
    let maxBuffered = 0
    let last = -1
    let still = 0
    await waitFor('the upload to stall behind the service', () => {
      maxBuffered = Math.max(maxBuffered, bridge.bufferedBytes)
      still = bridge.bytesToService === last ? still + 1 : 0
      last = bridge.bytesToService
      return (bridge.serviceWriteBlocked && still >= 20) || accepted >= total // the latter: unbounded buffering
    })
    // Node's socket buffer holds at most its high-water mark plus one overlay read (≤ 256 KiB).
    expect(maxBuffered).toBeLessThanOrEqual((64 << 10) + (256 << 10))
    expect(accepted).toBeLessThan(total)
    serviceSocket!.resume()
    await uploading
    await serviceDone.promise
    expect(Buffer.compare(Buffer.concat(received), upload)).toBe(0)
  })

  it('resets the overlay connection when the service refuses, and says so', async () => {
    const closedPort = await (async () => {
      const probe = createServer()
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
      const port = (probe.address() as AddressInfo).port
      await new Promise<void>((resolve) => probe.close(() => resolve()))
      return port
    })()
    const served = await serve(closedPort)
    const info = await connect(served)
    await expect(info.readable.getReader().read()).rejects.toThrow(`${SERVER_ADDRESS}:80: connection reset by peer`)
    expect(await waitForEnded(served)).toMatchObject({ end: 'service-unreachable', reason: `127.0.0.1:${closedPort}: connection refused` })
  })

  it('resets the overlay connection when the service dies mid-stream', async () => {
    // The service crashes (RST) after taking 1 MB of a 5 MB upload; the bridge's next write to
    // it fails, which must reach the uploader as a reset, not as a clean end.
    const server = createServer((socket) => {
      let taken = 0
      socket.on('error', () => {})
      socket.on('data', (chunk: Buffer) => {
        taken += chunk.length
        if (taken >= 1 << 20) socket.resetAndDestroy()
      })
    })
    const served = await serve(await listenReal(server))
    const info = await connect(served)
    const writer = info.writable.getWriter()
    const upload = patternBytes(5 << 20)
    const uploading = (async () => {
      for (let o = 0; o < upload.length; o += 65536) await writer.write(upload.subarray(o, o + 65536))
      await writer.close()
    })()
    await expect(uploading).rejects.toThrow(`${SERVER_ADDRESS}:80: connection reset by peer`)
    await expect(info.readable.getReader().read()).rejects.toThrow(`${SERVER_ADDRESS}:80: connection reset by peer`)
    const ended = await waitForEnded(served)
    expect(ended).toMatchObject({
      end: 'service-error',
      reason: expect.stringMatching(/^127\.0\.0\.1:\d+: (connection reset by service|service closed the connection while we were sending)$/),
    })
    expect(ended.bytesToService).toBeLessThan(upload.length)
  })

  it('resets the real connection when the overlay peer resets', async () => {
    const serviceError = signal<string>()
    const server = createServer((socket) => {
      socket.on('error', (error: NodeJS.ErrnoException) => serviceError.resolve(error.code ?? error.message))
      socket.on('end', () => serviceError.resolve('clean end'))
    })
    const served = await serve(await listenReal(server))
    const info = await connect(served)
    const writer = info.writable.getWriter()
    await writer.write(patternBytes(10_000))
    await waitFor('the service to receive the request', () => (served.bridges[0]?.bytesToService ?? 0) === 10_000)
    await writer.abort()
    expect(await serviceError.promise).toBe('ECONNRESET')
    expect(await waitForEnded(served)).toMatchObject({ end: 'overlay-error', reason: expect.stringMatching(/reset/) })
  })

  it('a connection from a peer whose name has not reached the peer map yet is allowed once the map lists it, not reset', async () => {
    let listed: PeerIdentity[] = []
    let announce: () => void = () => {}
    const served = await serve(await listenReal(echoServer()), {
      allow: ['client'],
      peers: () => listed,
      peersChanged: () => new Promise<void>((resolve) => (announce = resolve)),
    })
    const info = await connect(served)
    // The service has seen the connection and is waiting for the map, not refusing it.
    await waitFor('the service to wait for the peer map', () => announce.toString() !== '() => {}')
    expect(served.events).toEqual([])
    listed = [{ hostname: 'client', addresses: [CLIENT_ADDRESS] }]
    announce()
    const writer = info.writable.getWriter()
    await writer.write(new TextEncoder().encode('hello'))
    await writer.close()
    expect((await readAll(info.readable)).toString()).toBe('hello')
    expect(served.events[0]).toMatchObject({ type: 'accepted', peer: 'client', rule: 'client' })
  })

  it('denies a peer the policy does not list with a reset and an event', async () => {
    const served = await serve(await listenReal(echoServer()), { allow: ['100.64.9.0/24', 'laptop'] })
    const info = await connect(served)
    await expect(info.readable.getReader().read()).rejects.toThrow(/connection reset by peer/)
    await waitFor('the denial event', () => served.events.some((e) => e.type === 'denied'))
    expect(served.events).toEqual([
      {
        type: 'denied',
        port: 80,
        remote: expect.stringMatching(new RegExp(`^${CLIENT_ADDRESS.replaceAll('.', '\\.')}:\\d+$`)),
        peer: 'client',
        reason: `client (${CLIENT_ADDRESS}) matches no --allow entry (100.64.9.0/24, laptop)`,
      },
    ])
    expect(served.bridges).toHaveLength(0)
  })

  it('resets connections beyond maxConnections and keeps serving the open one', async () => {
    const served = await serve(await listenReal(echoServer()), { maxConnections: 1 })
    const first = await connect(served)
    await waitFor('the first bridge', () => served.bridges.length === 1)
    const second = await connect(served)
    await expect(second.readable.getReader().read()).rejects.toThrow(/connection reset by peer/)
    expect(served.events.find((e) => e.type === 'denied')).toMatchObject({ reason: '1 connections are already open on port 80' })
    const writer = first.writable.getWriter()
    await writer.write(new TextEncoder().encode('still here'))
    await writer.close()
    expect((await readAll(first.readable)).toString()).toBe('still here')
  })

  it('reports a taken overlay port through ready', async () => {
    const pair = overlayPair()
    const first = pair.server.listen({ port: 80 })
    cleanups.push(() => first.close())
    const service = new TcpService(pair.server.listen({ port: 80 }), {
      port: 80,
      target: { host: '127.0.0.1', port: 1 },
      policy: new AllowPolicy(),
      peers: () => [],
    })
    await expect(service.ready).rejects.toThrow('TCP port 80 is already listening')
    await service.close()
  })

  it('admits a peer by hostname and closes active bridges on shutdown', async () => {
    const served = await serve(await listenReal(echoServer()), { allow: ['CLIENT'] })
    const info = await connect(served)
    const writer = info.writable.getWriter()
    await writer.write(new TextEncoder().encode('ping'))
    const reader = info.readable.getReader()
    expect(Buffer.from((await reader.read()).value!).toString()).toBe('ping')
    expect(served.events[0]).toMatchObject({ type: 'accepted', peer: 'client', rule: 'client' })
    await served.service.close()
    expect(await reader.read()).toEqual({ done: true, value: undefined })
    expect(await waitForEnded(served)).toMatchObject({ end: 'shutdown' })
  })
})

function signal<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

async function waitForEnded(served: Served): Promise<ServiceEvent & { type: 'ended' }> {
  await waitFor('the bridge to end', () => served.events.some((e) => e.type === 'ended'))
  return served.events.find((e): e is ServiceEvent & { type: 'ended' } => e.type === 'ended')!
}
