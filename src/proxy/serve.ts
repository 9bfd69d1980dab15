// The page half of the proxy: answers the Service Worker's requests by running them over the
// overlay with the node's HTTP client, bodies streamed both ways (a ReadableStream transferred
// through the MessagePort keeps its backpressure: the page reads the next overlay chunk only when
// the browser has taken the last one).
import { responseFields, type OutgoingRequest, type RequestBody } from '../http/index.ts'
import type { ProxyReplyMessage, ProxyRequestMessage } from './protocol.ts'

/** What the proxy needs of a node: one unfiltered HTTP exchange over the overlay. */
export type ProxySend = (request: OutgoingRequest, signal: AbortSignal) => Promise<Response>

export interface ProxyTraffic {
  /** Requests answered (any status) and failed, since the proxy started. */
  requests: number
  failures: number
}

/** Serves every request that arrives on `port` until `port` is closed. */
export function serveProxyPort(port: MessagePort, send: ProxySend, traffic: ProxyTraffic): void {
  port.onmessage = (event: MessageEvent) => {
    const message = event.data as ProxyRequestMessage
    if (message?.type === 'request' && message.reply instanceof MessagePort) void answer(message, send, traffic)
  }
}

async function answer(message: ProxyRequestMessage, send: ProxySend, traffic: ProxyTraffic): Promise<void> {
  const { reply } = message
  const controller = new AbortController()
  reply.onmessage = (event: MessageEvent) => {
    if ((event.data as { type?: string })?.type === 'abort') controller.abort(new DOMException('the browser cancelled the request', 'AbortError'))
  }
  let url: URL
  try {
    url = new URL(message.url)
  } catch {
    return post(reply, { type: 'error', status: 400, message: `${JSON.stringify(message.url)} is not a URL` })
  }
  try {
    // Headers made here (guard "none") keep Cookie, Origin and Referer, which a Request would drop.
    const headers = new Headers()
    for (const [name, value] of message.headers) {
      try {
        headers.append(name, value)
      } catch {
        // A field fetch cannot hold is left out.
      }
    }
    const body: RequestBody =
      message.body === null ? null : message.body instanceof ArrayBuffer ? { kind: 'bytes', bytes: new Uint8Array(message.body) } : { kind: 'stream', stream: message.body }
    const response = await send({ url, method: message.method, headers, body }, controller.signal)
    const fields = responseFields(response) ?? [...response.headers]
    const stream = response.body
    traffic.requests++
    post(reply, { type: 'response', status: response.status, statusText: response.statusText, headers: fields, body: stream }, stream ? [stream as unknown as Transferable] : [])
  } catch (error) {
    traffic.failures++
    const text = (error as Error)?.message ?? String(error)
    const code = (error as { code?: string })?.code
    const status = code === 'unknown-host' ? 502 : (error as Error)?.name === 'AbortError' ? 499 : /timed? ?out/i.test(text) ? 504 : 502
    post(reply, { type: 'error', status: status === 499 ? 502 : status, message: `${message.method} ${url.href} over the overlay failed: ${text}` })
  }
}

function post(port: MessagePort, message: ProxyReplyMessage, transfer: Transferable[] = []): void {
  try {
    port.postMessage(message, transfer)
  } catch {
    // The worker gave up on this request (its port is gone); nothing is waiting for the answer.
  } finally {
    port.onmessage = null
  }
}
