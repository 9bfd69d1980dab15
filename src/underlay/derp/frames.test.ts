import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { concatBytes, fromHex, toHex } from '../../crypto/index.ts'
import { type DerpFrame, DerpFrameError, FrameType, decodeFrame, encodeFrame, MAX_PACKET_SIZE } from './frames.ts'
import { FrameReader } from './frame-reader.ts'

const keyA = Uint8Array.from({ length: 32 }, (_, i) => i)
const keyB = Uint8Array.from({ length: 32 }, (_, i) => 0xff - i)
const hexA = toHex(keyA)
const hexB = toHex(keyB)

// Every frame type with its bytes written out by hand from the protocol description:
// type (1) + big-endian length (4) + payload.
const golden: Array<[string, DerpFrame, string]> = [
  ['ServerKey', { type: 'server-key', key: keyA }, `01 00000028 44455250f09f9491 ${hexA}`],
  ['ClientInfo', { type: 'client-info', clientKey: keyA, sealed: new Uint8Array(40).fill(7) }, `02 00000048 ${hexA} ${'07'.repeat(40)}`],
  ['ServerInfo', { type: 'server-info', sealed: new Uint8Array(40).fill(9) }, `03 00000028 ${'09'.repeat(40)}`],
  ['SendPacket', { type: 'send-packet', destination: keyB, packet: fromHex('deadbeef') }, `04 00000024 ${hexB} deadbeef`],
  ['RecvPacket', { type: 'recv-packet', source: keyA, packet: fromHex('0102') }, `05 00000022 ${hexA} 0102`],
  ['KeepAlive', { type: 'keep-alive' }, '06 00000000'],
  ['NotePreferred', { type: 'note-preferred', preferred: true }, '07 00000001 01'],
  ['NotePreferred(no)', { type: 'note-preferred', preferred: false }, '07 00000001 00'],
  ['PeerGone', { type: 'peer-gone', key: keyB }, `08 00000020 ${hexB}`],
  ['PeerGone(reason)', { type: 'peer-gone', key: keyB, reason: 1 }, `08 00000021 ${hexB} 01`],
  ['PeerPresent', { type: 'peer-present', key: keyA }, `09 00000020 ${hexA}`],
  [
    'PeerPresent(endpoint)',
    { type: 'peer-present', key: keyA, ip: fromHex('00000000000000000000ffff7f000001'), port: 41641, flags: 3 },
    `09 00000033 ${hexA} 00000000000000000000ffff7f000001 a2a9 03`,
  ],
  ['ForwardPacket', { type: 'forward-packet', source: keyA, destination: keyB, packet: fromHex('ff') }, `0a 00000041 ${hexA} ${hexB} ff`],
  ['WatchConns', { type: 'watch-conns' }, '10 00000000'],
  ['ClosePeer', { type: 'close-peer', key: keyA }, `11 00000020 ${hexA}`],
  ['Ping', { type: 'ping', data: fromHex('0102030405060708') }, '12 00000008 0102030405060708'],
  ['Pong', { type: 'pong', data: fromHex('0102030405060708') }, '13 00000008 0102030405060708'],
  ['Health', { type: 'health', problem: 'ünhealthy' }, '14 0000000a c3bc6e6865616c746879'],
  ['Health(clear)', { type: 'health', problem: '' }, '14 00000000'],
  ['Restarting', { type: 'restarting', reconnectInMs: 500, tryForMs: 60000 }, '15 00000008 000001f4 0000ea60'],
  ['Unknown', { type: 'unknown', code: 0x7e, payload: fromHex('abcd') }, '7e 00000002 abcd'],
]

function parseAll(reader: FrameReader): DerpFrame[] {
  const out: DerpFrame[] = []
  for (let raw = reader.next(); raw; raw = reader.next()) out.push(decodeFrame(raw.type, raw.payload))
  return out
}

function normalize(frame: DerpFrame): unknown {
  return JSON.parse(JSON.stringify(frame, (_, v) => (v instanceof Uint8Array ? toHex(v) : v)))
}

describe('DERP frames', () => {
  for (const [name, frame, hex] of golden) {
    it(`${name} encodes to the spec bytes and decodes back`, () => {
      const bytes = encodeFrame(frame)
      expect(toHex(bytes)).toBe(hex.replace(/ /g, ''))
      const reader = new FrameReader()
      reader.push(bytes)
      const [decoded] = parseAll(reader)
      expect(normalize(decoded!)).toEqual(normalize(frame))
    })
  }

  it('covers every known frame type', () => {
    const covered = new Set(golden.map(([, f]) => f.type))
    expect(covered.size).toBe(Object.keys(FrameType).length + 1) // + unknown
  })

  it('rejects a ServerKey with the wrong magic', () => {
    const bytes = encodeFrame({ type: 'server-key', key: keyA })
    bytes[5] = 0x45
    expect(() => decodeFrame(bytes[0]!, bytes.subarray(5))).toThrow(/wrong magic/)
  })

  it('rejects truncated payloads with a typed error', () => {
    expect(() => decodeFrame(FrameType.SendPacket, new Uint8Array(31))).toThrow(DerpFrameError)
    expect(() => decodeFrame(FrameType.Ping, new Uint8Array(7))).toThrow(/Ping frame too short/)
    expect(() => decodeFrame(FrameType.NotePreferred, new Uint8Array(2))).toThrow(/NotePreferred/)
    expect(() => decodeFrame(FrameType.PeerGone, new Uint8Array(3))).toThrow(/PeerGone/)
    expect(() => decodeFrame(FrameType.Health, fromHex('c3'))).toThrow(/UTF-8/)
  })

  it('rejects packets over 64 KiB', () => {
    expect(() => decodeFrame(FrameType.SendPacket, new Uint8Array(32 + MAX_PACKET_SIZE + 1))).toThrow(/exceeds/)
    expect(decodeFrame(FrameType.SendPacket, new Uint8Array(32 + MAX_PACKET_SIZE)).type).toBe('send-packet')
  })

  it('the reader refuses a header announcing an oversize frame, without consuming it', () => {
    const reader = new FrameReader()
    reader.push(fromHex('0400010021'))
    expect(() => reader.next()).toThrow(/announces 65569 bytes, over the 65568-byte limit/)
    expect(reader.buffered).toBe(5)
    const custom = new FrameReader(() => 1000)
    custom.push(fromHex('14000003e9'))
    expect(() => custom.next()).toThrow(/over the 1000-byte limit/)
  })
})

const arbKey = fc.uint8Array({ minLength: 32, maxLength: 32 })
const arbFrame: fc.Arbitrary<DerpFrame> = fc.oneof(
  arbKey.map((key) => ({ type: 'server-key' as const, key })),
  fc.record({ type: fc.constant('send-packet' as const), destination: arbKey, packet: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constant('recv-packet' as const), source: arbKey, packet: fc.uint8Array({ maxLength: 300 }) }),
  fc.constant({ type: 'keep-alive' as const }),
  fc.boolean().map((preferred) => ({ type: 'note-preferred' as const, preferred })),
  fc.record({ type: fc.constant('peer-gone' as const), key: arbKey, reason: fc.integer({ min: 0, max: 1 }) }),
  fc.record({ type: fc.constant('ping' as const), data: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
  fc.record({ type: fc.constant('pong' as const), data: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
  fc.string({ maxLength: 40 }).map((problem) => ({ type: 'health' as const, problem })),
  fc.record({ type: fc.constant('restarting' as const), reconnectInMs: fc.nat(), tryForMs: fc.nat() }),
  fc.record({ type: fc.constant('unknown' as const), code: fc.integer({ min: 0x30, max: 0xff }), payload: fc.uint8Array({ maxLength: 50 }) }),
)

describe('FrameReader over a byte stream', () => {
  it('parses the same frames whatever the chunk boundaries', () => {
    fc.assert(
      fc.property(fc.array(arbFrame, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cutSeeds) => {
        const stream = concatBytes(frames.map(encodeFrame))
        const cuts = [...new Set(cutSeeds.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
        const reader = new FrameReader()
        const parsed: DerpFrame[] = []
        let last = 0
        for (const cut of [...cuts, stream.length]) {
          reader.push(stream.subarray(last, cut))
          parsed.push(...parseAll(reader))
          last = cut
        }
        expect(parsed.map(normalize)).toEqual(frames.map(normalize))
        expect(reader.buffered).toBe(0)
      }),
    )
  })

  it('parses correctly when cut at every single byte boundary', () => {
    const frames = golden.map(([, f]) => f)
    const stream = concatBytes(frames.map(encodeFrame))
    for (let cut = 0; cut <= stream.length; cut++) {
      const reader = new FrameReader()
      reader.push(stream.subarray(0, cut))
      const parsed = parseAll(reader)
      reader.push(stream.subarray(cut))
      parsed.push(...parseAll(reader))
      expect(parsed.map(normalize)).toEqual(frames.map(normalize))
    }
  })

  it('parses a stream fed one byte at a time', () => {
    const frames = golden.map(([, f]) => f)
    const stream = concatBytes(frames.map(encodeFrame))
    const reader = new FrameReader()
    const parsed: DerpFrame[] = []
    for (let i = 0; i < stream.length; i++) {
      reader.push(stream.subarray(i, i + 1))
      parsed.push(...parseAll(reader))
    }
    expect(parsed.map(normalize)).toEqual(frames.map(normalize))
  })

  it('advance points into the received chunk when a frame lies in one, and copies only a frame that spans chunks', () => {
    const first = encodeFrame({ type: 'ping', data: new Uint8Array(8).fill(1) })
    const second = encodeFrame({ type: 'pong', data: new Uint8Array(8).fill(2) })
    const stream = concatBytes([first, second])
    const reader = new FrameReader()
    reader.push(stream.subarray(0, first.length + 3))
    expect(reader.advance()).toBe(true)
    expect([reader.type, reader.start, reader.length]).toEqual([FrameType.Ping, 5, 8])
    expect(reader.bytes.buffer).toBe(stream.buffer)
    expect(reader.advance()).toBe(false)
    reader.push(stream.subarray(first.length + 3))
    expect(reader.advance()).toBe(true)
    expect(reader.type).toBe(FrameType.Pong)
    expect([...reader.bytes.subarray(reader.start, reader.start + reader.length)]).toEqual(Array(8).fill(2))
    expect(reader.bytes.buffer).not.toBe(stream.buffer)
  })
})
