import fc from 'fast-check'
import { createServer as createH2Server, type Http2Server } from 'node:http2'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { H2_ERROR, H2Connection, H2Error, PREFACE, type H2Event } from './h2.ts'
import { HpackEncoder } from './hpack.ts'

// --- a scripted server side, frame by frame ---

function frame(type: number, flags: number, stream: number, payload: Uint8Array | number[] = []): Uint8Array {
  const p = Uint8Array.from(payload)
  const f = new Uint8Array(9 + p.length)
  f[0] = p.length >> 16
  f[1] = (p.length >> 8) & 0xff
  f[2] = p.length & 0xff
  f[3] = type
  f[4] = flags
  new DataView(f.buffer).setUint32(5, stream)
  f.set(p, 9)
  return f
}
const SETTINGS = (entries: Array<[number, number]> = []): Uint8Array => {
  const p = new Uint8Array(entries.length * 6)
  const v = new DataView(p.buffer)
  entries.forEach(([k, x], i) => {
    v.setUint16(i * 6, k)
    v.setUint32(i * 6 + 2, x)
  })
  return frame(4, 0, 0, p)
}

interface Frame {
  type: number
  flags: number
  stream: number
  payload: Uint8Array
}
function parseFrames(bytes: Uint8Array): Frame[] {
  const frames: Frame[] = []
  let o = 0
  if (Buffer.from(bytes.subarray(0, PREFACE.length)).equals(Buffer.from(PREFACE))) o = PREFACE.length
  while (o < bytes.length) {
    const length = (bytes[o]! << 16) | (bytes[o + 1]! << 8) | bytes[o + 2]!
    frames.push({
      type: bytes[o + 3]!,
      flags: bytes[o + 4]!,
      stream: new DataView(bytes.buffer, bytes.byteOffset).getUint32(o + 5) & 0x7fffffff,
      payload: bytes.slice(o + 9, o + 9 + length),
    })
    o += 9 + length
  }
  return frames
}

function started(): H2Connection {
  const c = new H2Connection({ authority: 'control.example' })
  c.receive(SETTINGS(), 0)
  c.takeOutput()
  return c
}
const responseHeaders = (enc: HpackEncoder, status = 200): Uint8Array =>
  enc.encode([
    [':status', String(status)],
    ['content-type', 'application/json'],
  ])

describe('H2Connection (scripted server)', () => {
  it('starts with the preface, SETTINGS (push off) and a connection WINDOW_UPDATE, and ACKs the server SETTINGS', () => {
    const c = new H2Connection({ authority: 'control.example' })
    const out = c.takeOutput()
    expect(Buffer.from(out.subarray(0, 24)).toString()).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
    const frames = parseFrames(out)
    expect(frames.map((f) => f.type)).toEqual([4, 8])
    c.receive(
      SETTINGS([
        [4, 1 << 20],
        [5, 1 << 20],
      ]),
      0,
    )
    expect(parseFrames(c.takeOutput())).toEqual([{ type: 4, flags: 1, stream: 0, payload: new Uint8Array(0) }])
  })

  it('answers PING with a PING ACK carrying the same 8 bytes', () => {
    const c = started()
    c.receive(frame(6, 0, 0, [1, 2, 3, 4, 5, 6, 7, 8]), 1)
    expect(parseFrames(c.takeOutput())).toEqual([{ type: 6, flags: 1, stream: 0, payload: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }])
  })

  it('decodes HEADERS continued by CONTINUATION, then DATA and trailers, across three concurrent streams', () => {
    const c = started()
    const ids = [1, 2, 3].map(() => c.request({ method: 'GET', path: '/' }))
    expect(ids).toEqual([1, 3, 5])
    const enc = new HpackEncoder()
    const events: H2Event[] = []
    for (const id of [5, 1, 3]) {
      const block = enc.encode([
        [':status', '200'],
        ['x-stream', String(id)],
        ['x-pad', 'p'.repeat(100)],
      ])
      events.push(...c.receive(frame(1, 0, id, block.subarray(0, 10)), 1))
      events.push(...c.receive(frame(9, 0, id, block.subarray(10, 20)), 1))
      events.push(...c.receive(frame(9, 4, id, block.subarray(20)), 1))
    }
    events.push(...c.receive(frame(0, 0x8, 3, [2, 0x68, 0x69, 0, 0]), 2)) // padded DATA "hi"
    events.push(...c.receive(frame(1, 5, 3, enc.encode([['grpc-status', '0']])), 2)) // trailers
    events.push(...c.receive(frame(0, 1, 1, []), 2))
    expect(events.filter((e) => e.type === 'response').map((e) => e.type === 'response' && [e.stream, e.headers[1]![1]])).toEqual([
      [5, '5'],
      [1, '1'],
      [3, '3'],
    ])
    expect(events.find((e) => e.type === 'data')).toEqual({ type: 'data', stream: 3, data: Uint8Array.of(0x68, 0x69) })
    expect(events.filter((e) => e.type === 'end')).toEqual([
      { type: 'end', stream: 3, trailers: [['grpc-status', '0']] },
      { type: 'end', stream: 1 },
    ])
  })

  it('a frame between HEADERS and its CONTINUATION is a connection PROTOCOL_ERROR: GOAWAY, streams reset, closed', () => {
    const c = started()
    c.request({ method: 'GET', path: '/' })
    const block = responseHeaders(new HpackEncoder())
    c.receive(frame(1, 0, 1, block.subarray(0, 2)), 1)
    const events = c.receive(frame(6, 0, 0, new Uint8Array(8)), 1)
    expect(events.map((e) => e.type)).toEqual(['reset', 'closed'])
    const closed = events[1] as Extract<H2Event, { type: 'closed' }>
    expect(closed.error).toBeInstanceOf(H2Error)
    expect(closed.error.h2Code).toBe(H2_ERROR.PROTOCOL_ERROR)
    const goaway = parseFrames(c.takeOutput()).find((f) => f.type === 7)!
    expect(new DataView(goaway.payload.buffer).getUint32(4)).toBe(H2_ERROR.PROTOCOL_ERROR)
    expect(c.acceptsRequests).toBe(false)
  })

  it('RST_STREAM resets only its stream; GOAWAY refuses streams above lastStream and no new ones are opened', () => {
    const c = started()
    const [a, b, d] = [c.request({ method: 'GET', path: '/a' }), c.request({ method: 'GET', path: '/b' }), c.request({ method: 'GET', path: '/c' })]
    expect(c.receive(frame(3, 0, a, [0, 0, 0, 8]), 1)).toEqual([{ type: 'reset', stream: a, code: 8, reason: expect.stringContaining('reset') }])
    const events = c.receive(frame(7, 0, 0, [0, 0, 0, b, 0, 0, 0, 0, ...Buffer.from('bye')]), 1)
    expect(events[0]).toEqual({ type: 'goaway', lastStream: b, code: 0, debug: 'bye' })
    expect(events.slice(1)).toEqual([{ type: 'reset', stream: d, code: H2_ERROR.REFUSED_STREAM, reason: expect.stringContaining('GOAWAY') }])
    expect(c.acceptsRequests).toBe(false)
    expect(() => c.request({ method: 'GET', path: '/' })).toThrow(H2Error)
    // Stream b is still served.
    expect(c.receive(frame(1, 5, b, responseHeaders(new HpackEncoder())), 1).map((e) => e.type)).toEqual(['response', 'end'])
  })

  it('sends a body only as far as the peer windows allow, resuming on WINDOW_UPDATE', () => {
    const c = new H2Connection({ authority: 'h' })
    c.receive(SETTINGS([[4, 1000]]), 0)
    c.takeOutput()
    const id = c.request({ method: 'POST', path: '/p' }, new Uint8Array(2500).fill(7))
    const sent = () => parseFrames(c.takeOutput()).filter((f) => f.type === 0)
    let frames = sent()
    expect(frames.map((f) => f.payload.length)).toEqual([1000])
    c.receive(frame(8, 0, id, [0, 0, 0x07, 0xd0]), 1) // +2000 on the stream
    frames = sent()
    expect(frames.map((f) => f.payload.length)).toEqual([1500])
    expect(frames[0]!.flags & 1).toBe(1) // END_STREAM on the last chunk
  })

  it("a SETTINGS_INITIAL_WINDOW_SIZE change moves open streams' send windows (may go negative)", () => {
    const c = started()
    const id = c.request({ method: 'POST', path: '/p' }, new Uint8Array(70_000), true)
    expect(
      parseFrames(c.takeOutput())
        .filter((f) => f.type === 0)
        .reduce((n, f) => n + f.payload.length, 0),
    ).toBe(65_535)
    c.receive(SETTINGS([[4, 65_535 + 10]]), 1)
    const data = parseFrames(c.takeOutput()).filter((f) => f.type === 0)
    // The connection window (65535) is also used up, so nothing more until it grows.
    expect(data).toEqual([])
    c.receive(frame(8, 0, 0, [0, 0, 0x10, 0]), 1)
    expect(
      parseFrames(c.takeOutput())
        .filter((f) => f.type === 0 && f.stream === id)
        .map((f) => f.payload.length),
    ).toEqual([10])
  })

  it('returns receive window to the server as data is delivered, so a long stream never stalls', () => {
    const c = started()
    const id = c.request({ method: 'POST', path: '/machine/map' })
    c.receive(frame(1, 4, id, responseHeaders(new HpackEncoder())), 0)
    const credit = { conn: 0, stream: 0 }
    const frames = 1100
    const payload = frame(0, 0, id, new Uint8Array(16_384))
    for (let i = 0; i < frames; i++) {
      // 1100 × 16 KiB ≈ 17.2 MiB: more than both advertised windows (4 MiB per stream, 16 MiB in all).
      const events = c.receive(payload, i)
      expect(events.map((e) => e.type)).toEqual(['data'])
      for (const f of parseFrames(c.takeOutput()).filter((f) => f.type === 8)) {
        const inc = new DataView(f.payload.buffer).getUint32(0)
        if (f.stream === 0) credit.conn += inc
        else credit.stream += inc
      }
    }
    const total = frames * 16_384
    // Whatever was not returned yet is at most half a window: the server always has room left.
    expect(total - credit.stream).toBeLessThanOrEqual(2 * 1024 * 1024)
    expect(total - credit.conn).toBeLessThanOrEqual(8 * 1024 * 1024)
    expect(credit.conn).toBeGreaterThan(0)
  })

  it('overrunning our receive window is a FLOW_CONTROL_ERROR; a frame over 16 KiB is a FRAME_SIZE_ERROR', () => {
    const c = started()
    const id = c.request({ method: 'GET', path: '/' })
    c.receive(frame(1, 4, id, responseHeaders(new HpackEncoder())), 0)
    const big = frame(0, 0, id, new Uint8Array(16_385))
    const events = c.receive(big, 0)
    expect((events.at(-1) as Extract<H2Event, { type: 'closed' }>).error.h2Code).toBe(H2_ERROR.FRAME_SIZE_ERROR)
  })

  it('a server push, DATA on stream 0 and a non-SETTINGS first frame are each a connection PROTOCOL_ERROR', () => {
    for (const bytes of [frame(5, 4, 1, [0, 0, 0, 2]), frame(0, 0, 0, [1])]) {
      const c = started()
      c.request({ method: 'GET', path: '/' })
      const last = c.receive(bytes, 0).at(-1) as Extract<H2Event, { type: 'closed' }>
      expect(last.error.h2Code).toBe(H2_ERROR.PROTOCOL_ERROR)
    }
    const fresh = new H2Connection({ authority: 'h' })
    expect((fresh.receive(frame(6, 0, 0, new Uint8Array(8)), 0).at(-1) as Extract<H2Event, { type: 'closed' }>).error.h2Code).toBe(H2_ERROR.PROTOCOL_ERROR)
  })

  it('arbitrary bytes after the server preface only ever give events or a typed H2Error (never a throw)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 6 }), fc.boolean(), (chunks, withFrames) => {
        const c = started()
        c.request({ method: 'POST', path: '/x' }, Uint8Array.of(1, 2, 3))
        c.request({ method: 'GET', path: '/y' })
        const pieces = withFrames ? chunks.map((p, i) => frame((p[0] ?? 0) % 10, p[1] ?? 0, i % 4, p.subarray(2))) : chunks
        for (const piece of pieces) {
          for (const e of c.receive(piece, 0)) if (e.type === 'closed') expect(e.error).toBeInstanceOf(H2Error)
          c.takeOutput()
        }
      }),
      { numRuns: 3000 },
    )
  })
})

// --- against a real HTTP/2 server (Node's nghttp2) over loopback TCP ---

let server: Http2Server
let port = 0
const big = new Uint8Array(6 * 1024 * 1024).map((_, i) => (i * 31) & 0xff)

beforeAll(async () => {
  server = createH2Server()
  server.on('stream', (stream, headers) => {
    const path = headers[':path']
    if (path === '/big') {
      stream.respond({ ':status': 200, 'x-long': 'v'.repeat(20_000) })
      stream.end(Buffer.from(big))
    } else if (path === '/echo') {
      const hash = createHash('sha256')
      let n = 0
      stream.on('data', (d: Buffer) => {
        hash.update(d)
        n += d.length
      })
      stream.on('end', () => {
        stream.respond({ ':status': 201, 'x-header-bytes': String(String(headers['x-long'] ?? '').length) })
        stream.end(`${n} ${hash.digest('hex')}`)
      })
    } else {
      stream.respond({ ':status': 404 })
      stream.end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as { port: number }).port
})
afterAll(() => server.close())

function drive(socket: Socket, c: H2Connection, onEvent: (e: H2Event) => void): void {
  socket.on('data', (d: Buffer) => {
    for (const e of c.receive(new Uint8Array(d), Date.now())) onEvent(e)
    const out = c.takeOutput()
    if (out.length) socket.write(out)
  })
  socket.write(c.takeOutput())
}

describe('H2Connection against node:http2 (nghttp2)', () => {
  it('runs concurrent streams: a 6 MiB download with a 20 KB header (CONTINUATION), a 300 KB upload with a 20 KB request header, a 404', async () => {
    const socket = connect(port, '127.0.0.1')
    const c = new H2Connection({ authority: `127.0.0.1:${port}`, scheme: 'http' })
    const upload = new Uint8Array(300_000).map((_, i) => i & 0xff)
    const results = new Map<number, { status?: number; headers?: Array<[string, string]>; data: Uint8Array[]; ended: boolean }>()
    const done = new Promise<void>((resolve, reject) => {
      drive(socket, c, (e) => {
        if (e.type === 'closed' || e.type === 'reset') return reject(new Error(`${e.type}: ${'error' in e ? e.error.message : e.reason}`))
        if (e.type === 'goaway' || e.type === 'pong') return
        const r = results.get(e.stream)!
        if (e.type === 'response') Object.assign(r, { status: e.status, headers: e.headers })
        if (e.type === 'data') r.data.push(e.data)
        if (e.type === 'end') r.ended = true
        if ([...results.values()].every((x) => x.ended)) resolve()
      })
    })
    const bigId = c.request({ method: 'GET', path: '/big' })
    const echoId = c.request({ method: 'POST', path: '/echo', headers: [['x-long', 'w'.repeat(20_000)]] }, upload)
    const missing = c.request({ method: 'GET', path: '/nope' })
    for (const id of [bigId, echoId, missing]) results.set(id, { data: [], ended: false })
    socket.write(c.takeOutput())
    await done
    socket.destroy()
    const bigResult = results.get(bigId)!
    expect(bigResult.status).toBe(200)
    expect(bigResult.headers!.find(([n]) => n === 'x-long')![1].length).toBe(20_000)
    expect(createHash('sha256').update(Buffer.concat(bigResult.data)).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'))
    const echo = results.get(echoId)!
    expect(echo.status).toBe(201)
    expect(echo.headers!.find(([n]) => n === 'x-header-bytes')![1]).toBe('20000')
    expect(Buffer.concat(echo.data).toString()).toBe(`300000 ${createHash('sha256').update(upload).digest('hex')}`)
    expect(results.get(missing)!.status).toBe(404)
  })
})
