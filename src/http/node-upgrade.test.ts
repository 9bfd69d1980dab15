import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { dialHttpUpgrade, type UpgradeRefusal } from './node-upgrade.ts'

let server: Server | undefined
afterEach(() => server?.close())

/** A TCP server that answers the first request head with `respond` and then echoes (after a 101) or stays open. */
async function serve(respond: (requestHead: string, socket: Socket) => void): Promise<URL> {
  server = createServer((socket) => {
    let head = ''
    let answered = false
    socket.on('data', (chunk) => {
      if (answered) return void socket.write(chunk)
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      answered = true
      respond(head, socket)
    })
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  const address = server.address() as { port: number }
  return new URL(`http://127.0.0.1:${address.port}/`)
}

function dial(url: URL, headers: string[] = []) {
  const events: string[] = []
  const received: Uint8Array[] = []
  let refused: UpgradeRefusal | undefined
  const closed = new Promise<string>((resolve) => {
    const socket = dialHttpUpgrade(
      { url, method: 'POST', path: '/upgrade-me', protocol: 'test-proto', headers, serverName: 'test server' },
      {
        onOpen: () => {
          events.push('open')
          socket.send(new TextEncoder().encode('ping'))
        },
        onData: (bytes) => {
          received.push(bytes.slice())
          if (received.reduce((n, b) => n + b.length, 0) >= 'early+ping'.length) socket.close()
        },
        onClose: (reason, refusal) => {
          refused = refusal
          resolve(reason)
        },
      },
    )
  })
  return { events, received, closed, refused: () => refused }
}

describe('dialHttpUpgrade', () => {
  it('sends the upgrade request with its headers, and after 101 hands over the bytes that followed the head and everything after', async () => {
    let requestHead = ''
    const url = await serve((head, socket) => {
      requestHead = head
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test-proto\r\nConnection: Upgrade\r\n\r\nearly+')
    })
    const run = dial(url, ['X-Extra: 1'])
    expect(await run.closed).toBe('closed locally')
    expect(run.events).toEqual(['open'])
    expect(new TextDecoder().decode(Buffer.concat(run.received))).toBe('early+ping')
    expect(requestHead).toMatch(/^POST \/upgrade-me HTTP\/1\.1\r\n/)
    expect(requestHead).toContain(`Host: ${url.host}\r\n`)
    expect(requestHead).toContain('Upgrade: test-proto\r\nConnection: Upgrade\r\nX-Extra: 1\r\n')
  })

  it('a refusal from a keep-alive server ends as soon as its Content-Length body has arrived, naming status and body', async () => {
    const url = await serve((_head, socket) => socket.write('HTTP/1.1 426 Upgrade Required\r\nContent-Length: 17\r\n\r\nwrong protocol!\r\n'))
    const run = dial(url)
    expect(await run.closed).toBe('test server refused the test-proto upgrade: HTTP/1.1 426 Upgrade Required — wrong protocol!')
    expect(run.refused()).toEqual({ status: 426, statusLine: 'HTTP/1.1 426 Upgrade Required', body: 'wrong protocol!' })
    expect(run.events).toEqual([])
  })

  it('a refusal with a chunked body ends at the last chunk', async () => {
    const url = await serve((_head, socket) => socket.write('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n'))
    const run = dial(url)
    expect(await run.closed).toMatch(/^test server refused the test-proto upgrade: HTTP\/1\.1 404 Not Found — 4\r\nnope/)
    expect(run.refused()?.status).toBe(404)
  })

  it('a server that is not HTTP, or closes before answering, gives a clear reason', async () => {
    const garbage = await serve((_head, socket) => socket.end('SSH-2.0-OpenSSH\r\n\r\n'))
    expect(await dial(garbage).closed).toBe('test server refused the test-proto upgrade: SSH-2.0-OpenSSH')
    server!.close()
    const silent = await serve((_head, socket) => socket.destroy())
    expect(await dial(silent).closed).toBe('test server closed the connection before answering the upgrade')
  })

  it('a response head that never ends is cut off at 16 KiB', async () => {
    const url = await serve((_head, socket) => socket.write(`HTTP/1.1 101 Switching Protocols\r\nX-Long: ${'a'.repeat(20_000)}`))
    expect(await dial(url).closed).toBe('test server HTTP response head too long')
  })

  it('a refused connection names the socket error', async () => {
    const url = await serve(() => {})
    server!.close()
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(await dial(url).closed).toMatch(/^test server connection error: connect ECONNREFUSED/)
  })
})
