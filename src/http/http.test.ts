import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import zlib from 'node:zlib'
import { createHttpClient, httpFetch, type OpenConnection } from './client.ts'
import { fromNodeSocket } from './node-socket.ts'
import { serveHttp, type AcceptedSocket, type HttpHandler, type HttpServer, type ServeHttpOptions } from './server.ts'

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
    // A client that gives up mid-upload makes reading the request fail; that request is simply dropped.
    server = http.createServer((req, res) => void handle(req, res).catch(() => res.destroy()))
    const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
      const url = new URL(req.url!, 'http://x')
      if (url.pathname === '/too-large') {
        res.writeHead(413, { connection: 'close' })
        res.end('too large')
        return
      }
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
        case '/gzip':
          res.writeHead(200, { 'content-encoding': 'gzip', 'x-accept-encoding': req.headers['accept-encoding'] ?? '' })
          res.end(zlib.gzipSync(Buffer.from('compressed '.repeat(1000))))
          return
        case '/deflate':
          res.writeHead(200, { 'content-encoding': 'deflate' })
          res.end(zlib.deflateSync(Buffer.from('deflated text')))
          return
        case '/cut':
          res.setHeader('content-length', '1000')
          res.write('x'.repeat(100), () => setTimeout(() => res.socket?.destroy(), 20))
          return
        default:
          res.statusCode = 404
          res.end('no such thing')
      }
    }
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

  it('decodes gzip and deflate content codings like fetch', async () => {
    const gzip = await httpFetch(openTcp, `${base}/gzip`)
    expect(gzip.headers.get('content-encoding')).toBe('gzip')
    expect(gzip.headers.get('x-accept-encoding')).toBe('gzip, deflate')
    expect(await gzip.text()).toBe('compressed '.repeat(1000))
    expect(await (await httpFetch(openTcp, `${base}/deflate`)).text()).toBe('deflated text')
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

  it('rejects with the cause when the request body stream fails', async () => {
    const failing = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('partial'))
        controller.error(new Error('disk on fire'))
      },
    })
    await expect(httpFetch(openTcp, `${base}/echo`, { method: 'POST', body: failing })).rejects.toThrow(/body stream failed: disk on fire/)
  })

  it('gets an early response while its upload is refused', async () => {
    let sent = 0
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > 50_000_000) return controller.close()
        sent += 65_536
        controller.enqueue(new Uint8Array(65_536))
      },
    })
    const response = await httpFetch(openTcp, `${base}/too-large`, { method: 'POST', body: endless })
    expect(response.status).toBe(413)
    expect(await response.text()).toBe('too large')
    expect(sent).toBeLessThan(50_000_000)
  })

  it('closes the connection when the response body is cancelled', async () => {
    const closedOnServer = new Promise<void>((resolve) => server.once('request', (_req, res) => res.once('close', resolve)))
    const response = await httpFetch(openTcp, `${base}/stream`)
    const reader = response.body!.getReader()
    await reader.read()
    await reader.cancel()
    await closedOnServer
    releaseStream()
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

  it('names the endpoint when the connection cannot be opened', async () => {
    const closed = net.createServer()
    const port = await listen(closed)
    await new Promise((resolve) => closed.close(resolve))
    await expect(httpFetch(openTcp, `http://127.0.0.1:${port}/`)).rejects.toThrow(new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`))
  })

  it('rejects a connection closed before any response', async () => {
    const url = await rawServer('')
    await expect(httpFetch(openTcp, url)).rejects.toThrow(/closed before any response/)
  })
})

/** Accepted sockets of a real `net.Server` as the stream `serveHttp` consumes. */
function acceptStream(server: net.Server): ReadableStream<AcceptedSocket> {
  let cancelled = false
  return new ReadableStream<AcceptedSocket>({
    start(controller) {
      server.on('connection', (socket) => {
        if (cancelled) socket.destroy()
        else controller.enqueue(fromNodeSocket(socket))
      })
      server.on('close', () => {
        if (!cancelled) controller.close()
      })
    },
    cancel() {
      cancelled = true
      server.close()
    },
  })
}

/** Sends raw bytes on a fresh connection and collects everything until the server closes. */
async function rawExchange(port: number, payload: string | Uint8Array): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  socket.write(payload)
  const parts: Buffer[] = []
  socket.on('data', (part: Buffer) => parts.push(part))
  await once(socket, 'close')
  return Buffer.concat(parts).toString('latin1')
}

describe('serveHttp against node:http and fetch', () => {
  let listener: net.Server
  let server: HttpServer
  let base: string
  let port: number
  const errors: unknown[] = []
  let sawAbort: (reason: unknown) => void = () => {}
  let endlessCancelled: (reason: unknown) => void = () => {}
  const remotes: Array<{ remoteAddress: string; remotePort: number }> = []

  const handler: HttpHandler = async (request, info) => {
    remotes.push(info)
    const url = new URL(request.url)
    switch (url.pathname) {
      case '/hello':
        return new Response(`hello ${request.method} ${url.search}`, {
          headers: {
            'x-seen-agent': request.headers.get('x-agent') ?? '',
            'x-raw-names': info.rawHeaders.map(([name]) => name).join(','),
          },
        })
      case '/echo': {
        const body = new Uint8Array(await request.arrayBuffer())
        return new Response(body, { headers: { 'x-body-sha256': await sha256(body), 'x-request-te': request.headers.get('transfer-encoding') ?? '' } })
      }
      case '/echo-stream':
        // The response body is the request body, streamed through without buffering.
        return new Response(request.body, { headers: { 'content-type': 'application/octet-stream' } })
      case '/stream': {
        let n = 0
        return new Response(
          new ReadableStream<Uint8Array>({
            async pull(controller) {
              await new Promise((resolve) => setTimeout(resolve, 1))
              if (n === 3) controller.close()
              else controller.enqueue(new TextEncoder().encode(`part${n++};`))
            },
          }),
        )
      }
      case '/broken-stream':
        return new Response(
          new ReadableStream<Uint8Array>({
            async pull(controller) {
              controller.enqueue(new TextEncoder().encode('some bytes'))
              await new Promise((resolve) => setTimeout(resolve, 5))
              controller.error(new Error('generator crashed'))
            },
          }),
        )
      case '/used-body': {
        const used = new Response('spent')
        await used.text()
        return used
      }
      case '/not-a-response':
        return 'a string' as unknown as Response
      case '/wait-for-abort':
        return new Promise<Response>((resolve) => {
          request.signal.addEventListener('abort', () => {
            sawAbort(request.signal.reason)
            resolve(new Response('too late'))
          })
        })
      case '/endless': {
        let n = 0
        return new Response(
          new ReadableStream<Uint8Array>({
            async pull(controller) {
              await new Promise((resolve) => setTimeout(resolve, 1))
              controller.enqueue(new TextEncoder().encode(`event ${n++}\n`))
            },
            cancel(reason) {
              endlessCancelled(reason)
            },
          }),
          { headers: { 'content-type': 'text/event-stream' } },
        )
      }
      case '/ignore-body':
        return new Response('did not read it')
      case '/reject-upload':
        return new Response('too big', { status: 413 })
      case '/throw':
        throw new Error('handler exploded')
      case '/cookies': {
        const headers = new Headers()
        headers.append('set-cookie', 'a=1')
        headers.append('set-cookie', 'b=2')
        return new Response(null, { status: 204, headers })
      }
      default:
        return new Response('nothing here', { status: 404 })
    }
  }

  beforeAll(async () => {
    listener = net.createServer()
    port = await listen(listener)
    base = `http://127.0.0.1:${port}`
    const options: ServeHttpOptions = { onError: (error) => errors.push(error) }
    server = serveHttp(acceptStream(listener), handler, options)
  })

  afterAll(async () => {
    await server.close()
  })

  it('answers a GET from global fetch with status, headers and Content-Length', async () => {
    const response = await fetch(`${base}/hello?x=1`, { headers: { 'x-agent': 'undici' } })
    expect(response.status).toBe(200)
    expect(response.headers.get('x-seen-agent')).toBe('undici')
    expect(response.headers.get('content-length')).toBe(String('hello GET ?x=1'.length))
    expect(response.headers.get('date')).not.toBeNull()
    expect(response.headers.get('x-raw-names')).toMatch(/^host,.*x-agent/i)
    expect(await response.text()).toBe('hello GET ?x=1')
    expect(remotes.at(-1)!.remoteAddress).toMatch(/127\.0\.0\.1/)
  })

  it('reads a chunked POST body sent by http.request', async () => {
    const payload = patternBytes(1_000_000, 3)
    const { status, headers, body } = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const request = http.request(`${base}/echo`, { method: 'POST' }, async (response) => {
        resolve({ status: response.statusCode!, headers: response.headers, body: await readAllRequest(response) })
      })
      request.on('error', reject)
      for (let i = 0; i < payload.length; i += 65_536) request.write(payload.subarray(i, i + 65_536))
      request.end()
    })
    expect(status).toBe(200)
    expect(headers['x-request-te']).toBe('chunked')
    expect(headers['x-body-sha256']).toBe(await sha256(payload))
    expect(await sha256(new Uint8Array(body))).toBe(await sha256(payload))
  })

  it('streams a response of unknown length as chunked, as it is produced', async () => {
    const response = await fetch(`${base}/stream`)
    expect(response.headers.get('transfer-encoding')).toBe('chunked')
    expect(response.headers.get('content-length')).toBeNull()
    expect(await response.text()).toBe('part0;part1;part2;')
  })

  it('keeps a connection alive for two requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const get = (path: string): Promise<{ body: string; reused: boolean }> =>
      new Promise((resolve, reject) => {
        const request = http.get(`${base}${path}`, { agent }, async (response) => {
          resolve({ body: (await readAllRequest(response)).toString(), reused: request.reusedSocket })
        })
        request.on('error', reject)
      })
    try {
      const first = await get('/hello?n=1')
      const firstRemote = remotes.at(-1)!
      const second = await get('/hello?n=2')
      expect(first).toEqual({ body: 'hello GET ?n=1', reused: false })
      expect(second).toEqual({ body: 'hello GET ?n=2', reused: true })
      expect(remotes.at(-1)!.remotePort).toBe(firstRemote.remotePort)
    } finally {
      agent.destroy()
    }
  })

  it('discards an unread request body and still serves the next request on the connection', async () => {
    const reply = await rawExchange(
      port,
      'POST /ignore-body HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789' + 'GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    )
    const [firstHead, firstBodyAndSecondHead, secondBody] = reply.split('\r\n\r\n')
    expect(firstHead).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(firstHead).not.toMatch(/connection:/)
    expect(firstBodyAndSecondHead).toMatch(/^did not read itHTTP\/1\.1 200 OK\r\n[^]*connection: close/)
    expect(secondBody).toBe('hello GET ')
  })

  it('refuses a large upload without reading it, and the client still gets the answer', async () => {
    const payload = new Uint8Array(8 * 1024 * 1024)
    const response = await fetch(`${base}/reject-upload`, { method: 'POST', body: payload })
    expect(response.status).toBe(413)
    expect(response.headers.get('connection')).toBe('close')
    expect(await response.text()).toBe('too big')
  })

  it("aborts the handler's request.signal when the client hangs up before the response", async () => {
    const aborted = new Promise<unknown>((resolve) => {
      sawAbort = resolve
    })
    const socket = net.connect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    socket.end('GET /wait-for-abort HTTP/1.1\r\nHost: h\r\n\r\n')
    expect(String(await aborted)).toMatch(/client closed the connection before the response/)
    socket.destroy()
  })

  it('cancels an endless response stream once the client goes away', async () => {
    const cancelled = new Promise<unknown>((resolve) => {
      endlessCancelled = resolve
    })
    const controller = new AbortController()
    const response = await fetch(`${base}/endless`, { signal: controller.signal })
    const reader = response.body!.getReader()
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^event 0/)
    controller.abort()
    expect(await cancelled).toBeDefined()
  })

  it('answers pipelined requests in order without mixing them up', async () => {
    const reply = await rawExchange(
      port,
      'GET /hello?a HTTP/1.1\r\nHost: h\r\n\r\nPOST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
        'GET /hello?c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    )
    const bodies = reply.split(/HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n/).slice(1)
    expect(bodies).toEqual(['hello GET ?a', 'abc', 'hello GET ?c'])
  })

  it('turns a throwing handler into 500 and logs the error', async () => {
    const before = errors.length
    const response = await fetch(`${base}/throw`)
    expect(response.status).toBe(500)
    expect(await response.text()).toBe('Internal Server Error\n')
    expect(errors.length).toBe(before + 1)
    expect((errors.at(-1) as Error).message).toBe('handler exploded')
  })

  it('logs a handler that returns something other than a Response and answers 500', async () => {
    const before = errors.length
    const response = await fetch(`${base}/not-a-response`)
    expect(response.status).toBe(500)
    await response.text()
    expect(String(errors.slice(before))).toMatch(/handler returned string instead of a Response/)
  })

  it('answers 500 for a Response whose body the handler already consumed', async () => {
    const before = errors.length
    const response = await fetch(`${base}/used-body`)
    expect(response.status).toBe(500)
    await response.text()
    expect(String(errors.slice(before))).toMatch(/body was already used/)
  })

  it('cuts the connection when the response body stream fails, so the client sees an error', async () => {
    const before = errors.length
    const response = await fetch(`${base}/broken-stream`)
    expect(response.status).toBe(200)
    await expect(response.text()).rejects.toThrow()
    expect(String(errors.slice(before))).toMatch(/generator crashed/)
  })

  it('sends 100 Continue when the handler reads a body the client holds back', async () => {
    const socket = net.connect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    let received = ''
    socket.on('data', (part: Buffer) => {
      received += part.toString('latin1')
    })
    socket.write('POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n')
    while (!received.includes('\r\n\r\n')) await once(socket, 'data')
    expect(received).toBe('HTTP/1.1 100 Continue\r\n\r\n')
    socket.write('hello')
    await once(socket, 'close')
    expect(received).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nhello$/)
  })

  it('answers an unknown expectation with 417', async () => {
    const reply = await rawExchange(port, 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nExpect: teapot\r\n\r\nx')
    expect(reply).toMatch(/^HTTP\/1\.1 417 Expectation Failed\r\n/)
  })

  it('answers a malformed request with 400 naming the problem', async () => {
    const reply = await rawExchange(port, 'GET / HTTP/1.1\r\nHost : h\r\n\r\n')
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(reply).toMatch(/connection: close/)
    expect(reply).toMatch(/whitespace between header name and colon/)

    const badChunk = await rawExchange(port, 'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n')
    expect(badChunk).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(badChunk).toMatch(/invalid chunk size line "xyz"/)

    const noHost = await rawExchange(port, 'GET / HTTP/1.1\r\n\r\n')
    expect(noHost).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[^]*no Host header/)

    const garbage = await rawExchange(port, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n')
    expect(garbage).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[^]*malformed request line/)
  })

  it('answers an oversized head with 431', async () => {
    const reply = await rawExchange(port, `GET / HTTP/1.1\r\nHost: h\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`)
    expect(reply).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n[^]*request head exceeds 65536 bytes/)
  })

  it('sends no body for HEAD and 204, and keeps repeated Set-Cookie fields apart', async () => {
    const head = await fetch(`${base}/hello`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const raw = await rawExchange(port, 'GET /cookies HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n')
    expect(raw).toMatch(/^HTTP\/1\.1 204 No Content\r\n/)
    expect(raw).toMatch(/set-cookie: a=1\r\nset-cookie: b=2\r\n/)
    expect(raw).not.toMatch(/content-length|transfer-encoding/i)
    expect(raw.endsWith('\r\n\r\n')).toBe(true)
  })

  it('serves an HTTP/1.0 request without Host and closes afterwards', async () => {
    const reply = await rawExchange(port, 'GET /hello HTTP/1.0\r\n\r\n')
    const [head, body] = reply.split('\r\n\r\n')
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*connection: close/)
    expect(body).toBe('hello GET ')
  })

  it('round-trips 5 MB through httpFetch and serveHttp, streamed both ways', async () => {
    const payload = patternBytes(5 * 1024 * 1024, 99)
    let offset = 0
    const upload = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= payload.length) return controller.close()
        controller.enqueue(payload.slice(offset, offset + 200_000))
        offset += 200_000
      },
    })
    const response = await httpFetch(openTcp, `${base}/echo-stream`, { method: 'POST', body: upload })
    expect(response.headers.get('transfer-encoding')).toBe('chunked')
    const received = new Uint8Array(await response.arrayBuffer())
    expect(received.length).toBe(payload.length)
    expect(await sha256(received)).toBe(await sha256(payload))
  })
})

describe('serveHttp lifecycle', () => {
  it('close() stops accepting and ends idle keep-alive connections', async () => {
    const listener = net.createServer()
    const port = await listen(listener)
    const server = serveHttp(acceptStream(listener), () => new Response('ok'), { idleTimeoutMs: 0 })
    const agent = new http.Agent({ keepAlive: true })
    const body = await new Promise<string>((resolve, reject) => {
      http.get(`http://127.0.0.1:${port}/`, { agent }, async (response) => resolve((await readAllRequest(response)).toString())).on('error', reject)
    })
    expect(body).toBe('ok')
    await server.close() // would hang if the idle keep-alive connection were left open
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow()
    agent.destroy()
  })

  it('closes a connection that sends no request within the idle timeout', async () => {
    const listener = net.createServer()
    const port = await listen(listener)
    const server = serveHttp(acceptStream(listener), () => new Response('ok'), { idleTimeoutMs: 50 })
    try {
      const reply = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: h\r\n')
      expect(reply).toBe('')
    } finally {
      await server.close()
    }
  })
})

describe('createHttpClient keeps connections alive', () => {
  it('reuses one connection for sequential requests to node:http', async () => {
    const ports: number[] = []
    const server = http.createServer((req, res) => {
      ports.push(req.socket.remotePort!)
      res.end(`answer ${req.url}`)
    })
    const port = await listen(server)
    const client = createHttpClient(openTcp)
    try {
      for (const path of ['/a', '/b', '/c']) {
        const response = await client.fetch(`http://127.0.0.1:${port}${path}`, path === '/b' ? { method: 'POST', body: 'x' } : {})
        expect(await response.text()).toBe(`answer ${path}`)
      }
      expect(new Set(ports).size).toBe(1)
      expect(client.idleConnections).toBe(1)
    } finally {
      client.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
    expect(client.idleConnections).toBe(0)
  })

  it('does not reuse a connection the server said to close', async () => {
    const ports: number[] = []
    const server = http.createServer((req, res) => {
      ports.push(req.socket.remotePort!)
      res.setHeader('connection', 'close')
      res.end('bye')
    })
    const port = await listen(server)
    const client = createHttpClient(openTcp)
    try {
      for (let i = 0; i < 2; i++) expect(await (await client.fetch(`http://127.0.0.1:${port}/`)).text()).toBe('bye')
      expect(new Set(ports).size).toBe(2)
      expect(client.idleConnections).toBe(0)
    } finally {
      client.close()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('retries once on a fresh connection when a reused one turns out dead', async () => {
    let connections = 0
    // Answers the first request on each connection and hangs up on the second, as a server whose
    // keep-alive timer fired just as the request went out.
    const server = net.createServer((socket) => {
      connections++
      let requests = 0
      socket.on('data', () => {
        requests++
        if (requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
        else socket.destroy()
      })
      socket.on('error', () => {})
    })
    const port = await listen(server)
    const client = createHttpClient(openTcp)
    try {
      expect(await (await client.fetch(`http://127.0.0.1:${port}/`)).text()).toBe('ok')
      expect(await (await client.fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'again' })).text()).toBe('ok')
      expect(connections).toBe(2)
    } finally {
      client.close()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('follows a redirect on the same kept-alive connection', async () => {
    const ports: number[] = []
    const server = http.createServer((req, res) => {
      ports.push(req.socket.remotePort!)
      if (req.url === '/old') {
        res.writeHead(301, { location: '/new' })
        res.end('moved permanently')
      } else {
        res.end('new place')
      }
    })
    const port = await listen(server)
    const client = createHttpClient(openTcp)
    try {
      const response = await client.fetch(`http://127.0.0.1:${port}/old`)
      expect(await response.text()).toBe('new place')
      expect(response.redirected).toBe(true)
      expect(ports).toHaveLength(2)
      expect(ports[0]).toBe(ports[1])
    } finally {
      client.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('keeps one connection alive with serveHttp across requests', async () => {
    const listener = net.createServer()
    const port = await listen(listener)
    const remotePorts: number[] = []
    const server = serveHttp(acceptStream(listener), async (request, info) => {
      remotePorts.push(info.remotePort)
      return new Response(`${request.method} ${await request.text()}`)
    })
    const client = createHttpClient(openTcp)
    try {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('streamed'))
          controller.close()
        },
      })
      expect(await (await client.fetch(`http://127.0.0.1:${port}/`, { method: 'PUT', body: 'one' })).text()).toBe('PUT one')
      expect(await (await client.fetch(`http://127.0.0.1:${port}/`, { method: 'PUT', body: 'two' })).text()).toBe('PUT two')
      // A stream body goes out on a fresh connection, which is then kept as well.
      expect(await (await client.fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: stream })).text()).toBe('POST streamed')
      expect(await (await client.fetch(`http://127.0.0.1:${port}/`)).text()).toBe('GET ')
      expect(remotePorts[0]).toBe(remotePorts[1])
      expect(new Set(remotePorts).size).toBe(2)
    } finally {
      client.close()
      await server.close()
    }
  })
})
