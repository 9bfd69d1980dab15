// Messages between the pages that own a node and the proxy's Service Worker. The worker holds no
// keys and no tunnel: it hands each intercepted request, over a MessagePort, to a page that does.

/** Where the proxy lives unless `node.proxy({ prefix })` says otherwise. */
export const DEFAULT_PROXY_PREFIX = '/.burrow/'
/** The Service Worker script, served at the app's root so its scope can be `/`. */
export const PROXY_WORKER_PATH = '/burrow-sw.js'
/** The bridge page a proxy on another origin is reached through (see src/proxy/README.md). */
export const PROXY_BRIDGE_PATH = '/burrow-proxy.html'

export type HeaderPairs = Array<[string, string]>

/** Client (page or bridge) → worker: take requests on this port. */
export interface ServeMessage {
  type: 'burrow-proxy-serve'
  port: MessagePort
}

/** Worker → every window client: no live page serves right now; send a port if you have a node. */
export interface NeedServerMessage {
  type: 'burrow-proxy-need-server'
}

/** Worker → serving page: run this request over the overlay and answer on `reply`. */
export interface ProxyRequestMessage {
  type: 'request'
  method: string
  /** `http://<peer>:<port>/<path>` — the upstream URL on the overlay. */
  url: string
  headers: HeaderPairs
  /** Small bodies whole (so a server sees Content-Length), big or endless ones as a stream. */
  body: ArrayBuffer | ReadableStream<Uint8Array> | null
  reply: MessagePort
}

/** Serving page → worker, on the request's reply port. */
export type ProxyReplyMessage =
  { type: 'response'; status: number; statusText: string; headers: HeaderPairs; body: ReadableStream<Uint8Array> | null } | { type: 'error'; status: number; message: string }

/** Worker → serving page, on the reply port: the browser gave up on this request. */
export interface ProxyAbortMessage {
  type: 'abort'
}
