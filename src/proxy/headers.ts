// Which response fields a proxied response keeps, and what they become. Pure.
import { rewriteLocation } from './paths.ts'
import type { HeaderPairs } from './protocol.ts'

// Fields about this hop, or that a Service Worker response cannot or must not carry:
// set-cookie goes to the worker's jar; clear-site-data would wipe the embedding app's storage;
// service-worker-allowed would let the app widen a worker's scope on this origin.
// X-Frame-Options guards an app against being framed by sites that cannot otherwise read it; the
// page that frames it here owns the node and can already fetch all of it, and without dropping
// it apps that send DENY (many admin UIs) could not be browsed at all.
const DROPPED = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'proxy-connection',
  'upgrade',
  'trailer',
  'set-cookie',
  'set-cookie2',
  'clear-site-data',
  'service-worker-allowed',
  'x-frame-options',
])

/**
 * WebSockets never reach a Service Worker (they bypass fetch interception), so a proxied app's
 * `new WebSocket()` would go to the embedding app's server and hang there. This policy makes the
 * browser refuse every ws:/wss: connection at once, with an error naming the policy; http(s)
 * fetches are untouched (CSP3 §6.7.2.8: `http:` does not match `ws:`).
 */
export const NO_WEBSOCKET_POLICY = 'connect-src http: https: blob: data:'

export interface BrowserResponseHead {
  headers: Headers
  /** Set-Cookie values, for the jar. */
  cookies: string[]
}

/**
 * The browser-facing head for an upstream response. `decoded` says the body was already
 * un-gzipped by the overlay HTTP client, so its Content-Encoding and Content-Length no longer hold.
 */
export function browserResponseHead(prefix: string, upstream: URL, fields: HeaderPairs, decoded: boolean): BrowserResponseHead {
  const headers = new Headers()
  const cookies: string[] = []
  for (const [rawName, value] of fields) {
    const name = rawName.toLowerCase()
    if (name === 'set-cookie') cookies.push(value)
    if (DROPPED.has(name)) continue
    if (decoded && (name === 'content-encoding' || name === 'content-length')) continue
    try {
      if (name === 'location' || name === 'content-location') headers.append(name, rewriteLocation(prefix, upstream, value))
      else headers.append(name, value)
    } catch {
      // A value Headers refuses: leave the field out rather than fail the response.
    }
  }
  headers.append('content-security-policy', NO_WEBSOCKET_POLICY)
  return { headers, cookies }
}

/** True if the overlay HTTP client undoes this coding (see src/http/exchange.ts `decoded`). */
export function isDecodedCoding(contentEncoding: string | null): boolean {
  const coding = (contentEncoding ?? '').trim().toLowerCase()
  return coding === 'gzip' || coding === 'x-gzip' || coding === 'deflate'
}
