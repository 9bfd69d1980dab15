import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fromBase64, generateKeyPair } from '../../crypto/index.ts'
import { acceptInitiation, errorFrame } from './controlbase.ts'
import { PREFACE } from './h2.ts'
import { decodeMapMessage, MapMessageReader, MapStreamError } from './map-stream.ts'
import { Ts2021Connection, Ts2021Error, type Ts2021Event } from './ts2021.ts'

const control = generateKeyPair()
const settingsFrame = Uint8Array.of(0, 0, 0, 4, 0, 0, 0, 0, 0)

function pair() {
  const conn = new Ts2021Connection({ machinePrivate: generateKeyPair().privateKey, controlPublic: control.publicKey, version: 130, authority: 'control.test' })
  const server = acceptInitiation(control.privateKey, fromBase64(conn.handshakeParameter))
  return { conn, server }
}
const early = (json: string): Uint8Array => {
  const body = new TextEncoder().encode(json)
  return Uint8Array.of(0xff, 0xff, 0xff, 0x54, 0x53, 0, 0, body.length >> 8, body.length & 0xff, ...body)
}

describe('Ts2021Connection', () => {
  it('queues a request until the handshake completes, then sends the HTTP/2 preface first inside Noise', () => {
    const { conn, server } = pair()
    conn.request({ method: 'POST', path: '/machine/register' }, new Uint8Array([1]))
    expect(conn.takeOutput()).toEqual([])
    expect(conn.receive(server.response, 0)).toEqual([{ type: 'ready' }])
    const plain = conn.takeOutput().flatMap((r) => server.stream.receive(r))
    const bytes = Buffer.concat(plain)
    expect(bytes.subarray(0, PREFACE.length).toString()).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  })

  it('skips an early payload split across records and hands its JSON over, then reads HTTP/2', () => {
    const { conn, server } = pair()
    conn.receive(server.response, 0)
    const payload = early('{"nodeKeyChallenge":"chalpub:ab"}')
    const events: Ts2021Event[] = []
    events.push(...conn.receive(server.stream.seal(payload.subarray(0, 3)), 0))
    events.push(...conn.receive(server.stream.seal(payload.subarray(3, 12)), 0))
    events.push(...conn.receive(server.stream.seal(Uint8Array.of(...payload.subarray(12), ...settingsFrame)), 0))
    expect(events).toEqual([{ type: 'early', payload: { nodeKeyChallenge: 'chalpub:ab' } }])
    // The SETTINGS frame reached HTTP/2: it answers with a SETTINGS ACK.
    const acks = Buffer.concat(conn.takeOutput().flatMap((r) => server.stream.receive(r)))
    expect(acks.includes(Buffer.from([0, 0, 0, 4, 1, 0, 0, 0, 0]))).toBe(true)
  })

  it('without an early payload the first bytes are HTTP/2 (WebSocket path)', () => {
    const { conn, server } = pair()
    const events = conn.receive(new Uint8Array([...server.response, ...server.stream.seal(settingsFrame)]), 0)
    expect(events).toEqual([{ type: 'ready' }])
  })

  it('a server error frame, a non-JSON early payload and garbage HTTP/2 each close with a typed Ts2021Error', () => {
    const a = pair()
    const closedA = a.conn.receive(errorFrame('nope'), 0).at(-1) as Extract<Ts2021Event, { type: 'closed' }>
    expect(closedA.error).toBeInstanceOf(Ts2021Error)
    expect(closedA.error.code).toBe('server-error')
    const b = pair()
    b.conn.receive(b.server.response, 0)
    const closedB = b.conn.receive(b.server.stream.seal(early('nope')), 0).at(-1) as Extract<Ts2021Event, { type: 'closed' }>
    expect(closedB.error.code).toBe('bad-early-payload')
    const c = pair()
    c.conn.receive(c.server.response, 0)
    const closedC = c.conn.receive(c.server.stream.seal(Uint8Array.of(0, 0, 0, 6, 0, 0, 0, 0, 0)), 0).at(-1) as Extract<Ts2021Event, { type: 'closed' }>
    expect(closedC.error.code).toBe('http2')
    expect(c.conn.closed).toBe(true)
  })

  it('the transport closing during the handshake names both likely causes', () => {
    const { conn } = pair()
    const closed = conn.transportClosed('EOF').at(-1) as Extract<Ts2021Event, { type: 'closed' }>
    expect(closed.error.message).toMatch(/control key.*capability version/)
  })
})

describe('Ts2021Connection fuzz', () => {
  it('arbitrary bytes, before or after the handshake, only ever end in a typed Ts2021Error', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 5 }), fc.boolean(), (handshake, chunks, sealed) => {
        const { conn, server } = pair()
        if (handshake) conn.receive(server.response, 0)
        for (const chunk of chunks) {
          // Sealed chunks reach the HTTP/2 and early-payload parsers; raw ones test the record layer.
          const bytes = handshake && sealed && chunk.length > 0 ? server.stream.seal(chunk) : chunk
          for (const event of conn.receive(bytes, 0)) if (event.type === 'closed') expect(event.error).toBeInstanceOf(Ts2021Error)
        }
      }),
      { numRuns: 200 },
    )
  })
})

describe('map stream framing', () => {
  it('u32 little-endian lengths, any split; a cut message at the end is truncated', () => {
    const r = new MapMessageReader()
    const bytes = Uint8Array.of(2, 0, 0, 0, 0x7b, 0x7d, 3, 0, 0, 0, 0x31)
    const out = [...r.push(bytes.subarray(0, 5)), ...r.push(bytes.subarray(5))]
    expect(out.map((m) => Buffer.from(m).toString())).toEqual(['{}'])
    expect(() => r.end()).toThrow(MapStreamError)
  })
  it('a message that is not a JSON object is bad-json; zstd without a decoder is bad-zstd', () => {
    const code = (run: () => unknown): string => {
      try {
        run()
      } catch (error) {
        return (error as MapStreamError).code
      }
      return 'none'
    }
    expect(code(() => decodeMapMessage(new TextEncoder().encode('[1]')))).toBe('bad-json')
    expect(code(() => decodeMapMessage(Uint8Array.of(0xff, 0xfe)))).toBe('bad-json')
    expect(code(() => decodeMapMessage(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0)))).toBe('bad-zstd')
  })
})
