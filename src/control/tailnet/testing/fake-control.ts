// An in-memory ts2021 control server for unit tests: our controlbase responder in front of
// Node's own HTTP/2 server (nghttp2), so the server side speaks real HTTP/2 and each test scripts
// what /machine/register and /machine/map answer. (The same server as client.test.ts's.)
import { createServer, type Http2Server, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2'
import { Duplex } from 'node:stream'
import { fromBase64, generateKeyPair } from '../../../crypto/index.ts'
import { acceptInitiation, INITIATION_LENGTH, type ControlbaseStream } from '../controlbase.ts'
import type { Ts2021Dialer } from '../dial.ts'

/** The control server's Noise key pair (pin its public half as `mkey:`). */
export const fakeControlKey = generateKeyPair()

/** One map-stream message: u32 little-endian length, then the bytes. */
export const frameMessage = (body: Uint8Array | string): Buffer => {
  const bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body)
  const head = Buffer.alloc(4)
  head.writeUInt32LE(bytes.length)
  return Buffer.concat([head, bytes])
}

export type Handler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, body: unknown) => void

/** An in-memory control server; `earlyPayload` makes it send one, as Headscale does on the Upgrade path. */
export function fakeControl(handler: Handler, options: { earlyPayload?: boolean } = {}): { dialer: Ts2021Dialer; dials: () => number; server: Http2Server } {
  const server = createServer()
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = []
    stream.on('data', (d: Buffer) => chunks.push(d))
    stream.on('end', () => handler(stream, headers, JSON.parse(Buffer.concat(chunks).toString() || 'null')))
  })
  let dialCount = 0
  const dialer: Ts2021Dialer = (_url, handshake, handlers) => {
    dialCount++
    let noise: ControlbaseStream | undefined
    let closed = false
    const duplex = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        if (!closed && noise) handlers.onData(noise.seal(new Uint8Array(chunk)))
        done()
      },
    })
    queueMicrotask(() => {
      const init = fromBase64(handshake)
      if (init.length !== INITIATION_LENGTH) throw new Error(`initiation of ${init.length} bytes`)
      const accepted = acceptInitiation(fakeControlKey.privateKey, init)
      noise = accepted.stream
      handlers.onOpen()
      handlers.onData(accepted.response)
      if (options.earlyPayload) {
        const json = Buffer.from('{"nodeKeyChallenge":"chalpub:00"}')
        const head = Buffer.from([0xff, 0xff, 0xff, 0x54, 0x53, 0, 0, 0, json.length])
        handlers.onData(noise.seal(Buffer.concat([head, json])))
      }
      server.emit('connection', duplex)
    })
    return {
      send: (bytes) => {
        if (!noise || closed) return
        for (const plain of noise.receive(bytes)) duplex.push(Buffer.from(plain))
      },
      close: () => {
        if (closed) return
        closed = true
        duplex.destroy()
        handlers.onClose('closed locally')
      },
    }
  }
  return { dialer, dials: () => dialCount, server }
}
