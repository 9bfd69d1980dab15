import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { httpFetch, type OpenConnection } from './client.ts'
import { fromNodeSocket } from './node-socket.ts'

const openTcp: OpenConnection = async (host, port) => {
  const socket = net.connect({ host, port })
  await once(socket, 'connect')
  return fromNodeSocket(socket)
}

async function sha256(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>)
  return Buffer.from(digest).toString('hex')
}

/** Deterministic pseudo-random bytes, so a corrupted transfer cannot match by accident. */
function patternBytes(length: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

async function readAllRequest(req: http.IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of req) parts.push(part as Buffer)
  return Buffer.concat(parts)
}

function listen(server: http.Server | net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port))
  })
}

describe('httpFetch against node:http', () => {
  const big = patternBytes(5 * 1024 * 1024, 42)
  let server: http.Server
  let base: string
  /** Resolved by the streaming test once its client has seen the first chunk. */
  let releaseStream: () => void = () => {}
  const seen: Array<{ url: string; method: string; headers: http.IncomingHttpHeaders; body: string }> = []

  beforeAll(async () => {
    server = http.createServer(async (req, res) => {
      const url = new URL(req.url!, 'http://x')
      const body = await readAllRequest(req)
      seen.push({ url: req.url!, method: req.method!, headers: req.headers, body: body.toString('latin1') })
      switch (url.pathname) {
        case '/length':
          res.setHeader('content-length', '12')
          res.setHeader('x-custom', 'yes')
          res.end('hello length')
          return
        case '/chunked':
          res.setHeader('trailer', 'x-trailer')
          res.write('one,')
          res.write('two,')
          res.addTrailers({ 'x-trailer': 'ignored' })
          res.end('three')
          return
        case '/big':
          res.setHeader('content-length', String(big.length))
          res.end(big)
          return
        case '/big-chunked':
          for (let i = 0; i < big.length; i += 100_000) res.write(big.subarray(i, i + 100_000))
          res.end()
          return
        case '/stream':
          res.write('first')
          await new Promise<void>((resolve) => {
            releaseStream = resolve
          })
          res.end('second')
          return
        case '/echo':
          res.setHeader('content-type', 'application/octet-stream')
          res.end(body)
          return
        case '/redirect':
          res.writeHead(302, { location: `/length?from=${url.searchParams.get('n') ?? ''}` })
          res.end('moved')
          return
        case '/chain': {
          const n = Number(url.searchParams.get('n'))
          res.writeHead(302, { location: n > 0 ? `/chain?n=${n - 1}` : '/length' })
          res.end()
          return
        }
        case '/see-other':
          res.writeHead(303, { location: '/echo' })
          res.end()
          return
        case '/temporary':
          res.writeHead(307, { location: '/echo' })
          res.end()
          return
        case '/to-https':
          res.writeHead(301, { location: 'https://example.test/' })
          res.end()
          return
        case '/cut':
          res.setHeader('content-length', '1000')
          res.write('x'.repeat(100), () => setTimeout(() => res.socket?.destroy(), 20))
          return
        default:
          res.statusCode = 404
          res.end('no such thing')
      }
    })
    base = `http://127.0.0.1:${await listen(server)}`
  })

  afterAll(async () => {
    releaseStream()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it('reads a Content-Length response with status, statusText and headers', async () => {
    const response = await httpFetch(openTcp, `${base}/length`)
    expect(response).toBeInstanceOf(Response)
    expect(response.status).toBe(200)
    expect(response.statusText).toBe('OK')
    expect(response.headers.get('x-custom')).toBe('yes')
    expect(response.url).toBe(`${base}/length`)
    expect(response.redirected).toBe(false)
    expect(await response.text()).toBe('hello length')
    const request = seen.at(-1)!
    expect(request.headers.host).toBe(base.slice('http://'.length))
    expect(request.headers.connection).toBe('close')
  })

  it('reads a chunked response and ignores its trailers', async () => {
    const response = await httpFetch(openTcp, `${base}/chunked`)
    expect(response.headers.get('transfer-encoding')).toBe('chunked')
    expect(await response.text()).toBe('one,two,three')
  })

  it('carries 5 MB byte-exact, with Content-Length and chunked', async () => {
    const expected = await sha256(big)
    for (const path of ['/big', '/big-chunked']) {
      const response = await httpFetch(openTcp, `${base}${path}`)
      const received = new Uint8Array(await response.arrayBuffer())
      expect(received.length).toBe(big.length)
      expect(await sha256(received)).toBe(expected)
    }
  })

  it('streams: the first chunk arrives before the server ends the response', async () => {
    const response = await httpFetch(openTcp, `${base}/stream`)
    const reader = response.body!.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toBe('first')
    // Only now may the server finish; a buffering client would never have returned the first chunk.
    releaseStream()
    let rest = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      rest += new TextDecoder().decode(value)
    }
    expect(rest).toBe('second')
  })

  it('POSTs string, bytes and streamed bodies', async () => {
    const text = await httpFetch(openTcp, `${base}/echo`, { method: 'POST', body: 'plain text body' })
    expect(await text.text()).toBe('plain text body')
    expect(seen.at(-1)!.headers['content-length']).toBe('15')
    expect(seen.at(-1)!.headers['content-type']).toBe('text/plain;charset=UTF-8')

    const payload = patternBytes(300_000, 7)
    const bytes = await httpFetch(openTcp, `${base}/echo`, { method: 'PUT', body: payload })
    expect(await sha256(new Uint8Array(await bytes.arrayBuffer()))).toBe(await sha256(payload))

    const parts = ['streamed ', 'in ', 'three parts']
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = parts.shift()
        if (next === undefined) controller.close()
        else controller.enqueue(new TextEncoder().encode(next))
      },
    })
    const streamed = await httpFetch(openTcp, `${base}/echo`, { method: 'POST', body: stream })
    expect(await streamed.text()).toBe('streamed in three parts')
    expect(seen.at(-1)!.headers['transfer-encoding']).toBe('chunked')
    expect(seen.at(-1)!.headers['content-length']).toBeUndefined()
  })

  it('follows redirects and reports the final URL', async () => {
    const response = await httpFetch(openTcp, `${base}/redirect?n=1`)
    expect(response.status).toBe(200)
    expect(response.redirected).toBe(true)
    expect(response.url).toBe(`${base}/length?from=1`)
    expect(await response.text()).toBe('hello length')

    const chained = await httpFetch(openTcp, `${base}/chain?n=19`)
    expect(await chained.text()).toBe('hello length')
    await expect(httpFetch(openTcp, `${base}/chain?n=20`)).rejects.toThrow(/too many redirects/)
  })

  it('turns POST into GET on 303 and keeps the body on 307', async () => {
    const seeOther = await httpFetch(openTcp, `${base}/see-other`, { method: 'POST', body: 'dropped' })
    expect(await seeOther.text()).toBe('')
    expect(seen.at(-1)).toMatchObject({ method: 'GET', body: '' })
    expect(seen.at(-1)!.headers['content-type']).toBeUndefined()

    const temporary = await httpFetch(openTcp, `${base}/temporary`, { method: 'POST', body: 'kept' })
    expect(await temporary.text()).toBe('kept')
    expect(seen.at(-1)).toMatchObject({ method: 'POST', body: 'kept' })

    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('once'))
        controller.close()
      },
    })
    await expect(httpFetch(openTcp, `${base}/temporary`, { method: 'POST', body: stream })).rejects.toThrow(/stream and cannot be sent again/)
  })

  it('does not follow redirects when told not to', async () => {
    const manual = await httpFetch(openTcp, `${base}/redirect`, { redirect: 'manual' })
    expect(manual.status).toBe(302)
    expect(await manual.text()).toBe('moved')
    await expect(httpFetch(openTcp, `${base}/redirect`, { redirect: 'error' })).rejects.toThrow(/redirect mode is "error"/)
  })

  it('rejects https: clearly, directly and through a redirect', async () => {
    await expect(httpFetch(openTcp, 'https://example.test/')).rejects.toThrow(/https: is not supported over the overlay/)
    await expect(httpFetch(openTcp, `${base}/to-https`)).rejects.toThrow(/https: is not supported over the overlay/)
  })

  it('keeps a 404 status and its body', async () => {
    const response = await httpFetch(openTcp, `${base}/missing`)
    expect(response.status).toBe(404)
    expect(response.statusText).toBe('Not Found')
    expect(response.ok).toBe(false)
    expect(await response.text()).toBe('no such thing')
  })

  it('HEAD gets headers and no body', async () => {
    const response = await httpFetch(openTcp, `${base}/length`, { method: 'HEAD' })
    expect(response.headers.get('content-length')).toBe('12')
    expect(response.body).toBeNull()
  })

  it('errors the body stream clearly when the server closes mid-body', async () => {
    const response = await httpFetch(openTcp, `${base}/cut`)
    expect(response.status).toBe(200)
    await expect(response.text()).rejects.toThrow(/connection closed after 100 of 1000 body bytes|connection failed while reading/)
  })

  it('aborts before the response and while the body streams', async () => {
    const early = new AbortController()
    early.abort()
    await expect(httpFetch(openTcp, `${base}/length`, { signal: early.signal })).rejects.toThrow(/abort/i)

    const during = new AbortController()
    const response = await httpFetch(openTcp, `${base}/stream`, { signal: during.signal })
    const reader = response.body!.getReader()
    await reader.read()
    during.abort()
    await expect(reader.read()).rejects.toThrow(/abort/i)
    releaseStream()
  })
})

describe('httpFetch against misbehaving raw servers', () => {
  const servers: net.Server[] = []
  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve))
  })

  /** A server that answers any connection with `reply` and then closes. */
  async function rawServer(reply: string | Uint8Array): Promise<string> {
    const server = net.createServer((socket) => {
      socket.once('data', () => socket.end(reply))
      socket.on('error', () => {})
    })
    servers.push(server)
    return `http://127.0.0.1:${await listen(server)}/`
  }

  it('reads a body delimited by the connection closing', async () => {
    const url = await rawServer('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the very end')
    expect(await (await httpFetch(openTcp, url)).text()).toBe('until the very end')
  })

  it('skips interim 100 Continue responses', async () => {
    const url = await rawServer('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew')
    const response = await httpFetch(openTcp, url)
    expect(response.status).toBe(201)
    expect(await response.text()).toBe('new')
  })

  it('rejects a malformed status line, naming it', async () => {
    const url = await rawServer('HTTP/1.1 two hundred\r\n\r\n')
    await expect(httpFetch(openTcp, url)).rejects.toThrow(/malformed status line/)
  })

  it('errors the body on an invalid chunk size line', async () => {
    const url = await rawServer('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nxyz\r\n')
    const response = await httpFetch(openTcp, url)
    await expect(response.text()).rejects.toThrow(/invalid chunk size line "xyz"/)
  })

  it('rejects a response head over 64 KiB', async () => {
    const url = await rawServer(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`)
    await expect(httpFetch(openTcp, url)).rejects.toThrow(/response head exceeds 65536 bytes/)
  })

  it('rejects a connection closed before any response', async () => {
    const url = await rawServer('')
    await expect(httpFetch(openTcp, url)).rejects.toThrow(/closed before any response/)
  })
})
