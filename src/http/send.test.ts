// HttpClient.send: the proxy's exchange — headers as given, redirects returned, fields as received.
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHttpClient, type OpenConnection } from './client.ts'
import { responseFields } from './exchange.ts'
import { fromNodeSocket } from './node-socket.ts'

const openTcp: OpenConnection = async (host, port) => {
  const socket = net.connect({ host, port })
  await once(socket, 'connect')
  return fromNodeSocket(socket)
}

describe('HttpClient.send', () => {
  let server: http.Server
  let base: URL
  const seen: http.IncomingHttpHeaders[] = []

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push(req.headers)
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/elsewhere', 'set-cookie': ['a=1; Path=/', 'b=2'], 'content-length': 0 })
        return res.end()
      }
      req.resume()
      req.on('end', () => res.end('ok'))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`)
  })
  afterAll(() => {
    server.closeAllConnections()
    server.close()
  })

  it('returns a redirect unfollowed, with every Set-Cookie in responseFields', async () => {
    const client = createHttpClient(openTcp)
    const response = await client.send({ url: new URL('/redirect', base), method: 'GET', headers: new Headers(), body: null })
    expect(response.status).toBe(302)
    expect(response.headers.get('location')).toBe('/elsewhere')
    expect(
      responseFields(response)!
        .filter(([name]) => name.toLowerCase() === 'set-cookie')
        .map(([, value]) => value),
    ).toEqual(['a=1; Path=/', 'b=2'])
    client.close()
  })

  it('sends Cookie, Origin and Referer as given, and a body of bytes with its length', async () => {
    const client = createHttpClient(openTcp)
    const headers = new Headers([
      ['cookie', 'sid=1'],
      ['origin', 'http://laptop'],
      ['referer', 'http://laptop/form'],
    ])
    const response = await client.send({ url: new URL('/post', base), method: 'POST', headers, body: { kind: 'bytes', bytes: new TextEncoder().encode('hello') } })
    expect(await response.text()).toBe('ok')
    expect(seen.at(-1)).toMatchObject({ cookie: 'sid=1', origin: 'http://laptop', referer: 'http://laptop/form', 'content-length': '5' })
    client.close()
  })

  it('refuses non-http URLs and an aborted signal before connecting', async () => {
    const client = createHttpClient(openTcp)
    await expect(client.send({ url: new URL('https://x/'), method: 'GET', headers: new Headers(), body: null })).rejects.toThrow(/https: is not supported/)
    const aborted = AbortSignal.abort(new Error('stop'))
    await expect(client.send({ url: new URL('/post', base), method: 'GET', headers: new Headers(), body: null }, aborted)).rejects.toThrow('stop')
    client.close()
  })
})
