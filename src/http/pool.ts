import { HttpConnection, type ByteStreamSocket } from './connection.ts'
import { HttpConnectionError } from './errors.ts'
import { HttpParser, type HttpParserLimits } from './parser.ts'

/** A freshly opened connection to `host:port`; `close()` releases it. */
export interface ClientSocket extends ByteStreamSocket {
  close(): void | Promise<void>
}

export type OpenConnection = (host: string, port: number) => Promise<ClientSocket>

/** A connection lent to one exchange. */
export interface Lease {
  connection: HttpConnection
  parser: HttpParser
  /** It carried an earlier exchange, so the peer may have closed it meanwhile. */
  reused: boolean
  /** Whether requests on it ask the server to keep it open. */
  keepAlive: boolean
  /** The host:port it is connected to. */
  key: string
}

/** Where exchanges get connections and return them. */
export interface ConnectionSource {
  /** `fresh` forces a new connection (for a retry, or a body that could not be sent twice). */
  acquire(url: URL, signal: AbortSignal, fresh: boolean): Promise<Lease>
  /** `reusable`: the exchange ended cleanly and both sides agreed to keep the connection. */
  release(lease: Lease, reusable: boolean): void
}

function endpoint(url: URL): { host: string; port: number } {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  return { host, port: url.port === '' ? 80 : Number(url.port) }
}

async function openLease(open: OpenConnection, url: URL, signal: AbortSignal, limits: Partial<HttpParserLimits> | undefined, keepAlive: boolean): Promise<Lease> {
  const { host, port } = endpoint(url)
  const opening = Promise.resolve()
    .then(() => open(host, port))
    .catch((error: unknown) => {
      throw new HttpConnectionError(`cannot connect to ${url.host}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    })
  const socket = await abortable(opening, signal, (late) => void Promise.resolve(late.close()).catch(() => {}))
  const parser = new HttpParser('response', limits)
  return { connection: new HttpConnection(socket, parser), parser, reused: false, keepAlive, key: url.host }
}

/** One new connection per exchange, closed after it (`Connection: close`). */
export function freshConnections(open: OpenConnection, limits?: Partial<HttpParserLimits>): ConnectionSource {
  return {
    acquire: (url, signal) => openLease(open, url, signal, limits, false),
    release: (lease) => void lease.connection.close(),
  }
}

export interface PoolOptions {
  limits?: Partial<HttpParserLimits>
  /** Idle connections kept per host:port. Default 6. */
  maxIdlePerHost?: number
  /** How long an idle connection is kept. Default 4 s (under common server keep-alive timeouts). */
  idleTimeoutMs?: number
}

interface IdleEntry {
  lease: Lease
  timer: ReturnType<typeof setTimeout>
}

/** Keeps connections open between exchanges and lends them out again, per host:port. */
export class ConnectionPool implements ConnectionSource {
  private readonly open: OpenConnection
  private readonly limits: Partial<HttpParserLimits> | undefined
  private readonly maxIdlePerHost: number
  private readonly idleTimeoutMs: number
  private readonly idle = new Map<string, IdleEntry[]>()
  private closed = false

  constructor(open: OpenConnection, options: PoolOptions = {}) {
    this.open = open
    this.limits = options.limits
    this.maxIdlePerHost = options.maxIdlePerHost ?? 6
    this.idleTimeoutMs = options.idleTimeoutMs ?? 4_000
  }

  /** Idle connections held right now, for all hosts. */
  get idleCount(): number {
    let count = 0
    for (const entries of this.idle.values()) count += entries.length
    return count
  }

  async acquire(url: URL, signal: AbortSignal, fresh: boolean): Promise<Lease> {
    if (this.closed) throw new HttpConnectionError('HTTP client is closed')
    const key = url.host
    const entries = this.idle.get(key)
    while (!fresh && entries !== undefined && entries.length > 0) {
      const entry = entries.pop()!
      if (entries.length === 0) this.idle.delete(key)
      clearTimeout(entry.timer)
      if (entry.lease.connection.isClosed) continue
      entry.lease.reused = true
      return entry.lease
    }
    return openLease(this.open, url, signal, this.limits, true)
  }

  release(lease: Lease, reusable: boolean): void {
    const key = lease.key
    const entries = this.idle.get(key) ?? []
    if (!reusable || this.closed || entries.length >= this.maxIdlePerHost || lease.connection.isClosed) {
      void lease.connection.close()
      return
    }
    const entry: IdleEntry = {
      lease,
      timer: setTimeout(() => this.evict(key, entry), this.idleTimeoutMs),
    }
    unrefTimer(entry.timer)
    entries.push(entry)
    this.idle.set(key, entries)
    // Any byte or end of stream while idle means the server closed or misspoke: drop the connection.
    lease.connection.fill().then(
      () => this.evict(key, entry),
      () => this.evict(key, entry),
    )
  }

  /** Closes every idle connection; connections in use close when their exchange ends. */
  close(): void {
    this.closed = true
    for (const [key, entries] of this.idle) {
      for (const entry of [...entries]) this.evict(key, entry)
    }
  }

  private evict(key: string, entry: IdleEntry): void {
    const entries = this.idle.get(key)
    const index = entries?.indexOf(entry) ?? -1
    if (entries === undefined || index < 0) return // already lent out again
    entries.splice(index, 1)
    if (entries.length === 0) this.idle.delete(key)
    clearTimeout(entry.timer)
    void entry.lease.connection.close()
  }
}

function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  // Node keeps the process alive for pending timers; an idle pool should not.
  const maybe = timer as unknown as { unref?: () => void }
  maybe.unref?.()
}

/** Races `promise` against `signal`; a value that arrives after the abort goes to `discard`. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal, discard: (late: T) => void): Promise<T> {
  if (signal.aborted) {
    promise.then(discard, () => {})
    return Promise.reject(signal.reason)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.then(discard, () => {})
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        if (signal.aborted) discard(value)
        else resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}
