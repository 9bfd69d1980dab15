import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { serveHttp, type AcceptedSocket } from './server.ts'

/** An in-memory connection: what the client writes the server reads, and the other way round. */
function memoryConnection(): { server: AcceptedSocket; client: { writable: WritableStream<Uint8Array>; readable: ReadableStream<Uint8Array> } } {
  const up = new TransformStream<Uint8Array, Uint8Array>()
  const down = new TransformStream<Uint8Array, Uint8Array>()
  return {
    server: { readable: up.readable, writable: down.writable, remoteAddress: '100.64.0.9', remotePort: 40000 },
    client: { writable: up.writable, readable: down.readable },
  }
}

async function readUntilClosed(readable: ReadableStream<Uint8Array>): Promise<string> {
  let text = ''
  const reader = readable.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return text
      text += String.fromCharCode(...value)
    }
  } catch {
    return text // a torn-down connection ends the reply too
  }
}

const latin1 = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))

describe('serveHttp over in-memory connections', () => {
  it('answers whatever bytes arrive with a well-formed response or a close, and keeps serving', async () => {
    const accepted: Array<(socket: AcceptedSocket) => void> = []
    const accept = new ReadableStream<AcceptedSocket>({
      start(controller) {
        accepted.push((socket) => controller.enqueue(socket))
      },
    })
    const errors: unknown[] = []
    const server = serveHttp(accept, async (request) => new Response(`ok ${request.method} ${(await request.text()).length}`), {
      idleTimeoutMs: 0,
      onError: (error) => errors.push(error),
    })
    const prefixes = fc.constantFrom(
      '',
      'GET / HTTP/1.1\r\nHost: h\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\n\r\n',
    )
    await fc.assert(
      fc.asyncProperty(prefixes, fc.uint8Array({ maxLength: 200 }), async (prefix, noise) => {
        const { server: serverSide, client } = memoryConnection()
        accepted[0]!(serverSide)
        const writer = client.writable.getWriter()
        const reply = readUntilClosed(client.readable)
        await writer.write(new Uint8Array([...latin1(prefix), ...noise])).catch(() => {})
        await writer.close().catch(() => {})
        const text = await reply
        // Every response on the connection is a complete status line; nothing else is ever sent.
        for (const status of text.match(/HTTP\/1\.1 \d{3}/g) ?? []) {
          expect(['HTTP/1.1 200', 'HTTP/1.1 400', 'HTTP/1.1 417', 'HTTP/1.1 431', 'HTTP/1.1 501', 'HTTP/1.1 505']).toContain(status)
        }
        if (text.length > 0) expect(text).toMatch(/^HTTP\/1\.1 \d{3} /)
      }),
      { numRuns: 300 },
    )
    expect(errors).toEqual([])

    // The server is still fine: a plain request on a new connection is answered.
    const { server: serverSide, client } = memoryConnection()
    accepted[0]!(serverSide)
    const writer = client.writable.getWriter()
    const reply = readUntilClosed(client.readable)
    await writer.write(latin1('POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc'))
    await writer.close()
    expect(await reply).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok POST 3$/)
    await server.close()
  })

  it('logs a body that contradicts its declared Content-Length and cuts the connection', async () => {
    const { server: serverSide, client } = memoryConnection()
    const accept = new ReadableStream<AcceptedSocket>({
      start(controller) {
        controller.enqueue(serverSide)
        controller.close()
      },
    })
    const errors: unknown[] = []
    const server = serveHttp(accept, () => new Response('abc', { headers: { 'content-length': '10' } }), { onError: (error) => errors.push(error) })
    const writer = client.writable.getWriter()
    const reply = readUntilClosed(client.readable)
    await writer.write(latin1('GET / HTTP/1.1\r\nHost: h\r\n\r\n'))
    const text = await reply
    expect(text).toMatch(/\r\ncontent-length: 10\r\n/)
    expect(text.endsWith('\r\n\r\nabc')).toBe(true)
    expect(String(errors)).toMatch(/body ended after 3 of its 10 Content-Length bytes/)
    await writer.close().catch(() => {})
    await server.closed
  })

  it('hands the handler the remote address and a streaming body', async () => {
    const { server: serverSide, client } = memoryConnection()
    const accept = new ReadableStream<AcceptedSocket>({
      start(controller) {
        controller.enqueue(serverSide)
        controller.close()
      },
    })
    const chunksSeen: string[] = []
    const server = serveHttp(accept, async (request, info) => {
      const reader = request.body!.getReader()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        chunksSeen.push(new TextDecoder().decode(value))
        // Ask for the next chunk only after the first arrived: the body is streamed, not buffered.
        if (chunksSeen.length === 1) void writer.write(latin1('5\r\nworld\r\n0\r\n\r\n'))
      }
      return new Response(`${info.remoteAddress}:${info.remotePort} ${chunksSeen.join('|')}`)
    })
    const writer = client.writable.getWriter()
    const reply = readUntilClosed(client.readable)
    await writer.write(latin1('PUT / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n'))
    const text = await reply
    expect(text).toMatch(/\r\n\r\n100\.64\.0\.9:40000 hello \|world$/)
    await writer.close().catch(() => {})
    await server.closed
  })
})
