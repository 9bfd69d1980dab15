// The thin driver: WebSocket upgrades on /control feed the sans-IO service, its outputs go to
// the sockets, and one timer (a DeadlineTimer) runs `poll` at the service's next deadline. Everything else on the
// HTTP server (the DERP relay on /derp, static files) is left alone.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { DeadlineTimer, timerClock, type DriverClock } from '../../clock/clock.ts'
import { CONTROL_PATH, MAX_CLIENT_MESSAGE_BYTES, type HomeRelay, type IceServer, type PeerEntry, type ServerMessage } from '../../control/protocol.ts'
import { CoordinationService, type ConnectionId, type Output } from './service.ts'
import { openCoordinationStore } from './open-store.ts'
import type { CoordinationStore, StoreChange } from './store.ts'

export type CoordinationLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void

export interface CoordinationOptions {
  dataDir: string
  /** A postgres:// URL: keep the state in PostgreSQL, shared with every relay using it (default: SQLite in dataDir). */
  database?: string | undefined
  /** A store opened by the caller (tests); closed by `close()` like one opened here. */
  store?: CoordinationStore
  log?: CoordinationLog
  /** Epoch ms and timers; tests may pass their own (a ManualClock). */
  clock?: DriverClock
  /** The relays nodes may name as home relay (see CoordinationServiceOptions.relayMap); also settable later with `service.setRelayMap`. */
  relayMap?: readonly HomeRelay[]
  /** Remove nodes offline for this long (default: never). */
  nodeExpiryMs?: number
  /** ICE servers for a node's welcome; `host` is the Host header of its /control request. */
  iceServers?: (node: PeerEntry, host: string | undefined, now: number) => IceServer[]
}

export interface AttachedCoordination {
  service: CoordinationService
  /** Closes every control connection (recording last-seen), detaches from the server and closes the database. */
  close(): Promise<void>
}

/** A client that lets this much unsent data pile up is too slow to keep up with the peer map. */
const MAX_BUFFERED_BYTES = 8 << 20
/** The service keeps epoch times (last seen); its timers must not keep the process alive. */
const serverClock = timerClock(() => Date.now(), { unref: true })

/** How long a closing handshake may take before the socket is cut. */
const CLOSE_GRACE_MS = 5_000

/** True for the paths this module answers, so other handlers on the same server can skip them. */
export function isCoordinationPath(url: string | undefined): boolean {
  if (url === undefined) return false
  const path = url.split('?', 1)[0]!
  return path === CONTROL_PATH || path === `${CONTROL_PATH}/`
}

function jsonError(res: ServerResponse, status: number, error: string): void {
  const body = JSON.stringify({ error })
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

export interface CoordinationHandler {
  service: CoordinationService
  /** Answers plain HTTP on /control (426: it is WebSocket only); false for every other path. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean
  /** Takes WebSocket upgrades on /control; false for every other path (e.g. /derp). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean
  /** Closes every control connection (recording last-seen) and the database. */
  close(): Promise<void>
}

/**
 * The coordination service as a pair of handlers, the same shape as the relay's
 * `createRelayHandler`, for a server that dispatches requests and upgrades itself.
 */
export async function createCoordinationHandler(options: CoordinationOptions): Promise<CoordinationHandler> {
  const log: CoordinationLog = options.log ?? (() => {})
  const clock = options.clock ?? serverClock
  const now = (): number => clock.now()
  const store = options.store ?? (await openCoordinationStore(options, { clock, log: (level, msg) => log(level, msg) }))
  let service: CoordinationService
  try {
    service = await CoordinationService.create({
      store,
      log: (level, msg) => log(level, msg),
      ...(options.relayMap !== undefined ? { relayMap: options.relayMap } : {}),
      ...(options.nodeExpiryMs !== undefined ? { nodeExpiryMs: options.nodeExpiryMs } : {}),
    })
  } catch (error) {
    await store.close()
    throw error
  }
  // Client messages are small; a bigger frame is refused (1009) by ws before it is buffered whole.
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_MESSAGE_BYTES, perMessageDeflate: false })
  const sockets = new Map<ConnectionId, WebSocket>()
  /** The Host header each connection arrived with, for the welcome's iceServers. */
  const hosts = new Map<ConnectionId, string | undefined>()
  let nextConnection = 1
  let closed = false
  const timer = new DeadlineTimer(clock, () => void step(undefined, () => service.poll(now())))

  const apply = (outputs: Output[]): void => {
    // A change goes to every online node as one shared message object: serialise it once.
    const texts = new Map<ServerMessage, string>()
    for (const output of outputs) {
      const socket = sockets.get(output.connection)
      if (socket === undefined || socket.readyState !== socket.OPEN) continue
      if (output.kind === 'send') {
        if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
          log('warn', 'coordination: dropping a client that does not read its peer map', { connection: output.connection })
          socket.terminate()
          continue
        }
        let message = output.message
        if (message.type === 'welcome' && options.iceServers) {
          const iceServers = options.iceServers(message.self, hosts.get(output.connection), now())
          if (iceServers.length > 0) message = { ...message, iceServers }
        }
        // A broadcast is serialised once for every session it goes to; a welcome is per node.
        let text = message === output.message ? texts.get(message) : undefined
        if (text === undefined) {
          text = JSON.stringify(message)
          if (message === output.message) texts.set(message, text)
        }
        socket.send(text)
      } else {
        socket.close(output.code, output.reason)
        setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref()
      }
    }
    schedule()
  }

  const schedule = (): void => {
    timer.arm(closed ? undefined : service.nextEvent())
  }

  /**
   * Runs one service step after the previous one finished (steps await the store, and the
   * service's state must not change in between); a bug there costs this one connection, never
   * the process.
   */
  let chain: Promise<void> = Promise.resolve()
  const step = (connection: ConnectionId | undefined, fn: () => Output[] | Promise<Output[]>): Promise<void> => {
    chain = chain.then(async () => {
      let outputs: Output[]
      try {
        outputs = await fn()
      } catch (error) {
        log('error', 'coordination: service failed', { connection, error: error instanceof Error ? (error.stack ?? error.message) : String(error) })
        const socket = connection === undefined ? undefined : sockets.get(connection)
        if (socket !== undefined && socket.readyState === socket.OPEN) socket.close(4500, 'internal error')
        schedule()
        return
      }
      apply(outputs)
    })
    return chain
  }

  // Changes other relays commit (PostgreSQL NOTIFY) go to the service in one step per burst.
  const changedIds = new Set<number>()
  let resyncPending = false
  let changeQueued = false
  const unsubscribe = store.onChange((change: StoreChange) => {
    if (change.kind === 'resync') resyncPending = true
    else for (const id of change.ids) changedIds.add(id)
    if (changeQueued || closed) return
    changeQueued = true
    void step(undefined, () => {
      changeQueued = false
      const batch: StoreChange = resyncPending ? { kind: 'resync' } : { kind: 'nodes', ids: [...changedIds] }
      resyncPending = false
      changedIds.clear()
      return service.storeChanged(batch, now())
    })
  })

  const onConnection = (socket: WebSocket, req: IncomingMessage): void => {
    const connection = nextConnection++
    sockets.set(connection, socket)
    hosts.set(connection, req.headers.host)
    log('info', 'coordination: connection', { connection, remote: req.socket.remoteAddress })
    socket.on('message', (data: RawData, isBinary: boolean) => {
      // Binary frames are passed on only so the service can refuse them by name.
      const payload = isBinary ? new Uint8Array(0) : data.toString()
      void step(connection, () => service.receive(connection, payload, now()))
    })
    socket.on('close', () => {
      sockets.delete(connection)
      hosts.delete(connection)
      if (!closed) void step(connection, () => service.closed(connection, now()))
    })
    socket.on('error', (error) => log('warn', 'coordination: socket error', { connection, error: error.message }))
    void step(connection, () => service.open(connection, now(), req.socket.remoteAddress))
  }

  log('info', 'coordination: ready', { path: CONTROL_PATH, database: store.location, shared: store.shared, ipv6Prefix: service.network.ipv6Prefix })
  // The service may have work before any connection (the node expiry).
  schedule()

  return {
    service,
    handleRequest(req, res) {
      if (!isCoordinationPath(req.url)) return false
      res.setHeader('upgrade', 'websocket')
      jsonError(res, 426, `${req.method} ${CONTROL_PATH} must be a WebSocket upgrade (see PROTOCOL.md)`)
      return true
    },
    handleUpgrade(req, socket, head) {
      if (!isCoordinationPath(req.url)) return false
      if (closed) {
        socket.destroy()
        return true
      }
      wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req))
      return true
    },
    async close() {
      if (closed) return
      closed = true
      timer.clear()
      unsubscribe()
      await chain
      const closing: Promise<void>[] = []
      for (const [connection, socket] of sockets) {
        // Record last-seen for every node; the pushes are moot because every socket is closing.
        try {
          await service.closed(connection, now())
        } catch (error) {
          log('warn', 'coordination: could not record last-seen at shutdown', { connection, error: (error as Error).message })
        }
        closing.push(new Promise((resolve) => socket.once('close', () => resolve())))
        socket.close(1001, 'coordination server is shutting down')
        setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref()
      }
      await Promise.all(closing)
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await store.close()
    },
  }
}

/**
 * Adds the coordination service to `server` as its own `request` and `upgrade` listeners that
 * act only on /control. Other listeners on the same server must leave /control alone
 * (`isCoordinationPath`); a server that dispatches itself should use createCoordinationHandler.
 */
export async function attachCoordination(server: Server, options: CoordinationOptions): Promise<AttachedCoordination> {
  const handler = await createCoordinationHandler(options)
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    handler.handleUpgrade(req, socket, head)
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handler.handleRequest(req, res)
  }
  server.on('upgrade', onUpgrade)
  server.on('request', onRequest)
  return {
    service: handler.service,
    async close() {
      server.off('upgrade', onUpgrade)
      server.off('request', onRequest)
      await handler.close()
    },
  }
}
