// The proxy's cookie jar (RFC 6265 §5.2–5.4, host-only): one jar per peer, path-matched against
// the peer's own paths. Set-Cookie never reaches the browser — a response a Service Worker
// builds cannot set cookies, and the browser's jar for this origin belongs to the embedding app —
// so the jar lives in the worker and adds a Cookie header to requests bound for that peer. Pure:
// every call takes `now` (epoch ms).

export interface StoredCookie {
  name: string
  value: string
  path: string
  /** Epoch ms, or null for a session cookie. */
  expires: number | null
  created: number
}

/** RFC 6265 §5.1.4: the directory of the request path. */
export function defaultPath(requestPath: string): string {
  const path = requestPath.split('?')[0] ?? '/'
  if (!path.startsWith('/')) return '/'
  const last = path.lastIndexOf('/')
  return last <= 0 ? '/' : path.slice(0, last)
}

/** RFC 6265 §5.1.4 path-match. */
export function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true
  if (!requestPath.startsWith(cookiePath)) return false
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'
}

/** Parses one Set-Cookie value (§5.2); undefined if it is to be ignored. */
export function parseSetCookie(header: string, requestPath: string, now: number): StoredCookie | undefined {
  const [pair = '', ...attributes] = header.split(';')
  const eq = pair.indexOf('=')
  if (eq < 0) return undefined
  const name = pair.slice(0, eq).trim()
  const value = pair.slice(eq + 1).trim()
  if (name === '') return undefined
  let path = defaultPath(requestPath)
  let expires: number | null = null
  let maxAgeSeen = false
  for (const attribute of attributes) {
    const at = attribute.indexOf('=')
    const key = (at < 0 ? attribute : attribute.slice(0, at)).trim().toLowerCase()
    const val = at < 0 ? '' : attribute.slice(at + 1).trim()
    if (key === 'max-age') {
      // §5.2.2: Max-Age wins over Expires whatever their order.
      if (!/^-?\d+$/.test(val)) continue
      const seconds = Number(val)
      expires = seconds <= 0 ? 0 : now + seconds * 1000
      maxAgeSeen = true
    } else if (key === 'expires' && !maxAgeSeen) {
      const when = Date.parse(val)
      if (!Number.isNaN(when)) expires = when
    } else if (key === 'path') {
      path = val.startsWith('/') ? val : defaultPath(requestPath)
    }
    // Domain is not honoured: every cookie stays with the peer that set it (host-only, §5.3 step 6).
  }
  return { name, value, path, expires, created: now }
}

export class CookieJar {
  /** peer → cookies, keyed by name + path (§5.3 step 11: same name, domain and path replaces). */
  private readonly jars = new Map<string, Map<string, StoredCookie>>()

  /** Stores what one Set-Cookie of `peer`'s response to `requestPath` says; true if the jar changed. */
  set(peer: string, header: string, requestPath: string, now: number): boolean {
    const cookie = parseSetCookie(header, requestPath, now)
    if (!cookie) return false
    let jar = this.jars.get(peer)
    if (!jar) this.jars.set(peer, (jar = new Map()))
    const key = `${cookie.name}\u0000${cookie.path}`
    const old = jar.get(key)
    if (cookie.expires !== null && cookie.expires <= now) return jar.delete(key)
    if (old) cookie.created = old.created
    jar.set(key, cookie)
    return true
  }

  /** The Cookie header for a request to `peer` at `requestPath`, or undefined (§5.4). */
  header(peer: string, requestPath: string, now: number): string | undefined {
    const jar = this.jars.get(peer)
    if (!jar) return undefined
    const path = requestPath.split('?')[0] ?? '/'
    const matching: StoredCookie[] = []
    for (const [key, cookie] of jar) {
      if (cookie.expires !== null && cookie.expires <= now) {
        jar.delete(key)
        continue
      }
      if (pathMatches(path, cookie.path)) matching.push(cookie)
    }
    if (matching.length === 0) return undefined
    // §5.4 step 2: longer paths first, then earlier creation.
    matching.sort((a, b) => b.path.length - a.path.length || a.created - b.created)
    return matching.map((c) => `${c.name}=${c.value}`).join('; ')
  }

  /** Everything, for persisting across worker restarts. */
  toJSON(): Record<string, StoredCookie[]> {
    const out: Record<string, StoredCookie[]> = {}
    for (const [peer, jar] of this.jars) out[peer] = [...jar.values()]
    return out
  }

  static fromJSON(data: unknown): CookieJar {
    const jar = new CookieJar()
    if (typeof data !== 'object' || data === null) return jar
    for (const [peer, cookies] of Object.entries(data as Record<string, unknown>)) {
      if (!Array.isArray(cookies)) continue
      const map = new Map<string, StoredCookie>()
      for (const c of cookies as StoredCookie[]) {
        if (typeof c?.name === 'string' && typeof c.value === 'string' && typeof c.path === 'string') map.set(`${c.name}\u0000${c.path}`, c)
      }
      jar.jars.set(peer, map)
    }
    return jar
  }
}
