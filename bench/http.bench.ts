// HTTP/1.1 over byte streams: parser speed, and loopback transfers against Node's own http/undici.
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { HttpParser, createHttpClient, httpFetch, serveHttp, type AcceptedSocket, type OpenConnection } from '../src/http/index.ts'
import { fromNodeSocket } from '../src/http/node-socket.ts'
import { measure, type Bench, type BenchResult } from './types.ts'

const BODY_BYTES = 5 * 1024 * 1024
const text = (s: string): Uint8Array => new TextEncoder().encode(s)

const REQUEST_HEAD = text(
  'GET /api/v1/items?page=2&sort=name HTTP/1.1\r\nHost: 100.64.0.2:8080\r\nUser-Agent: bench/1.0\r\n' +
    'Accept: application/json\r\nAccept-Language: en-GB,en;q=0.9\r\nCookie: session=0123456789abcdef; theme=dark\r\n' +
    'Cache-Control: no-cache\r\nX-Request-Id: 5f2b9a3e-1c4d-4e8f-9a7b-2c3d4e5f6a7b\r\n\r\n',
)

function chunkedBody(total: number, chunk: number): Uint8Array[] {
  const parts: Uint8Array[] = [text('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')]
  const data = new Uint8Array(chunk).fill(0x61)
  for (let sent = 0; sent < total; sent += chunk) parts.push(text(`${chunk.toString(16)}\r\n`), data, text('\r\n'))
  parts.push(text('0\r\n\r\n'))
  return parts
}

const openTcp: OpenConnection = async (host, port) => {
  const socket = net.connect({ host, port })
  await once(socket, 'connect')
  return fromNodeSocket(socket)
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
}

async function drain(response: Response): Promise<number> {
  let total = 0
  const reader = response.body!.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return total
    total += value.length
  }
}

const bench: Bench = async () => {
  const results: BenchResult[] = []

  let sink = 0
  const headRate = await measure(() => {
    for (let i = 0; i < 1000; i++) {
      const parser = new HttpParser('request')
      parser.push(REQUEST_HEAD)
      const event = parser.next()
      if (event?.type === 'head') sink += event.head.headers.length
    }
  })
  results.push({ name: 'http parser: request heads (8 fields)', value: headRate * 1000, unit: 'heads/s' })

  const parts = chunkedBody(1024 * 1024, 16 * 1024)
  const chunkedRate = await measure(() => {
    const parser = new HttpParser('response')
    for (const part of parts) {
      parser.push(part)
      for (let event = parser.next(); event !== null; event = parser.next()) if (event.type === 'body') sink += event.data.length
    }
  })
  results.push({ name: 'http parser: chunked body, 16 KiB chunks', value: (chunkedRate * 1024 * 1024) / 1e6, unit: 'MB/s' })

  const body = new Uint8Array(BODY_BYTES).fill(0x62)
  const nodeServer = http.createServer((req, res) => {
    req.resume()
    const answer = req.url === '/small' ? 'small' : body
    res.setHeader('content-length', String(answer.length))
    res.end(answer)
  })
  const nodePort = await listen(nodeServer)
  const listener = net.createServer()
  const ourPort = await listen(listener)
  const accept = new ReadableStream<AcceptedSocket>({
    start(controller) {
      listener.on('connection', (socket) => controller.enqueue(fromNodeSocket(socket)))
    },
  })
  const ourServer = serveHttp(accept, (request) => new Response(request.url.endsWith('/small') ? 'small' : body))
  const client = createHttpClient(openTcp)
  const agent = new http.Agent({ keepAlive: true })
  try {
    const mbps = (rate: number): number => (rate * BODY_BYTES) / 1e6
    const ours = await measure(async () => {
      sink += await drain(await httpFetch(openTcp, `http://127.0.0.1:${nodePort}/`))
    })
    const undici = await measure(async () => {
      sink += await drain(await fetch(`http://127.0.0.1:${nodePort}/`))
    })
    results.push({
      name: 'httpFetch 5 MB from node:http (loopback)',
      value: mbps(ours),
      unit: 'MB/s',
      baseline: mbps(undici),
      ratio: ours / undici,
      note: 'baseline: Node global fetch (undici) on the same server',
    })

    const served = await measure(async () => {
      sink += await drain(await fetch(`http://127.0.0.1:${ourPort}/`))
    })
    const nodeServed = await measure(async () => {
      sink += await drain(await fetch(`http://127.0.0.1:${nodePort}/`))
    })
    results.push({
      name: 'serveHttp 5 MB to undici fetch (loopback)',
      value: mbps(served),
      unit: 'MB/s',
      baseline: mbps(nodeServed),
      ratio: served / nodeServed,
      note: 'baseline: node:http server with the same body',
    })

    const small = await measure(async () => {
      for (let i = 0; i < 20; i++) sink += (await (await client.fetch(`http://127.0.0.1:${ourPort}/small`, { method: 'HEAD' })).text()).length
    })
    const nodeSmall = await measure(async () => {
      for (let i = 0; i < 20; i++) {
        await new Promise<void>((resolve, reject) => {
          http
            .request(`http://127.0.0.1:${nodePort}/small`, { method: 'HEAD', agent }, (res) => res.resume().on('end', resolve))
            .on('error', reject)
            .end()
        })
      }
    })
    results.push({
      name: 'createHttpClient→serveHttp keep-alive HEAD',
      value: small * 20,
      unit: 'req/s',
      baseline: nodeSmall * 20,
      ratio: small / nodeSmall,
      note: 'baseline: node:http Agent keep-alive → node:http server',
    })
  } finally {
    client.close()
    agent.destroy()
    listener.close()
    await ourServer.close()
    nodeServer.closeAllConnections()
    await new Promise((resolve) => nodeServer.close(resolve))
  }
  if (sink === -1) console.log(sink)
  return results
}

export default bench
