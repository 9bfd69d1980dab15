import { HttpConnection, type ByteStreamSocket } from './connection.ts'
import { openedSocket, type DirectSocketLike } from './direct-socket.ts'
import { HttpConnectionError, HttpParseError } from './errors.ts'
import { IncomingBody } from './incoming-body.ts'
import { HttpParser, type HeaderList, type HttpParserLimits, type RequestHead } from './parser.ts'
import { BodySourceError, HOP_BY_HOP, arraySource, encodeHead, framingHeader, streamSource, writeBody, type ChunkSource, type OutgoingFraming } from './serialize.ts'
import { reasonPhrase } from './status-text.ts'

/** An accepted connection: opened streams plus the peer's address, as a Direct Sockets server yields. */
export interface AcceptedSocket extends ByteStreamSocket {
  remoteAddress?: string
  remotePort?: number
}

/** Either the socket itself or a Direct Sockets `TCPSocket` whose `opened` gives it. */
export type AcceptedConnection = AcceptedSocket | DirectSocketLike

export interface RemoteInfo {
  remoteAddress: string
  remotePort: number
  /**
   * The request's header lines exactly as received. In a browser, `Request` drops "forbidden"
   * names (Cookie, Host, Origin, …) from `request.headers`; these are the place to find them.
   */
  rawHeaders: HeaderList
}

export type HttpHandler = (request: Request, info: RemoteInfo) => Response | Promise<Response>

export interface ServeHttpOptions {
  limits?: Partial<HttpParserLimits>
  /** Where handler failures go (default: console.error). */
  onError?: (error: unknown) => void
  /** How long a connection may sit without a complete request head; 0 disables. Default 5 s. */
  idleTimeoutMs?: number
  /** Unread request body a keep-alive connection will discard before it closes instead. Default 1 MiB. */
  maxDiscardBytes?: number
}

export interface HttpServer {
  /** Settles when the accept stream has ended and every connection is finished. */
  readonly closed: Promise<void>
  /** Stops accepting, closes idle connections, lets requests in progress finish (then closes them). */
  close(): Promise<void>
}

const DEFAULT_IDLE_TIMEOUT_MS = 5_000
const DEFAULT_MAX_DISCARD_BYTES = 1024 * 1024
const NO_BODY_STATUSES = new Set([204, 304])
const CONTINUE = new TextEncoder().encode('HTTP/1.1 100 Continue\r\n\r\n')
// The WHATWG Request constructor refuses these methods outright.
const UNSUPPORTED_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK'])

/** Serves HTTP/1.1 with `handler` on every connection `accept` yields. */
export function serveHttp(accept: ReadableStream<AcceptedConnection>, handler: HttpHandler, options: ServeHttpOptions = {}): HttpServer {
  return new Server(accept, handler, options)
}

class Server implements HttpServer {
  readonly closed: Promise<void>
  stopping = false
  readonly handler: HttpHandler
  readonly onError: (error: unknown) => void
  readonly limits: Partial<HttpParserLimits>
  readonly idleTimeoutMs: number
  readonly maxDiscardBytes: number
  readonly connections = new Set<ServerConnection>()
  private readonly acceptReader: ReadableStreamDefaultReader<AcceptedConnection>

  constructor(accept: ReadableStream<AcceptedConnection>, handler: HttpHandler, options: ServeHttpOptions) {
    this.handler = handler
    this.onError = options.onError ?? ((error) => console.error('serveHttp: request handler failed:', error))
    this.limits = options.limits ?? {}
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
    this.maxDiscardBytes = options.maxDiscardBytes ?? DEFAULT_MAX_DISCARD_BYTES
    this.acceptReader = accept.getReader()
    this.closed = this.acceptLoop()
  }

  private async acceptLoop(): Promise<void> {
    const running = new Set<Promise<void>>()
    try {
      for (;;) {
        const { done, value } = await this.acceptReader.read()
        if (done) break
        const connection = new ServerConnection(this, value)
        this.connections.add(connection)
        const run = connection.run().finally(() => {
          this.connections.delete(connection)
          running.delete(run)
        })
        running.add(run)
      }
    } catch (error) {
      if (!this.stopping) this.onError(new HttpConnectionError('accept stream failed', { cause: error }))
    }
    await Promise.all(running)
  }

  async close(): Promise<void> {
    this.stopping = true
    await this.acceptReader.cancel().catch(() => {})
    for (const connection of this.connections) connection.closeIfIdle()
    await this.closed
  }
}

class ServerConnection {
  private readonly server: Server
  private readonly accepted: AcceptedConnection
  private connection: HttpConnection | undefined
  private idle = true

  constructor(server: Server, accepted: AcceptedConnection) {
    this.server = server
    this.accepted = accepted
  }

  closeIfIdle(): void {
    if (this.idle) this.connection?.destroy(new HttpConnectionError('server is closing'))
  }

  async run(): Promise<void> {
    let socket: AcceptedSocket
    try {
      socket = 'opened' in this.accepted ? await openedSocket(this.accepted) : this.accepted
    } catch {
      return // the peer went away before the connection opened
    }
    const connection = new HttpConnection(socket, new HttpParser('request', this.server.limits))
    this.connection = connection
    const peer = { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 }
    try {
      for (;;) {
        if (this.server.stopping) break
        this.idle = true
        const event = await this.withIdleTimeout(connection, connection.nextEvent())
        this.idle = false
        if (event.type === 'closed') break
        if (event.type !== 'head' || event.head.kind !== 'request') throw new HttpConnectionError(`unexpected ${event.type} between requests`)
        const keepAlive = await this.exchange(connection, event.head, { ...peer, rawHeaders: event.head.headers })
        if (!keepAlive) {
          // The client may still be sending (an unread body, pipelined requests): let it finish.
          await connection.lingerClose()
          return
        }
      }
      await connection.close()
    } catch (error) {
      if (error instanceof HttpParseError && !connection.isClosed) await this.rejectMalformed(connection, error)
      else connection.destroy(error)
    }
  }

  private async withIdleTimeout<T>(connection: HttpConnection, promise: Promise<T>): Promise<T> {
    const ms = this.server.idleTimeoutMs
    if (ms <= 0) return promise
    const timer = setTimeout(() => connection.destroy(new HttpConnectionError(`no request within ${ms} ms`)), ms)
    try {
      return await promise
    } finally {
      clearTimeout(timer)
    }
  }

  /** Serves one request; returns whether the connection may carry another. */
  private async exchange(connection: HttpConnection, head: RequestHead, info: RemoteInfo): Promise<boolean> {
    const expectation = expectHeader(head)
    // Aborts the handler's `request.signal` when the client is known to be gone.
    const aborter = new AbortController()
    const abort = (why: string, cause?: unknown): void => {
      if (!aborter.signal.aborted) aborter.abort(new HttpConnectionError(why, { cause }))
    }
    const body = new IncomingBody(connection, {
      continueBeforeReading: expectation === '100-continue' && head.minorVersion === 1 && head.body.kind !== 'none' ? () => connection.write(CONTINUE) : undefined,
      onFailure: (error) => abort('request body failed; the client is gone or sent garbage', error),
    })
    let keepAlive = head.keepAlive
    let response: Response
    const target = requestUrl(head)
    if (expectation !== undefined && expectation !== '100-continue') {
      response = plainResponse(417, `unsupported expectation ${JSON.stringify(expectation)}`)
      keepAlive = false
    } else if (typeof target === 'string') {
      response = plainResponse(400, target)
      keepAlive = false
    } else if (UNSUPPORTED_METHODS.has(head.method.toUpperCase())) {
      response = plainResponse(501, `method ${head.method} is not supported`)
    } else {
      if (head.body.kind === 'none') {
        // Nothing more is due from the client until the response, so an end of stream now means it
        // gave up (as node:http sees it too); one read at most, so pipelined bytes are not hoarded.
        // The request's end is taken first so that nothing later waits behind this read.
        await body.read()
        if (connection.bufferedInput === 0) {
          connection.fill().then(
            (ended) => ended && abort('client closed the connection before the response'),
            (error: unknown) => abort('connection failed before the response', error),
          )
        }
      }
      response = await this.callHandler(head, target, body, info, aborter.signal)
    }
    const broken = body.failure
    if (broken instanceof HttpParseError) {
      // The handler saw a malformed body; the client should hear why, and the stream is unusable.
      response = plainResponse(statusForParseError(broken), broken.message)
      keepAlive = false
    }
    if (body.forgoContinue()) keepAlive = false
    // Too much unread body to discard: say so now rather than drop a connection the client thinks is kept.
    if (!body.ended && head.body.kind === 'length' && head.body.length > this.server.maxDiscardBytes) keepAlive = false
    if (this.server.stopping || wantsClose(response.headers)) keepAlive = false
    const framing = await this.writeResponse(connection, head, response, keepAlive)
    if (framing === undefined) {
      abort('connection failed while the response was sent', connection.failure)
      return false
    }
    if (framing.kind === 'until-close') return false
    if (!keepAlive) return false
    return body.discardRest(this.server.maxDiscardBytes)
  }

  private async callHandler(head: RequestHead, url: URL, body: IncomingBody, info: RemoteInfo, signal: AbortSignal): Promise<Response> {
    const method = head.method
    const headers = new Headers()
    for (const [name, value] of head.headers) headers.append(name, value)
    const carriesBody = head.body.kind !== 'none' && !/^(GET|HEAD)$/i.test(method)
    try {
      const request = new Request(url, {
        method,
        headers,
        body: carriesBody ? body.stream() : null,
        duplex: 'half',
        signal,
      } as RequestInit)
      const response = await this.server.handler(request, info)
      if (!(response instanceof Response)) throw new TypeError(`handler returned ${describeValue(response)} instead of a Response`)
      if (response.bodyUsed || response.body?.locked === true) throw new TypeError('handler returned a Response whose body was already used')
      return response
    } catch (error) {
      if (body.failure instanceof HttpParseError) return plainResponse(400, body.failure.message)
      // A handler that failed because the client vanished mid-body is not a server bug worth logging.
      if (body.failure === undefined) this.server.onError(error)
      return plainResponse(500, 'Internal Server Error')
    }
  }

  /**
   * Writes `response`; returns the framing used, or undefined when the connection had to be torn down.
   * The body is sent with Content-Length when it is known (declared, empty, or available at once) and chunked otherwise.
   */
  private async writeResponse(connection: HttpConnection, head: RequestHead, response: Response, keepAlive: boolean): Promise<OutgoingFraming | undefined> {
    const status = response.status
    const isHead = head.method.toUpperCase() === 'HEAD'
    const fields: HeaderList = []
    for (const [name, value] of response.headers) {
      if (!HOP_BY_HOP.has(name)) fields.push([name, value])
    }
    if (!response.headers.has('date')) fields.push(['date', new Date().toUTCString()])
    const declared = declaredLength(response.headers)

    const noBody = isHead || NO_BODY_STATUSES.has(status) || status < 200
    if (noBody) {
      await response.body?.cancel().catch(() => {})
      // A HEAD answer states the length a GET would get, when the handler said it.
      if (declared !== undefined && status !== 204 && status >= 200) fields.push(['content-length', String(declared)])
    }
    const reader = noBody ? undefined : response.body?.getReader()
    const reason = response.statusText || reasonPhrase(status)
    try {
      const { framing, source, headFirst } = noBody
        ? { framing: { kind: 'length', length: 0 } as OutgoingFraming, source: arraySource([]), headFirst: false }
        : await chooseFraming(reader, declared, head.minorVersion)
      const framingField = noBody ? undefined : framingHeader(framing)
      if (framingField !== undefined) fields.push(framingField)
      const persist = keepAlive && framing.kind !== 'until-close'
      if (!persist) fields.push(['connection', 'close'])
      else if (head.minorVersion === 0) fields.push(['connection', 'keep-alive'])

      const encoded = encodeHead(`HTTP/1.1 ${status} ${reason}`, fields)
      // The head goes out first when the body's first chunk is not in hand yet; else they share a write.
      if (headFirst === true) {
        await connection.write(encoded)
        await writeBody(connection, source, framing)
      } else {
        await writeBody(connection, source, framing, encoded)
      }
      return framing
    } catch (error) {
      // The handler's body failing is a server bug worth logging, unless it failed only because it
      // was relaying this client's own request body and the client broke that.
      const relayedClientFailure = error instanceof BodySourceError && (error.cause instanceof HttpParseError || error.cause instanceof HttpConnectionError)
      if (error instanceof BodySourceError && !relayedClientFailure) this.server.onError(error)
      connection.destroy(error)
      // Lets the handler's stream stop producing (its cancel runs) now that nobody will read it.
      reader?.cancel(error).catch(() => {})
      return undefined
    }
  }

  private async rejectMalformed(connection: HttpConnection, error: HttpParseError): Promise<void> {
    const status = statusForParseError(error)
    const body = new TextEncoder().encode(`${status} ${reasonPhrase(status)}: ${error.message}\n`)
    const fields: HeaderList = [
      ['content-type', 'text/plain; charset=utf-8'],
      ['content-length', String(body.length)],
      ['connection', 'close'],
    ]
    try {
      await connection.writeAll([encodeHead(`HTTP/1.1 ${status} ${reasonPhrase(status)}`, fields), body])
      await connection.lingerClose()
    } catch (writeError) {
      connection.destroy(writeError)
    }
  }
}

async function chooseFraming(
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
  declared: number | undefined,
  minorVersion: 0 | 1,
): Promise<{ framing: OutgoingFraming; source: ChunkSource; headFirst?: boolean }> {
  if (reader === undefined) return { framing: { kind: 'length', length: 0 }, source: arraySource([]) }
  if (declared !== undefined) return { framing: { kind: 'length', length: declared }, source: streamSource(reader), headFirst: true }
  const rest = streamSource(reader)
  let first: Uint8Array | undefined
  try {
    first = await rest()
  } catch (error) {
    throw new BodySourceError(`response body stream failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  if (first === undefined) return { framing: { kind: 'length', length: 0 }, source: arraySource([]) }
  // A body that is all there already (a string, bytes, a Blob) gets a Content-Length; waiting for one
  // macrotask tells it apart from a stream that is still being produced, which is sent as it comes.
  const second = rest()
  const settled = await settlesWithinATick(second)
  if (settled === 'resolved' && (await second) === undefined && first instanceof Uint8Array) {
    return { framing: { kind: 'length', length: first.length }, source: arraySource([first]) }
  }
  let pendingSecond: Promise<Uint8Array | undefined> | undefined = second
  const source: ChunkSource = async () => {
    if (first !== undefined) {
      const chunk = first
      first = undefined
      return chunk
    }
    if (pendingSecond !== undefined) {
      const chunk = pendingSecond
      pendingSecond = undefined
      return chunk
    }
    return rest()
  }
  second.catch(() => {}) // its failure surfaces when the source reaches it
  return { framing: minorVersion === 1 ? { kind: 'chunked' } : { kind: 'until-close' }, source }
}

/** Whether `promise` settles before the next macrotask (a MessageChannel message is one, unclamped). */
function settlesWithinATick(promise: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  return new Promise((resolve) => {
    const channel = new MessageChannel()
    let done = false
    const finish = (outcome: 'resolved' | 'rejected' | 'pending'): void => {
      if (done) return
      done = true
      channel.port1.close()
      resolve(outcome)
    }
    channel.port1.onmessage = () => finish('pending')
    channel.port2.postMessage(null)
    promise.then(
      () => finish('resolved'),
      () => finish('rejected'),
    )
  })
}

/** The request's absolute URL, or a message saying why it has none. */
function requestUrl(head: RequestHead): URL | string {
  const hosts = head.headers.filter(([name]) => name.toLowerCase() === 'host').map(([, value]) => value)
  if (hosts.length > 1) return 'request has more than one Host header'
  const host = hosts[0]
  if (host === undefined && head.minorVersion === 1) return 'HTTP/1.1 request has no Host header'
  if (host !== undefined && !/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::\d*)?$/.test(host)) {
    return `invalid Host header ${JSON.stringify(host)}`
  }
  const target = head.target
  try {
    if (target.startsWith('/')) return new URL(`http://${host ?? 'localhost'}${target}`)
    if (/^http:\/\//i.test(target)) return new URL(target)
  } catch {
    return `invalid request target ${JSON.stringify(target)}`
  }
  return `unsupported request target ${JSON.stringify(target)}`
}

function expectHeader(head: RequestHead): string | undefined {
  const values = head.headers.filter(([name]) => name.toLowerCase() === 'expect').map(([, value]) => value.trim().toLowerCase())
  return values.length === 0 ? undefined : values.join(', ')
}

function declaredLength(headers: Headers): number | undefined {
  const value = headers.get('content-length')
  if (value === null || !/^\d+$/.test(value)) return undefined
  const length = Number(value)
  return Number.isSafeInteger(length) ? length : undefined
}

function wantsClose(headers: Headers): boolean {
  return (headers.get('connection') ?? '')
    .toLowerCase()
    .split(',')
    .some((option) => option.trim() === 'close')
}

function statusForParseError(error: HttpParseError): number {
  if (error.code === 'head-too-large') return 431
  if (error.code === 'unsupported-version') return 505
  return 400
}

function plainResponse(status: number, message: string): Response {
  const text = status >= 500 && status !== 501 ? `${message}\n` : `${status} ${reasonPhrase(status)}: ${message}\n`
  return new Response(text, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } })
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`
  return typeof value
}
