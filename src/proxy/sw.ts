// The proxy's Service Worker (built into public/burrow-sw.js). It holds no keys and no tunnel:
// every request under the prefix — and every absolute-path request made by a document that lives
// under a peer's prefix — is handed over a MessagePort to a page that owns a node, which runs it
// over the overlay. Register it as `/burrow-sw.js?prefix=/.burrow/` with scope `/`.
import { CookieJar } from './cookies.ts'
import { browserResponseHead, isDecodedCoding } from './headers.ts'
import { normalizePrefix, parseProxyPath, proxyPath, ProxyPathError, targetForClient, upstreamURL, type ProxyTarget } from './paths.ts'
import type { HeaderPairs, NeedServerMessage, ProxyReplyMessage, ProxyRequestMessage } from './protocol.ts'

// The few Service Worker types used here (the DOM and WebWorker libs cannot share one program).
interface SwClient {
  id: string
  url: string
  postMessage(message: unknown): void
}
interface FetchEventLike extends Event {
  request: Request
  clientId: string
  resultingClientId: string
  respondWith(response: Promise<Response> | Response): void
  waitUntil(promise: Promise<unknown>): void
}
interface SwScope {
  location: Location
  clients: {
    get(id: string): Promise<SwClient | undefined>
    matchAll(options: { type: 'window'; includeUncontrolled: boolean }): Promise<SwClient[]>
    claim(): Promise<void>
  }
  skipWaiting(): Promise<void>
  addEventListener(type: string, listener: (event: never) => void): void
}
const sw = self as unknown as SwScope

const prefix = normalizePrefix(new URL(sw.location.href).searchParams.get('prefix') ?? '/.burrow/')
const origin = new URL(sw.location.href).origin
/** Bodies up to this size are sent whole (with Content-Length, which some servers require). */
const WHOLE_BODY_LIMIT = 1 << 20
/** How long a request waits for a page to offer itself when none is registered. */
const SERVER_WAIT_MS = 2000
/** How often a pending request checks that its serving page is still open. */
const LIVENESS_MS = 1000

interface Server {
  port: MessagePort
  clientId: string
}
/** Newest first: the page that offered itself last serves. */
const servers: Server[] = []
/** Requests waiting for a page to offer itself (each is woken by the next offer). */
const awaitingServer = new Set<() => void>()

/** clientId → the peer prefix its document lives under (null: not a proxied document). */
const clientTargets = new Map<string, ProxyTarget | null>()

const COOKIE_CACHE = 'burrow-proxy-cookies'
const COOKIE_KEY = `${origin}${prefix}__cookies`
let jar: CookieJar | undefined
let jarLoading: Promise<CookieJar> | undefined
let jarSave: Promise<void> | undefined

function loadJar(): Promise<CookieJar> {
  jarLoading ??= (async () => {
    try {
      const cached = await (await caches.open(COOKIE_CACHE)).match(COOKIE_KEY)
      jar = CookieJar.fromJSON(cached ? await cached.json() : {})
    } catch {
      jar = new CookieJar()
    }
    return jar
  })()
  return jarLoading
}

/** The jar survives the worker being stopped when idle (cookies would otherwise vanish after ~30 s). */
function saveJar(): void {
  jarSave ??= Promise.resolve().then(async () => {
    jarSave = undefined
    try {
      const cache = await caches.open(COOKIE_CACHE)
      await cache.put(COOKIE_KEY, new Response(JSON.stringify(jar!.toJSON()), { headers: { 'content-type': 'application/json' } }))
    } catch {
      // Cookies stay in memory; only a restart of the worker would lose them.
    }
  })
}

function text(status: number, message: string): Response {
  return new Response(`Burrow proxy: ${message}\n`, { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } })
}

sw.addEventListener('install', () => void sw.skipWaiting())
sw.addEventListener('activate', (event: FetchEventLike) => event.waitUntil(sw.clients.claim()))

sw.addEventListener('message', (event: MessageEvent & { source: SwClient | null }) => {
  const data = event.data as { type?: string; port?: MessagePort }
  if (data?.type === 'burrow-proxy-withdraw' && event.source) {
    for (let i = servers.length - 1; i >= 0; i--) if (servers[i]!.clientId === event.source.id) servers.splice(i, 1)[0]!.port.close()
    return
  }
  if (data?.type !== 'burrow-proxy-serve' || !(data.port instanceof MessagePort) || !event.source) return
  servers.unshift({ port: data.port, clientId: event.source.id })
  for (const wake of awaitingServer) wake()
  awaitingServer.clear()
})

sw.addEventListener('fetch', (event: FetchEventLike) => {
  const request = event.request
  const url = new URL(request.url)
  // Only this origin's requests: anything else is not ours to answer.
  if (url.origin !== origin) return
  let target: ProxyTarget | undefined
  try {
    target = parseProxyPath(prefix, url.pathname, url.search)
  } catch (error) {
    if (error instanceof ProxyPathError) event.respondWith(text(400, error.message))
    return
  }
  if (target) {
    if (request.mode === 'navigate' && event.resultingClientId) clientTargets.set(event.resultingClientId, { ...target, path: '/' })
    event.respondWith(proxy(request, target))
    return
  }
  if (request.mode === 'navigate') {
    // A link to "/x" clicked inside a proxied app: its referrer says which peer it belongs to.
    const from = request.referrer ? targetForClient(prefix, request.referrer, url.pathname, url.search) : undefined
    if (from) event.respondWith(new Response(null, { status: 307, headers: { location: proxyPath(prefix, from) } }))
    return
  }
  if (!event.clientId) return
  const known = clientTargets.get(event.clientId)
  if (known === null) return
  if (known) {
    event.respondWith(proxy(request, { ...known, path: `${url.pathname}${url.search}` }))
    return
  }
  // A client this worker has not seen (it was restarted, or the client predates it): look it up.
  event.respondWith(
    (async () => {
      // A restarting worker does not always find the client yet; the request's referrer (the
      // document's URL for a same-origin fetch) names the same document.
      const client = await sw.clients.get(event.clientId)
      const documentURL = client?.url || request.referrer
      const mapped = documentURL ? targetForClient(prefix, documentURL, url.pathname, url.search) : undefined
      clientTargets.set(event.clientId, mapped ? { ...mapped, path: '/' } : null)
      return mapped ? proxy(request, mapped) : fetch(request)
    })(),
  )
})

/** A page that owns a node and is still open, waiting briefly for one to offer itself. */
async function liveServer(): Promise<Server | undefined> {
  for (let attempt = 0; attempt < 2; attempt++) {
    while (servers.length > 0) {
      const server = servers[0]!
      if (await sw.clients.get(server.clientId)) return server
      servers.shift()
      server.port.close()
    }
    if (attempt === 1) break
    // None known (the worker may have been restarted): ask every open page.
    let wake = (): void => {}
    const arrived = new Promise<void>((resolve) => awaitingServer.add((wake = resolve)))
    const message: NeedServerMessage = { type: 'burrow-proxy-need-server' }
    for (const client of await sw.clients.matchAll({ type: 'window', includeUncontrolled: true })) client.postMessage(message)
    await Promise.race([arrived, new Promise((resolve) => setTimeout(resolve, SERVER_WAIT_MS))])
    awaitingServer.delete(wake)
  }
  return undefined
}

const NO_SERVER = 'no open page has a Burrow node serving this proxy. Open (or reload) the app that called node.proxy(), then try again.'

/** The request body: whole if small, else a stream that starts with what was already read. */
async function takeBody(request: Request): Promise<ArrayBuffer | ReadableStream<Uint8Array> | null> {
  if (request.method === 'GET' || request.method === 'HEAD') return null
  if (!request.body) {
    const bytes = await request.arrayBuffer()
    return bytes.byteLength > 0 ? bytes : null
  }
  const reader = request.body.getReader()
  const head: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { value, done } = await reader.read()
    if (done) {
      const whole = new Uint8Array(size)
      let at = 0
      for (const chunk of head) {
        whole.set(chunk, at)
        at += chunk.length
      }
      return size > 0 ? whole.buffer : null
    }
    head.push(value)
    size += value.length
    if (size > WHOLE_BODY_LIMIT) break
  }
  return new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      const next = head.shift()
      if (next) return controller.enqueue(next)
      const { value, done } = await reader.read()
      if (done) controller.close()
      else controller.enqueue(value)
    },
    cancel: (reason) => reader.cancel(reason),
  })
}

async function proxy(request: Request, target: ProxyTarget): Promise<Response> {
  const upstream = upstreamURL(target)
  const cookies = jar ?? (await loadJar())
  const headers: HeaderPairs = []
  for (const [name, value] of request.headers) headers.push([name, value])
  const cookie = cookies.header(target.peer, upstream.pathname, Date.now())
  if (cookie) headers.push(['cookie', cookie])
  // The browser hides Referer and Origin from the worker; the peer sees its own URLs in them.
  const referrer = request.referrer ? parseProxyPath(prefix, new URL(request.referrer).pathname, new URL(request.referrer).search) : undefined
  if (referrer) headers.push(['referer', upstreamURL(referrer).href])
  if (request.method !== 'GET' && request.method !== 'HEAD') headers.push(['origin', upstream.origin])

  let body: ArrayBuffer | ReadableStream<Uint8Array> | null
  try {
    body = await takeBody(request)
  } catch (error) {
    return text(400, `could not read the request body: ${(error as Error).message}`)
  }
  for (;;) {
    const server = await liveServer()
    if (!server) return text(503, NO_SERVER)
    const channel = new MessageChannel()
    // Bytes are copied per attempt so a retry on the next page still has them.
    const sent = body instanceof ArrayBuffer ? body.slice(0) : body
    const message: ProxyRequestMessage = { type: 'request', method: request.method, url: upstream.href, headers, body: sent, reply: channel.port2 }
    const transfer: Transferable[] = [channel.port2]
    if (sent) transfer.push(sent as unknown as Transferable)
    try {
      server.port.postMessage(message, transfer)
    } catch (error) {
      return text(500, `could not hand the request to the page: ${(error as Error).message}`)
    }
    request.signal?.addEventListener('abort', () => channel.port1.postMessage({ type: 'abort' }), { once: true })
    const reply = await awaitReply(channel.port1, server)
    channel.port1.close()
    if (reply === 'gone') {
      servers.splice(servers.indexOf(server) >>> 0, 1)
      // A stream body went with the closed page; anything else can be sent to the next one.
      if (body instanceof ReadableStream) return text(503, `the page serving this request was closed. ${NO_SERVER}`)
      continue
    }
    if (reply.type === 'error') return text(reply.status, reply.message)
    return browserResponse(request, target, upstream, reply, cookies)
  }
}

function awaitReply(port: MessagePort, server: Server): Promise<ProxyReplyMessage | 'gone'> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      void sw.clients.get(server.clientId).then((client) => {
        if (!client) {
          clearInterval(timer)
          resolve('gone')
        }
      })
    }, LIVENESS_MS)
    port.onmessage = (event) => {
      clearInterval(timer)
      resolve(event.data as ProxyReplyMessage)
    }
  })
}

function browserResponse(request: Request, target: ProxyTarget, upstream: URL, reply: Extract<ProxyReplyMessage, { type: 'response' }>, jar: CookieJar): Response {
  const contentEncoding = reply.headers.find(([name]) => name.toLowerCase() === 'content-encoding')?.[1] ?? null
  const head = browserResponseHead(prefix, upstream, reply.headers, reply.body !== null && isDecodedCoding(contentEncoding))
  let changed = false
  for (const value of head.cookies) changed = jar.set(target.peer, value, upstream.pathname, Date.now()) || changed
  if (changed) saveJar()
  const nullBody = request.method === 'HEAD' || reply.status === 204 || reply.status === 205 || reply.status === 304
  if (nullBody) void reply.body?.cancel()
  return new Response(nullBody ? null : reply.body, { status: reply.status, statusText: reply.statusText, headers: head.headers })
}
