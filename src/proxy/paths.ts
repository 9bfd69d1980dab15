// Where a proxied request goes, and how upstream URLs map back into the proxy prefix. Pure.

/** A peer, a port and the rest of the URL, as named by `/<prefix>/<peer>/<port>/<path>`. */
export interface ProxyTarget {
  /** Hostname or overlay address as written (an IPv6 address without brackets). */
  peer: string
  port: number
  /** Path and query on the peer, always starting with `/`. */
  path: string
}

export class ProxyPathError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ProxyPathError'
  }
}

/** Checks a prefix: it must start and end with `/` and hold nothing a URL path would alter. */
export function normalizePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || !prefix.endsWith('/') || prefix.length < 3) {
    throw new ProxyPathError(`proxy prefix must look like "/.burrow/" (start and end with "/"), got ${JSON.stringify(prefix)}`)
  }
  if (new URL(prefix, 'http://x').pathname !== prefix) throw new ProxyPathError(`proxy prefix ${JSON.stringify(prefix)} is not a plain URL path`)
  return prefix
}

/** `undefined` if `pathname` is outside the prefix; throws ProxyPathError if it is inside but malformed. */
export function parseProxyPath(prefix: string, pathname: string, search = ''): ProxyTarget | undefined {
  if (!pathname.startsWith(prefix)) {
    // `/.burrow` without its slash is still meant for the proxy.
    if (`${pathname}/` === prefix) throw new ProxyPathError(`${pathname} names no peer: use ${prefix}<peer>/<port>/`)
    return undefined
  }
  const rest = pathname.slice(prefix.length)
  const [rawPeer = '', rawPort = '', ...tail] = rest.split('/')
  let peer: string
  try {
    peer = decodeURIComponent(rawPeer)
  } catch {
    throw new ProxyPathError(`${JSON.stringify(rawPeer)} is not a valid peer name`)
  }
  if (peer.startsWith('[') && peer.endsWith(']')) peer = peer.slice(1, -1)
  if (!/^[A-Za-z0-9.:_-]+$/.test(peer)) throw new ProxyPathError(`${pathname} names no peer: use ${prefix}<peer>/<port>/<path>`)
  if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) < 1 || Number(rawPort) > 65535) {
    throw new ProxyPathError(`${pathname}: ${JSON.stringify(rawPort)} is not a port (1–65535); use ${prefix}<peer>/<port>/<path>`)
  }
  return { peer: peer.toLowerCase(), port: Number(rawPort), path: `/${tail.join('/')}${search}` }
}

/** The proxy path for a target; IPv6 addresses stay bare (colons are fine in a path segment). */
export function proxyPath(prefix: string, target: ProxyTarget): string {
  return `${prefix}${target.peer}/${target.port}${target.path.startsWith('/') ? target.path : `/${target.path}`}`
}

export function upstreamURL(target: ProxyTarget): URL {
  const host = target.peer.includes(':') ? `[${target.peer}]` : target.peer
  return new URL(`http://${host}:${target.port}${target.path}`)
}

/**
 * A Location (or any URL the peer hands out) as the browser must see it: an `http:` URL on the
 * overlay becomes a path inside the prefix, so the redirect lands back in the proxy; anything
 * else (https:, mailto:, …) is left alone because the overlay cannot reach it.
 */
export function rewriteLocation(prefix: string, upstream: URL, location: string): string {
  let next: URL
  try {
    next = new URL(location, upstream)
  } catch {
    return location
  }
  if (next.protocol !== 'http:') return location
  const peer = next.hostname.startsWith('[') ? next.hostname.slice(1, -1) : next.hostname
  return `${prefix}${peer}/${next.port || '80'}${next.pathname}${next.search}${next.hash}`
}

/**
 * An absolute-path URL (`/x`) requested by a document that lives under a peer's prefix belongs to
 * that peer: the app was written for the root of its own server. Returns the target or undefined.
 */
export function targetForClient(prefix: string, clientURL: string, requestPathname: string, requestSearch: string): ProxyTarget | undefined {
  let client: ProxyTarget | undefined
  try {
    const url = new URL(clientURL)
    client = parseProxyPath(prefix, url.pathname)
  } catch {
    return undefined
  }
  if (!client) return undefined
  return { peer: client.peer, port: client.port, path: `${requestPathname}${requestSearch}` }
}
