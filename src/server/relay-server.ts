// The Node shell around the relay core: HTTP endpoints, DERP over WebSocket (`/derp`, subprotocol
// `derp`) and over a plain `Upgrade: DERP`, write timeouts, timers and graceful shutdown.
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { formatNodeKey, toHex } from '../crypto/index.ts'
import { FRAME_HEADER_LENGTH, KEY_LENGTH, MAX_PACKET_SIZE, PROTOCOL_VERSION } from '../underlay/derp/frames.ts'
import { type DriverClock, type Timer, timerClock } from '../clock/clock.ts'
import { type Logger, silentLogger } from './log.ts'
import { RelayMetrics } from './metrics.ts'
import { Relay, type RelayClient, type RelayOptions } from './relay.ts'
import { loadTlsFiles, TlsConfigError, type TlsFiles } from './tls.ts'

export interface RelayHandlerOptions extends Omit<RelayOptions, 'log' | 'metrics' | 'verifyClients'> {
  /** When given, each client's node key must be admitted before it may send or receive. */
  admit?: (nodeKey: Uint8Array) => boolean | Promise<boolean>
  /** A client whose socket accepts no bytes for this long is disconnected (default 10 s). */
  writeTimeoutMs?: number
  /** With `admit`: how often every logged-in client is checked again, so a removed node stops relaying (default 10 s). */
  reverifyMs?: number
  log?: Logger
}

export interface RelayServerLimits {
  /** Open TCP connections (HTTP and DERP) before new ones get a 503 (default 10 000). */
  maxConnections?: number
  /** Open TCP connections from one IP address before new ones from it get a 503 (default 2 000). */
  maxConnectionsPerIp?: number
  /** A connection must finish its request headers within this long (default 10 s); slowloris senders are cut off. */
  headerTimeoutMs?: number
}

/** Bytes handed to a socket but not yet accepted by it before we stop taking from the queue. */
const MAX_IN_FLIGHT_BYTES = 1 << 20
const MESSAGE_BYTES = 64 * 1024
/**
 * The longest WebSocket message accepted: two packet frames. ws buffers a message whole before
 * handing it over, so a client sending half of a huge message would otherwise pin that much.
 */
const MAX_MESSAGE_BYTES = 2 * (FRAME_HEADER_LENGTH + KEY_LENGTH + MAX_PACKET_SIZE)

interface Sink {
  write(bytes: Uint8Array, done: (error?: Error | null) => void): void
  close(code: number, reason: string): void
  /** Stops (true) or restarts (false) reading from the socket. */
  pauseReading(paused: boolean): void
}

class ConnectionDriver {
  inFlightBytes = 0
  /** When the oldest unfinished write began, or undefined when none is pending. */
  stalledSince: number | undefined
  private flushQueued = false

  private resumeTimer: Timer | undefined

  constructor(
    readonly client: RelayClient,
    private readonly sink: Sink,
    private readonly clock: () => number,
    relay: Relay,
    timers: DriverClock,
  ) {
    client.onOutput = () => this.scheduleFlush()
    client.onPause = (until) => {
      this.sink.pauseReading(true)
      this.resumeTimer?.clear()
      this.resumeTimer = timers.setTimer(until, () => {
        this.resumeTimer = undefined
        relay.resume(client, this.clock())
        if (client.pausedUntil === undefined && client.state !== 'closed') this.sink.pauseReading(false)
      })
    }
  }

  scheduleFlush(): void {
    if (this.flushQueued) return
    this.flushQueued = true
    queueMicrotask(() => {
      this.flushQueued = false
      this.flush()
    })
  }

  flush(): void {
    while (this.inFlightBytes < MAX_IN_FLIGHT_BYTES) {
      const out = this.client.takeOutput(MESSAGE_BYTES)
      if (!out) return
      const length = out.length
      if (this.stalledSince === undefined) this.stalledSince = this.clock()
      this.inFlightBytes += length
      this.sink.write(out, (error) => {
        this.inFlightBytes -= length
        this.stalledSince = this.inFlightBytes > 0 ? this.clock() : undefined
        if (!error && this.client.state !== 'closed') this.flush()
      })
    }
  }

  close(code: number, reason: string): void {
    this.resumeTimer?.clear()
    this.sink.close(code, reason)
  }
}

export interface RelayHandler {
  readonly relay: Relay
  readonly metrics: RelayMetrics
  /** Serves `/derp/probe`, `/derp/latency-check`, `/derp` (426 without an upgrade), `/healthz`, `/metrics`; false for other paths. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean
  /** Takes over DERP upgrades on `/derp`; false for other upgrades. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean
  /** Sends Restarting to everyone, gives their queues a moment to drain, then closes every connection. */
  shutdown(reconnectInMs?: number, tryForMs?: number, drainMs?: number): Promise<void>
}

export function createRelayHandler(options: RelayHandlerOptions): RelayHandler {
  const log = options.log ?? silentLogger
  const metrics = new RelayMetrics()
  const relay = new Relay({ ...options, log, metrics, verifyClients: options.admit !== undefined })
  // Pause/resume and re-admission timers; their deadlines are on performance.now(), like `clock`.
  const timers = timerClock(() => performance.now(), { unref: true })
  const clock = () => timers.now()
  const writeTimeoutMs = options.writeTimeoutMs ?? 10_000
  const drivers = new Set<ConnectionDriver>()
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE_BYTES,
    handleProtocols: (protocols) => (protocols.has('derp') ? 'derp' : false),
  })

  const timer = setInterval(() => {
    const now = clock()
    relay.poll(now)
    for (const driver of drivers) {
      if (driver.stalledSince !== undefined && now - driver.stalledSince >= writeTimeoutMs) {
        relay.close(driver.client, `write timed out: the client read nothing for ${writeTimeoutMs} ms`, now, 'write_timeout')
      }
    }
  }, 1000)
  timer.unref()

  // The admission decision holds for the life of a connection: ask again now and then, so a node
  // removed from the coordination store (or the allow-list) stops relaying.
  const reverifyMs = options.reverifyMs ?? 10_000
  let reverifyTimer: Timer | undefined
  const reverify = (): void => {
    for (const client of relay.admittedClients()) {
      const key = client.key!
      Promise.resolve()
        .then(() => options.admit!(key))
        .then(
          (ok) => {
            if (ok !== true) relay.close(client, 'client no longer admitted', clock(), 'not_admitted')
          },
          (error: unknown) => log('error', 'admission hook failed', { client: formatNodeKey(key), error: String(error) }),
        )
    }
    reverifyTimer = timers.setTimer(clock() + reverifyMs, reverify)
  }
  if (options.admit) reverifyTimer = timers.setTimer(clock() + reverifyMs, reverify)

  function attach(remote: string, makeSink: (client: RelayClient) => Sink): ConnectionDriver {
    const client = relay.accept(clock(), remote)
    const driver = new ConnectionDriver(client, makeSink(client), clock, relay, timers)
    drivers.add(driver)
    client.onClose = (reason, kind) => {
      drivers.delete(driver)
      // 1001 "going away" for an orderly close (shutdown, peer left), 1008 "policy violation" otherwise.
      driver.close(kind === 'normal' ? 1001 : 1008, reason)
    }
    if (options.admit) {
      const admit = options.admit
      client.onAdmission = (key) => {
        Promise.resolve()
          .then(() => admit(key))
          .then(
            (ok) => relay.completeAdmission(client, ok === true, clock()),
            (error: unknown) => {
              log('error', 'admission hook failed', { client: formatNodeKey(key), error: String(error) })
              relay.completeAdmission(client, false, clock())
            },
          )
      }
    }
    driver.flush()
    return driver
  }

  function onWebSocket(ws: WebSocket, remote: string): void {
    ws.binaryType = 'nodebuffer'
    if (ws.protocol !== 'derp') {
      log('warn', 'websocket without the derp subprotocol refused', { remote })
      ws.close(1008, 'client must speak the derp subprotocol')
      return
    }
    const driver = attach(remote, () => ({
      write: (bytes, done) => ws.send(bytes, { binary: true }, done),
      close: (code, reason) => {
        ws.close(code, truncateReason(reason))
        setTimeout(() => ws.terminate(), 2000).unref()
      },
      pauseReading: (paused) => (paused ? ws.pause() : ws.resume()),
    }))
    const client = driver.client
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        relay.close(client, 'text WebSocket message (DERP is binary only)', clock())
        return
      }
      // A plain view: the frame reader's many subarrays of it are cheaper than Buffer slices.
      relay.receive(client, new Uint8Array(data.buffer, data.byteOffset, data.length), clock())
    })
    ws.on('close', () => relay.close(client, 'websocket closed', clock(), 'normal'))
    ws.on('error', (error) => relay.close(client, `websocket error: ${error.message}`, clock(), 'socket_error'))
  }

  function onDerpUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.setNoDelay(true)
    if (req.headers['derp-fast-start'] !== '1') {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n' + `Derp-Version: ${PROTOCOL_VERSION}\r\nDerp-Public-Key: ${toHex(relay.publicKey)}\r\n\r\n`,
      )
    }
    const driver = attach(remoteOf(req), () => ({
      write: (bytes, done) => {
        if (socket.destroyed) return done(new Error('socket destroyed'))
        socket.write(bytes, done)
      },
      close: () => socket.destroy(),
      pauseReading: (paused) => (paused ? socket.pause() : socket.resume()),
    }))
    const client = driver.client
    socket.on('data', (data: Buffer) => relay.receive(client, new Uint8Array(data.buffer, data.byteOffset, data.length), clock()))
    // The HTTP server's sockets allow half-open connections: a client's FIN only ends its side, and
    // without this the slot lingers until a later write fails. A DERP client that closed is gone.
    socket.on('end', () => relay.close(client, 'connection closed by the client', clock(), 'normal'))
    socket.on('close', () => relay.close(client, 'connection closed', clock(), 'normal'))
    socket.on('error', (error) => relay.close(client, `socket error: ${error.message}`, clock(), 'socket_error'))
    if (head.length > 0) relay.receive(client, head, clock())
  }

  return {
    relay,
    metrics,
    handleRequest(req, res) {
      const path = (req.url ?? '/').split('?')[0]
      switch (path) {
        case '/derp/probe':
        case '/derp/latency-check':
          if (req.method !== 'GET' && req.method !== 'HEAD') {
            res.writeHead(405, { 'content-type': 'text/plain' }).end('bogus probe method\n')
          } else {
            res.writeHead(200, { 'access-control-allow-origin': '*' }).end()
          }
          return true
        case '/derp':
          res.writeHead(426, { 'content-type': 'text/plain' }).end('DERP requires connection upgrade\n')
          return true
        case '/healthz':
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
          return true
        case '/metrics':
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics.render())
          return true
        default:
          return false
      }
    },
    handleUpgrade(req, socket, head) {
      if ((req.url ?? '').split('?')[0] !== '/derp') return false
      const upgrade = (req.headers.upgrade ?? '').toLowerCase()
      // A client that vanishes without a FIN would otherwise hold its slot until a write times out.
      if (upgrade === 'websocket' || upgrade === 'derp') (socket as Socket).setKeepAlive?.(true, 60_000)
      if (upgrade === 'websocket') {
        wss.handleUpgrade(req, socket, head, (ws) => onWebSocket(ws, remoteOf(req)))
        return true
      }
      if (upgrade === 'derp') {
        onDerpUpgrade(req, socket as Socket, head)
        return true
      }
      return false
    },
    async shutdown(reconnectInMs = 500, tryForMs = 30_000, drainMs = 1000) {
      relay.announceRestart(reconnectInMs, tryForMs)
      for (const driver of drivers) driver.flush()
      const deadline = clock() + drainMs
      while (clock() < deadline && [...drivers].some((d) => d.inFlightBytes > 0 || !d.client.queue.isEmpty)) {
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      clearInterval(timer)
      reverifyTimer?.clear()
      for (const driver of [...drivers]) relay.close(driver.client, 'relay shutting down', clock(), 'normal')
      wss.close()
    },
  }
}

export interface RelayServer {
  readonly handler: RelayHandler
  readonly server: Server
  readonly host: string
  readonly port: number
  /** `http://host:port/derp`, or `https://…` with TLS */
  readonly url: string
  /** Re-reads the TLS certificate and key (SIGHUP); new connections use them, open ones keep theirs. Throws TlsConfigError and keeps the old ones when the files are bad. */
  reloadTls(): void
  close(): Promise<void>
}

/** Another service sharing the relay's port (the coordination service on /control). */
export interface MountedHandler {
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean
  close(): Promise<void>
}

export async function startRelayServer(
  options: RelayHandlerOptions & RelayServerLimits & { host: string; port: number; mounts?: MountedHandler[]; tls?: TlsFiles },
): Promise<RelayServer> {
  const tlsFiles = options.tls
  // Read the files before anything listens, so a bad path is an error at start, not a broken port.
  const initialTls = tlsFiles ? loadTlsFiles(tlsFiles) : undefined
  const handler = createRelayHandler(options)
  const log = options.log ?? silentLogger
  const mounts = options.mounts ?? []
  const maxConnections = options.maxConnections ?? 10_000
  const maxPerIp = options.maxConnectionsPerIp ?? 2_000
  const headerTimeoutMs = options.headerTimeoutMs ?? 10_000
  const timeouts = {
    // Node checks these deadlines only every connectionsCheckingInterval (30 s by default), which
    // is how slowloris headers used to survive for over a minute.
    headersTimeout: headerTimeoutMs,
    requestTimeout: Math.max(headerTimeoutMs, 30_000),
    connectionsCheckingInterval: Math.min(1000, headerTimeoutMs),
  }
  const onRequest: RequestListener = (req, res) => {
    if (handler.handleRequest(req, res)) return
    if (mounts.some((mount) => mount.handleRequest(req, res))) return
    if ((req.url ?? '/') === '/') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`Burrow relay (DERP v${PROTOCOL_VERSION}) ${formatNodeKey(handler.relay.publicKey)}\n`)
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
  }
  const secureServer = initialTls ? createHttpsServer({ ...initialTls, ...timeouts }, onRequest) : undefined
  const server: Server = secureServer ?? createServer(timeouts, onRequest)
  let open = 0
  const perIp = new Map<string, number>()
  // With TLS the limit applies once the handshake is done, so the 503 can be read by the client.
  server.on(secureServer ? 'secureConnection' : 'connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? '?'
    const fromIp = perIp.get(ip) ?? 0
    if (open >= maxConnections || fromIp >= maxPerIp) {
      handler.metrics.connectionsRefused++
      const which = open >= maxConnections ? `the relay's limit of ${maxConnections} connections` : `the limit of ${maxPerIp} connections per address`
      log('warn', 'connection refused: limit reached', { remote: `${ip}:${socket.remotePort ?? '?'}`, limit: which })
      socket.pause() // parse nothing from it: the answer is already decided
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\nConnection: close\r\n\r\nrelay busy: ${which} is reached\n`)
      setTimeout(() => socket.destroy(), 1000).unref()
      return
    }
    open++
    perIp.set(ip, fromIp + 1)
    socket.once('close', () => {
      open--
      const left = perIp.get(ip)! - 1
      if (left === 0) perIp.delete(ip)
      else perIp.set(ip, left)
    })
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!handler.handleUpgrade(req, socket, head) && !mounts.some((mount) => mount.handleUpgrade(req, socket, head))) {
      log('warn', 'unsupported upgrade refused', { remote: remoteOf(req), upgrade: req.headers.upgrade, path: req.url })
      socket.end('HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nDERP requires an upgrade on /derp\n')
    }
  })
  server.on('clientError', (_error, socket) => socket.destroy())
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    handler,
    server,
    host: address.address,
    port: address.port,
    url: `${initialTls ? 'https' : 'http'}://${host}:${address.port}/derp`,
    reloadTls() {
      if (!tlsFiles || !secureServer) throw new TlsConfigError('this relay was started without --tls-cert/--tls-key')
      secureServer.setSecureContext(loadTlsFiles(tlsFiles))
    },
    async close() {
      await handler.shutdown()
      for (const mount of mounts) await mount.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function remoteOf(req: IncomingMessage): string {
  return `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`
}

function truncateReason(reason: string): string {
  // A WebSocket close reason is at most 123 bytes of UTF-8.
  let out = reason
  while (new TextEncoder().encode(out).length > 123) out = out.slice(0, -1)
  return out
}
