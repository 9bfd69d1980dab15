import { describe, expect, it } from 'vitest'
import { ADDRESS_B, patternBytes } from '../overlay/testing/pair.ts'
import { SocketTestbed } from '../overlay/testing/socket-testbed.ts'
import { createHttpClient, httpFetch, type OpenConnection } from './client.ts'
import { openedSocket } from './direct-socket.ts'
import { serveHttp, type HttpHandler } from './server.ts'

// HTTP over Burrow's own userspace TCP on a simulated link with fake time: the path
// `node.fetch(url)` and `node.serve(port, handler)` take, minus WireGuard.

async function start(handler: HttpHandler, link?: ConstructorParameters<typeof SocketTestbed>[0]) {
  const bed = new SocketTestbed(link)
  const listener = bed.b.listen({ port: 80 })
  const { readable } = await bed.settle(listener.opened)
  // Real timers would not follow the testbed's fake clock, so the idle timeout is off here.
  const server = serveHttp(readable, handler, { idleTimeoutMs: 0 })
  const open: OpenConnection = (host, port) => openedSocket(bed.a.connect({ host, port }))
  return { bed, server, open }
}

describe('HTTP over the overlay TCP stack', () => {
  it('GETs, POSTs and streams 2 MB each way between httpFetch and serveHttp', async () => {
    const { bed, server, open } = await start(async (request, info) => {
      const url = new URL(request.url)
      if (url.pathname === '/hello') return new Response(`hello from ${url.host} to ${info.remoteAddress}`)
      // Only stream work here: real-time async work (WebCrypto) would outrun the testbed's notion of quiet.
      const body = new Uint8Array(await request.arrayBuffer())
      return new Response(body, { headers: { 'x-received': String(body.length) } })
    })
    const hello = await bed.settle(httpFetch(open, `http://${ADDRESS_B}/hello`))
    expect(await bed.settle(hello.text())).toBe(`hello from ${ADDRESS_B} to 100.64.0.1`)

    const payload = patternBytes(2 * 1024 * 1024, 5) as Uint8Array<ArrayBuffer>
    const posted = await bed.settle(httpFetch(open, `http://${ADDRESS_B}/echo`, { method: 'POST', body: payload }))
    expect(posted.headers.get('x-received')).toBe(String(payload.length))
    const echoed = new Uint8Array(await bed.settle(posted.arrayBuffer()))
    expect(Buffer.compare(echoed, payload)).toBe(0)
    await bed.settle(server.close())
  })

  it('keeps one overlay connection alive for several requests, over a lossy link', async () => {
    const ports: number[] = []
    const { bed, server, open } = await start(
      (request, info) => {
        ports.push(info.remotePort)
        return new Response(`got ${new URL(request.url).pathname}`)
      },
      { delayMs: 20, loss: 0.05, reorder: 0.05, reorderDelayMs: 10, seed: 11 },
    )
    const client = createHttpClient(open)
    for (const path of ['/1', '/2', '/3']) {
      const response = await bed.settle(client.fetch(`http://${ADDRESS_B}${path}`))
      expect(await bed.settle(response.text())).toBe(`got ${path}`)
    }
    expect(new Set(ports).size).toBe(1)
    client.close()
    await bed.settle(server.close())
  })
})
