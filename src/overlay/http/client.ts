import { HttpConnection, describe, type ByteStreamSocket } from './connection.ts'
import { HttpConnectionError, HttpParseError } from './errors.ts'
import { HttpParser, type HeaderList, type HttpParserLimits, type ResponseHead } from './parser.ts'
import {
  BodySourceError,
  HOP_BY_HOP,
  arraySource,
  encodeHead,
  framingHeader,
  streamSource,
  writeBody,
  type OutgoingFraming,
} from './serialize.ts'

/** A freshly opened connection to `host:port`; `close()` releases it. */
export interface ClientSocket extends ByteStreamSocket {
  close(): void | Promise<void>
}

export type OpenConnection = (host: string, port: number) => Promise<ClientSocket>

export interface HttpFetchOptions {
  limits?: Partial<HttpParserLimits>
}

const MAX_REDIRECTS = 20
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
const NULL_BODY_STATUSES = new Set([204, 205, 304])
// Fields that describe a body; dropped when a redirect turns the request into a bodiless GET (Fetch §4.4).
const REQUEST_BODY_HEADERS = ['content-encoding', 'content-language', 'content-location', 'content-type']

type RequestBody = { kind: 'bytes'; bytes: Uint8Array } | { kind: 'stream'; stream: ReadableStream<Uint8Array> } | null

interface OutgoingRequest {
  url: URL
  method: string
  headers: Headers
  body: RequestBody
}

/**
 * `fetch()` over HTTP/1.1 on connections made by `open`: one fresh connection per request
 * (`Connection: close`), redirects followed like fetch's default, the response body streamed.
 */
export async function httpFetch(
  open: OpenConnection,
  input: string | URL | Request,
  init?: RequestInit,
  options: HttpFetchOptions = {},
): Promise<Response> {
  const request = toRequest(input, init)
  const signal = request.signal
  signal.throwIfAborted()
  const outgoing: OutgoingRequest = {
    url: new URL(request.url),
    method: request.method,
    headers: new Headers(request.headers),
    body: await takeBody(request, init),
  }
  for (let redirects = 0; ; redirects++) {
    checkScheme(outgoing.url)
    const response = await exchange(open, outgoing, signal, options)
    markUrl(response, outgoing.url, redirects > 0)
    const location = REDIRECT_STATUSES.has(response.status) ? response.headers.get('location') : null
    if (location === null || request.redirect === 'manual') return response
    await response.body?.cancel().catch(() => {})
    if (request.redirect === 'error') {
      throw new TypeError(`fetch to ${outgoing.url} was redirected (${response.status}) but redirect mode is "error"`)
    }
    if (redirects === MAX_REDIRECTS) throw new TypeError(`too many redirects (more than ${MAX_REDIRECTS}) fetching ${request.url}`)
    redirect(outgoing, response.status, location)
  }
}

function toRequest(input: string | URL | Request, init: RequestInit | undefined): Request {
  if (init?.body instanceof ReadableStream && !('duplex' in init)) {
    // Node requires `duplex: 'half'` for stream bodies; that is the only mode HTTP/1.1 offers anyway.
    return new Request(input, { ...init, duplex: 'half' } as RequestInit)
  }
  return new Request(input, init)
}

/** A body given as bytes (or anything fetch turns into bytes) is kept whole so redirects can resend it. */
async function takeBody(request: Request, init: RequestInit | undefined): Promise<RequestBody> {
  if (request.body === null) return null
  const given = init?.body
  if (given !== undefined && given !== null && !(given instanceof ReadableStream)) {
    return { kind: 'bytes', bytes: new Uint8Array(await request.arrayBuffer()) }
  }
  return { kind: 'stream', stream: request.body }
}

function checkScheme(url: URL): void {
  if (url.protocol === 'https:') {
    throw new TypeError(`cannot fetch ${url}: https: is not supported over the overlay yet (no TLS); use http:`)
  }
  if (url.protocol !== 'http:') throw new TypeError(`cannot fetch ${url}: only http: URLs are supported`)
}

function redirect(outgoing: OutgoingRequest, status: number, location: string): void {
  let next: URL
  try {
    next = new URL(location, outgoing.url)
  } catch {
    throw new TypeError(`redirect from ${outgoing.url} has an invalid Location ${JSON.stringify(location)}`)
  }
  if (next.protocol !== 'http:') {
    throw new TypeError(`redirect from ${outgoing.url} to ${next} is not followed: ${next.protocol} is not supported over the overlay (no TLS)`)
  }
  if (((status === 301 || status === 302) && outgoing.method === 'POST') || (status === 303 && outgoing.method !== 'GET' && outgoing.method !== 'HEAD')) {
    outgoing.method = 'GET'
    outgoing.body = null
    for (const name of REQUEST_BODY_HEADERS) outgoing.headers.delete(name)
  }
  if (outgoing.body?.kind === 'stream') {
    throw new TypeError(`cannot follow ${status} redirect from ${outgoing.url}: the request body was a stream and cannot be sent again`)
  }
  if (next.origin !== outgoing.url.origin) outgoing.headers.delete('authorization')
  next.hash = ''
  outgoing.url = next
}

function markUrl(response: Response, url: URL, redirected: boolean): void {
  const shown = new URL(url)
  shown.hash = ''
  Object.defineProperty(response, 'url', { value: shown.href, enumerable: true })
  Object.defineProperty(response, 'redirected', { value: redirected, enumerable: true })
}

/** One request and its response over a new connection. */
async function exchange(open: OpenConnection, outgoing: OutgoingRequest, signal: AbortSignal, options: HttpFetchOptions): Promise<Response> {
  const { url, method } = outgoing
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const port = url.port === '' ? 80 : Number(url.port)
  const socket = await abortable(open(host, port), signal, (late) => void Promise.resolve(late.close()).catch(() => {}))
  const parser = new HttpParser('response', options.limits)
  parser.expectResponseTo(method)
  const connection = new HttpConnection(socket, parser)
  const onAbort = (): void => connection.destroy(signal.reason)
  signal.addEventListener('abort', onAbort, { once: true })
  const release = (): void => signal.removeEventListener('abort', onAbort)
  const fail = (error: unknown): never => {
    release()
    connection.destroy(error)
    if (signal.aborted) throw signal.reason
    throw error
  }

  let uploadFailure: unknown
  let uploading = true
  const upload = sendRequest(connection, outgoing).then(
    () => {
      uploading = false
    },
    (error: unknown) => {
      uploading = false
      uploadFailure = error
      // The caller's body stream broke: nothing useful can follow on this connection.
      if (error instanceof BodySourceError) connection.destroy(error)
    },
  )

  let head: ResponseHead
  try {
    head = await readFinalHead(connection, url)
  } catch (error) {
    connection.destroy(error)
    await upload
    return fail(uploadFailure instanceof BodySourceError ? uploadFailure : contextualize(error, url))
  }

  const headers = new Headers()
  try {
    for (const [name, value] of head.headers) headers.append(name, value)
  } catch (error) {
    return fail(new HttpConnectionError(`response from ${url} has a header fetch cannot represent: ${describe(error)}`, { cause: error }))
  }
  if (head.status < 200 || head.status > 599) {
    return fail(new HttpConnectionError(`response from ${url} has status ${head.status}, outside the 200–599 range a Response can hold`))
  }

  const finished = (): void => {
    release()
    // A server may answer before reading the whole upload; then there is nothing left to finish politely.
    if (uploading) connection.destroy(new HttpConnectionError('response completed before the request body was sent'))
    else void connection.close()
  }
  const bodiless = method === 'HEAD' || NULL_BODY_STATUSES.has(head.status)
  let body: ReadableStream<Uint8Array> | null = null
  if (bodiless) {
    if (head.body.kind === 'none') {
      // Consume the end event so nothing of this exchange is left unread, then hang up.
      await connection.nextEvent().then(finished, fail)
    } else {
      finished()
    }
  } else {
    body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          try {
            for (;;) {
              const event = await connection.nextEvent()
              if (event.type === 'body') {
                controller.enqueue(event.data)
                return
              }
              if (event.type === 'end') {
                controller.close()
                finished()
                return
              }
              throw new HttpConnectionError(`unexpected ${event.type} event inside the response body`)
            }
          } catch (error) {
            const reason = signal.aborted ? signal.reason : bodyError(error, url)
            release()
            connection.destroy(reason)
            controller.error(reason)
          }
        },
        cancel(reason) {
          release()
          connection.destroy(reason)
        },
      },
      { highWaterMark: 0 },
    )
  }
  return new Response(body, { status: head.status, statusText: head.reason, headers })
}

async function sendRequest(connection: HttpConnection, outgoing: OutgoingRequest): Promise<void> {
  const { url, method, body } = outgoing
  let framing: OutgoingFraming | undefined
  if (body?.kind === 'bytes') framing = { kind: 'length', length: body.bytes.length }
  else if (body?.kind === 'stream') framing = { kind: 'chunked' }
  else if (method === 'POST' || method === 'PUT' || method === 'PATCH') framing = { kind: 'length', length: 0 }

  const fields: HeaderList = [['host', url.host]]
  for (const [name, value] of outgoing.headers) {
    if (HOP_BY_HOP.has(name) || name === 'host') continue
    fields.push([name, value])
  }
  if (!outgoing.headers.has('accept')) fields.push(['accept', '*/*'])
  const framingField = framing === undefined ? undefined : framingHeader(framing)
  if (framingField !== undefined) fields.push(framingField)
  fields.push(['connection', 'close'])
  const target = `${url.pathname}${url.search}`
  const head = encodeHead(`${method} ${target} HTTP/1.1`, fields)
  // A streamed body may take a while to produce its first chunk; the head should not wait for it.
  if (body?.kind === 'stream') {
    await connection.write(head)
    await writeBody(connection, streamSource(body.stream.getReader()), framing!)
  } else {
    await writeBody(connection, arraySource(body === null ? [] : [body.bytes]), framing ?? { kind: 'length', length: 0 }, head)
  }
}

/** Reads past interim 1xx responses to the final head. */
async function readFinalHead(connection: HttpConnection, url: URL): Promise<ResponseHead> {
  for (;;) {
    const event = await connection.nextEvent()
    if (event.type === 'closed') throw new HttpConnectionError(`connection to ${url.host} closed before any response arrived`)
    if (event.type !== 'head' || event.head.kind !== 'response') throw new HttpConnectionError(`unexpected ${event.type} before the response head`)
    const head = event.head
    if (head.status === 101) throw new HttpConnectionError(`${url} answered 101 Switching Protocols, but no upgrade was asked for`)
    if (head.status >= 200) return head
    await connection.nextEvent() // the interim response's end
  }
}

function contextualize(error: unknown, url: URL): unknown {
  if (error instanceof HttpParseError) {
    return new HttpConnectionError(`malformed response from ${url}: ${error.message}`, { cause: error })
  }
  return error
}

function bodyError(error: unknown, url: URL): unknown {
  if (error instanceof HttpParseError || error instanceof HttpConnectionError) {
    return new HttpConnectionError(`response body from ${url} failed: ${error.message}`, { cause: error })
  }
  return error
}

/** Races `promise` against `signal`; a value that arrives after the abort goes to `discard`. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, discard: (late: T) => void): Promise<T> {
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
