import { describe, expect, it } from 'vitest'
import { CookieJar, defaultPath, parseSetCookie, pathMatches } from './cookies.ts'
import { browserResponseHead, isDecodedCoding, NO_WEBSOCKET_POLICY } from './headers.ts'
import { normalizePrefix, parseProxyPath, ProxyPathError, proxyPath, rewriteLocation, targetForClient, upstreamURL } from './paths.ts'

const P = '/.burrow/'

describe('proxy paths', () => {
  it('splits /.burrow/<peer>/<port>/<path> and keeps the query', () => {
    expect(parseProxyPath(P, '/.burrow/Laptop/8080/a/b.css', '?v=1')).toEqual({ peer: 'laptop', port: 8080, path: '/a/b.css?v=1' })
    expect(parseProxyPath(P, '/.burrow/100.64.0.2/80/')).toEqual({ peer: '100.64.0.2', port: 80, path: '/' })
    expect(parseProxyPath(P, '/.burrow/100.64.0.2/80')).toEqual({ peer: '100.64.0.2', port: 80, path: '/' })
  })

  it('accepts IPv6 overlay addresses bare or bracketed and builds a bracketed upstream URL', () => {
    const target = parseProxyPath(P, '/.burrow/[fd7a::1]/80/x')!
    expect(target.peer).toBe('fd7a::1')
    expect(parseProxyPath(P, '/.burrow/fd7a::1/80/x')).toEqual(target)
    expect(upstreamURL(target).href).toBe('http://[fd7a::1]/x')
    expect(upstreamURL({ peer: 'laptop', port: 8080, path: '/q?a=1' }).href).toBe('http://laptop:8080/q?a=1')
  })

  it('leaves paths outside the prefix alone and names what is wrong with malformed ones', () => {
    expect(parseProxyPath(P, '/index.html')).toBeUndefined()
    expect(() => parseProxyPath(P, '/.burrow/laptop/http/')).toThrow(/"http" is not a port/)
    expect(() => parseProxyPath(P, '/.burrow/laptop/0/')).toThrow(ProxyPathError)
    expect(() => parseProxyPath(P, '/.burrow/laptop/70000/')).toThrow(/not a port/)
    expect(() => parseProxyPath(P, '/.burrow/')).toThrow(/names no peer/)
    expect(() => parseProxyPath(P, '/.burrow')).toThrow(/names no peer/)
    expect(() => parseProxyPath(P, '/.burrow/a%2Fb/80/')).toThrow(/names no peer/)
  })

  it('checks prefixes', () => {
    expect(normalizePrefix('/apps/')).toBe('/apps/')
    expect(() => normalizePrefix('/.burrow')).toThrow(/start and end with/)
    expect(() => normalizePrefix('.burrow/')).toThrow(/start and end with/)
    expect(() => normalizePrefix('/a/../b/')).toThrow(/not a plain URL path/)
  })

  it('round-trips a target through proxyPath', () => {
    const target = { peer: 'laptop', port: 3000, path: '/x/y?z=1' }
    const url = new URL(proxyPath(P, target), 'http://x')
    expect(parseProxyPath(P, url.pathname, url.search)).toEqual(target)
  })

  it('rewrites http: redirects on the overlay into the prefix and leaves other schemes alone', () => {
    const upstream = new URL('http://laptop:8080/login')
    expect(rewriteLocation(P, upstream, '/done?x=1#top')).toBe('/.burrow/laptop/8080/done?x=1#top')
    expect(rewriteLocation(P, upstream, 'next')).toBe('/.burrow/laptop/8080/next')
    expect(rewriteLocation(P, upstream, 'http://other/')).toBe('/.burrow/other/80/')
    expect(rewriteLocation(P, upstream, 'http://[fd7a::2]:81/a')).toBe('/.burrow/fd7a::2/81/a')
    expect(rewriteLocation(P, upstream, 'https://example.com/')).toBe('https://example.com/')
    expect(rewriteLocation(P, upstream, 'http://[bad')).toBe('http://[bad')
  })

  it('maps an absolute-path request to the peer of the document that made it', () => {
    expect(targetForClient(P, 'http://127.0.0.1:5174/.burrow/laptop/80/app/page', '/api/x', '?q=1')).toEqual({ peer: 'laptop', port: 80, path: '/api/x?q=1' })
    expect(targetForClient(P, 'http://127.0.0.1:5174/index.html', '/api/x', '')).toBeUndefined()
    expect(targetForClient(P, 'not a url', '/api/x', '')).toBeUndefined()
  })
})

describe('proxy cookie jar', () => {
  const now = Date.UTC(2026, 0, 1)

  it('follows RFC 6265 default-path and path-match', () => {
    expect(defaultPath('/')).toBe('/')
    expect(defaultPath('/login')).toBe('/')
    expect(defaultPath('/app/login?x=/y')).toBe('/app')
    expect(pathMatches('/app', '/app')).toBe(true)
    expect(pathMatches('/app/x', '/app')).toBe(true)
    expect(pathMatches('/apple', '/app')).toBe(false)
    expect(pathMatches('/app/x', '/app/')).toBe(true)
  })

  it('parses attributes, with Max-Age winning over Expires', () => {
    expect(parseSetCookie('sid=abc; Path=/; HttpOnly; SameSite=Lax', '/login', now)).toEqual({ name: 'sid', value: 'abc', path: '/', expires: null, created: now })
    expect(parseSetCookie('a=1; Max-Age=60; Expires=Wed, 21 Oct 2015 07:28:00 GMT', '/', now)!.expires).toBe(now + 60_000)
    expect(parseSetCookie('a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT', '/', now)!.expires).toBe(Date.UTC(2015, 9, 21, 7, 28))
    expect(parseSetCookie('novalue', '/', now)).toBeUndefined()
    expect(parseSetCookie('=x', '/', now)).toBeUndefined()
  })

  it('keeps each peer’s cookies to that peer and sends the longest path first', () => {
    const jar = new CookieJar()
    jar.set('laptop', 'sid=1; Path=/', '/', now)
    jar.set('laptop', 'deep=2; Path=/app', '/', now + 1)
    jar.set('nas', 'other=3', '/', now)
    expect(jar.header('laptop', '/app/x', now)).toBe('deep=2; sid=1')
    expect(jar.header('laptop', '/', now)).toBe('sid=1')
    expect(jar.header('nas', '/', now)).toBe('other=3')
    expect(jar.header('printer', '/', now)).toBeUndefined()
  })

  it('replaces a cookie of the same name and path, and deletes one that expires', () => {
    const jar = new CookieJar()
    jar.set('laptop', 'sid=1; Path=/', '/', now)
    jar.set('laptop', 'sid=2; Path=/', '/', now + 5)
    expect(jar.header('laptop', '/', now + 6)).toBe('sid=2')
    jar.set('laptop', 'sid=gone; Path=/; Max-Age=0', '/', now + 7)
    expect(jar.header('laptop', '/', now + 8)).toBeUndefined()
    jar.set('laptop', 'short=1; Max-Age=10', '/', now)
    expect(jar.header('laptop', '/', now + 9_999)).toBe('short=1')
    expect(jar.header('laptop', '/', now + 10_000)).toBeUndefined()
  })

  it('survives a round trip through JSON (the worker persists it) and ignores junk', () => {
    const jar = new CookieJar()
    jar.set('laptop', 'sid=1; Path=/', '/', now)
    const copy = CookieJar.fromJSON(JSON.parse(JSON.stringify(jar.toJSON())))
    expect(copy.header('laptop', '/', now)).toBe('sid=1')
    expect(CookieJar.fromJSON('junk').header('laptop', '/', now)).toBeUndefined()
    expect(CookieJar.fromJSON({ laptop: [{ name: 1 }] }).header('laptop', '/', now)).toBeUndefined()
  })
})

describe('proxied response heads', () => {
  const upstream = new URL('http://laptop/login')

  it('moves Set-Cookie to the jar, drops hop-by-hop, storage-clearing and frame-blocking fields, rewrites Location and forbids WebSockets', () => {
    const head = browserResponseHead(
      P,
      upstream,
      [
        ['Location', '/home'],
        ['Set-Cookie', 'a=1'],
        ['set-cookie', 'b=2'],
        ['Connection', 'keep-alive'],
        ['Clear-Site-Data', '"*"'],
        ['Service-Worker-Allowed', '/'],
        ['X-Frame-Options', 'DENY'],
        ['Content-Type', 'text/html'],
        ['Content-Length', '10'],
      ],
      false,
    )
    expect(head.cookies).toEqual(['a=1', 'b=2'])
    expect([...head.headers]).toEqual([
      ['content-length', '10'],
      ['content-security-policy', NO_WEBSOCKET_POLICY],
      ['content-type', 'text/html'],
      ['location', '/.burrow/laptop/80/home'],
    ])
  })

  it('drops Content-Encoding and Content-Length of a body the client already decoded', () => {
    const head = browserResponseHead(
      P,
      upstream,
      [
        ['content-encoding', 'gzip'],
        ['content-length', '5'],
        ['etag', '"x"'],
      ],
      true,
    )
    expect(head.headers.get('content-encoding')).toBeNull()
    expect(head.headers.get('content-length')).toBeNull()
    expect(head.headers.get('etag')).toBe('"x"')
    expect(isDecodedCoding(' GZIP ')).toBe(true)
    expect(isDecodedCoding('br')).toBe(false)
    expect(isDecodedCoding(null)).toBe(false)
  })
})
