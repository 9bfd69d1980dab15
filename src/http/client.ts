import { exchange, type OutgoingRequest, type RequestBody } from './exchange.ts'
import type { HttpParserLimits } from './parser.ts'
import { ConnectionPool, freshConnections, type ConnectionSource, type OpenConnection, type PoolOptions } from './pool.ts'

export type { ClientSocket, OpenConnection, PoolOptions } from './pool.ts'
export type { OutgoingRequest, RequestBody } from './exchange.ts'

export interface HttpFetchOptions {
  limits?: Partial<HttpParserLimits>
}

const MAX_REDIRECTS = 20
const REDIRECT_BODY_DISCARD_BYTES = 64 * 1024
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
// Fields that describe a body; dropped when a redirect turns the request into a bodiless GET (Fetch §4.4).
const REQUEST_BODY_HEADERS = ['content-encoding', 'content-language', 'content-location', 'content-type']

/**
 * `fetch()` over HTTP/1.1 on connections made by `open`: one fresh connection per request
 * (`Connection: close`), redirects followed like fetch's default, the response body streamed.
 */
export function httpFetch(open: OpenConnection, input: string | URL | Request, init?: RequestInit, options: HttpFetchOptions = {}): Promise<Response> {
  return fetchVia(freshConnections(open, options.limits), input, init)
}

export interface HttpClient {
  /** Like `httpFetch`, but reusing kept-alive connections per host:port. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>
  /**
   * One exchange exactly as given: the header list goes out unfiltered (a browser's Request would
   * drop Cookie, Origin, Referer), redirects are returned rather than followed, and
   * `responseFields(response)` has the fields as received. What a proxy needs.
   */
  send(request: OutgoingRequest, signal?: AbortSignal): Promise<Response>
  /** Idle connections held right now. */
  readonly idleConnections: number
  /** Closes idle connections; later fetches are refused. */
  close(): void
}

/** A fetch with a keep-alive connection pool. */
export function createHttpClient(open: OpenConnection, options: PoolOptions = {}): HttpClient {
  const pool = new ConnectionPool(open, options)
  return {
    fetch: (input, init) => fetchVia(pool, input, init),
    send: async (request, signal = new AbortController().signal) => {
      signal.throwIfAborted()
      checkScheme(request.url)
      const response = await exchange(pool, request, signal)
      markUrl(response, request.url, false)
      return response
    },
    get idleConnections() {
      return pool.idleCount
    },
    close: () => pool.close(),
  }
}

async function fetchVia(source: ConnectionSource, input: string | URL | Request, init: RequestInit | undefined): Promise<Response> {
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
    const response = await exchange(source, outgoing, signal)
    markUrl(response, outgoing.url, redirects > 0)
    const location = REDIRECT_STATUSES.has(response.status) ? response.headers.get('location') : null
    if (location === null || request.redirect === 'manual') return response
    await discardRedirectBody(response.body)
    if (request.redirect === 'error') {
      throw new TypeError(`fetch to ${outgoing.url} was redirected (${response.status}) but redirect mode is "error"`)
    }
    if (redirects === MAX_REDIRECTS) throw new TypeError(`too many redirects (more than ${MAX_REDIRECTS}) fetching ${request.url}`)
    redirect(outgoing, response.status, location)
  }
}

/** Reads a small redirect body to its end so a kept-alive connection can carry the next request. */
async function discardRedirectBody(body: ReadableStream<Uint8Array> | null): Promise<void> {
  if (body === null) return
  const reader = body.getReader()
  let total = 0
  try {
    while (total <= REDIRECT_BODY_DISCARD_BYTES) {
      const { done, value } = await reader.read()
      if (done) return
      total += value.length
    }
    await reader.cancel()
  } catch {
    // The redirect stands whatever became of its body.
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
