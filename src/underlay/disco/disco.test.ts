import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { fromHex, toHex, boxKey, boxSeal, generateKeyPair } from '../../crypto/index.ts'
import { DiscoError } from './errors.ts'
import { DiscoKeyring, discoSender, looksLikeDisco, openDisco, sealDisco } from './envelope.ts'
import { decodeDiscoMessage, encodeDiscoMessage, type DiscoMessage } from './messages.ts'

// Produced by Tailscale's own disco package (test/go/discogolden: go run .), fixed keys and nonce.
const filled = (start: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff)
const senderPrivate = filled(0x01, 32)
const recipientPrivate = filled(0x41, 32)
const nonce = filled(0xa0, 24)
const txId = filled(0xc0, 12)
const nodeKey = filled(0x60, 32)
const v4Mapped = (a: number, b: number, c: number, d: number): Uint8Array => Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d)
const golden = {
  senderPublic: '07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c',
  recipientPublic: '64b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d48466',
  ping: {
    plain: '0100c0c1c2c3c4c5c6c7c8c9cacb',
    packet:
      '5453f09f92ac07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7ca0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b70d802c6f58ef982579622809c5a9c96807d90943ff5c43482cc68b573993',
  },
  pingNodeKey: {
    plain: '0100c0c1c2c3c4c5c6c7c8c9cacb606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f',
    packet:
      '5453f09f92ac07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7ca0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b71dc247ec11e134d0e50a8539dfb2da5107d90943ff5c43482cc68b573993e85bbfa573003829b0ddc0e2738d4325e9335d90ea7ef96d02cf450e66a05d17',
  },
  pongV4: {
    plain: '0200c0c1c2c3c4c5c6c7c8c9cacb00000000000000000000ffffc0000207a2a9',
    packet:
      '5453f09f92ac07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7ca0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7fd7acee1b2853949bd0ff87fcaaa190704d90943ff5c43482cc68b573993883addc617655e4ed8b45576dfe02f4d3beb',
  },
  pongV6: {
    plain: '0200c0c1c2c3c4c5c6c7c8c9cacb20010db80000000000000000000000010d96',
    packet:
      '5453f09f92ac07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7ca0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7e28cb2759d4a8998925c9a34879a959d04d90943ff5c43482cc68b573993a83bd07e17655e4ed8b4aa891fe02d4b94d4',
  },
  callMeMaybe: {
    plain: '030000000000000000000000ffffc633640104d220010db8000000000000000000000002162e',
    packet:
      '5453f09f92ac07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7ca0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7de4aa0b09a92e145dc769ed9d70ba07d05d9c9823d9f878dea01439e0ca74e09b9c713b77e4fd50caa891fe02d4a99422fe39e099934',
  },
}

const sender = new DiscoKeyring(senderPrivate)
const recipient = new DiscoKeyring(recipientPrivate)

const cases: Array<[string, DiscoMessage, { plain: string; packet: string }]> = [
  ['ping', { type: 'ping', txId, padding: 0 }, golden.ping],
  ['ping with node key', { type: 'ping', txId, nodeKey, padding: 0 }, golden.pingNodeKey],
  ['pong from IPv4 (v4-mapped)', { type: 'pong', txId, source: { ip: v4Mapped(192, 0, 2, 7), port: 41641 } }, golden.pongV4],
  ['pong from IPv6', { type: 'pong', txId, source: { ip: fromHex('20010db8000000000000000000000001'), port: 3478 } }, golden.pongV6],
  [
    'call-me-maybe',
    {
      type: 'call-me-maybe',
      endpoints: [
        { ip: v4Mapped(198, 51, 100, 1), port: 1234 },
        { ip: fromHex('20010db8000000000000000000000002'), port: 5678 },
      ],
    },
    golden.callMeMaybe,
  ],
]

function expectDiscoError(run: () => unknown, code: DiscoError['code']): void {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(DiscoError)
    expect((error as DiscoError).code).toBe(code)
    return
  }
  throw new Error('expected a DiscoError')
}

describe('disco codec, byte for byte with Tailscale', () => {
  it('derives the same disco public keys', () => {
    expect(toHex(sender.publicKey)).toBe(golden.senderPublic)
    expect(toHex(recipient.publicKey)).toBe(golden.recipientPublic)
  })

  for (const [name, message, bytes] of cases) {
    it(`${name}: plaintext and sealed packet match, and both ends decode it`, () => {
      expect(toHex(encodeDiscoMessage(message))).toBe(bytes.plain)
      const packet = sender.seal(recipient.publicKey, message, nonce)
      expect(toHex(packet)).toBe(bytes.packet)
      const opened = recipient.open(fromHex(bytes.packet))
      expect(toHex(opened.sender)).toBe(golden.senderPublic)
      expect(opened.message).toEqual(message)
    })
  }

  it('ignores bytes past a known body (Tailscale is lax for future growth) and counts ping padding', () => {
    const plain = new Uint8Array([...fromHex(golden.pingNodeKey.plain), 0, 0, 0, 0])
    expect(decodeDiscoMessage(plain)).toEqual({ type: 'ping', txId, nodeKey, padding: 4 })
    expect(encodeDiscoMessage({ type: 'ping', txId, nodeKey, padding: 4 })).toEqual(plain)
    const shortPing = new Uint8Array([...fromHex(golden.ping.plain), 1, 2, 3])
    expect(decodeDiscoMessage(shortPing)).toEqual({ type: 'ping', txId, padding: 3 })
    const longPong = new Uint8Array([...fromHex(golden.pongV4.plain), 9, 9])
    expect(decodeDiscoMessage(longPong)).toMatchObject({ type: 'pong', source: { port: 41641 } })
  })

  it('parses a malformed call-me-maybe as an empty one, as Tailscale does', () => {
    expect(decodeDiscoMessage(Uint8Array.of(0x03, 0, 1, 2, 3))).toEqual({ type: 'call-me-maybe', endpoints: [] })
    expect(decodeDiscoMessage(Uint8Array.of(0x03, 1, ...new Uint8Array(18)))).toEqual({ type: 'call-me-maybe', endpoints: [] })
  })
})

describe('WebRTC signal (Burrow type 0x80)', () => {
  const signals: DiscoMessage[] = [
    { type: 'webrtc-signal', signal: { session: 7, kind: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' } },
    { type: 'webrtc-signal', signal: { session: 7, kind: 'answer', sdp: 'v=0\r\n' } },
    { type: 'webrtc-signal', signal: { session: 7, kind: 'candidate', candidate: 'candidate:1 1 udp 2122260223 10.1.0.2 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 } },
    { type: 'webrtc-signal', signal: { session: 7, kind: 'candidate', candidate: '', sdpMid: null, sdpMLineIndex: null } },
    { type: 'webrtc-signal', signal: { session: 8, kind: 'bye' } },
    { type: 'webrtc-signal', signal: { session: 0, kind: 'request' } },
  ]

  it('starts with type 0x80, version 0 and carries JSON', () => {
    const plain = encodeDiscoMessage(signals[0]!)
    expect(plain[0]).toBe(0x80)
    expect(plain[1]).toBe(0)
    expect(JSON.parse(new TextDecoder().decode(plain.subarray(2)))).toEqual({ session: 7, kind: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' })
  })

  it('round-trips every kind through a sealed packet', () => {
    for (const message of signals) expect(recipient.open(sender.seal(recipient.publicKey, message)).message).toEqual(message)
  })

  it('drops stray fields so nothing unvalidated reaches the page', () => {
    const plain = new TextEncoder().encode(JSON.stringify({ session: 1, kind: 'bye', extra: { deep: true } }))
    expect(decodeDiscoMessage(Uint8Array.of(0x80, 0, ...plain))).toEqual({ type: 'webrtc-signal', signal: { session: 1, kind: 'bye' } })
  })

  it('rejects malformed signals with bad-signal', () => {
    const bodies = [
      'not json',
      '[]',
      'null',
      '{"session":-1,"kind":"bye"}',
      '{"session":1.5,"kind":"bye"}',
      '{"session":1,"kind":"offer"}',
      '{"session":1,"kind":"offer","sdp":""}',
      '{"session":1,"kind":"candidate"}',
      '{"session":1,"kind":"candidate","candidate":"x","sdpMLineIndex":-2}',
      '{"session":1,"kind":"candidate","candidate":"x","sdpMid":5}',
      '{"session":1,"kind":"shout"}',
    ]
    for (const body of bodies) expectDiscoError(() => decodeDiscoMessage(Uint8Array.of(0x80, 0, ...new TextEncoder().encode(body))), 'bad-signal')
    expectDiscoError(() => decodeDiscoMessage(Uint8Array.of(0x80, 0, 0xff, 0xfe)), 'bad-signal')
  })

  it('refuses to encode an invalid signal with bad-argument', () => {
    expectDiscoError(() => encodeDiscoMessage({ type: 'webrtc-signal', signal: { session: 1, kind: 'offer', sdp: '' } }), 'bad-argument')
    expectDiscoError(() => encodeDiscoMessage({ type: 'webrtc-signal', signal: { session: 1, kind: 'offer', sdp: 'x'.repeat(70_000) } }), 'bad-argument')
  })
})

describe('disco codec, bad input', () => {
  it('names truncated and unknown messages', () => {
    expectDiscoError(() => decodeDiscoMessage(Uint8Array.of(0x01)), 'truncated')
    expectDiscoError(() => decodeDiscoMessage(Uint8Array.of(0x01, 0, ...new Uint8Array(11))), 'truncated')
    expectDiscoError(() => decodeDiscoMessage(Uint8Array.of(0x02, 0, ...new Uint8Array(29))), 'truncated')
    expectDiscoError(() => decodeDiscoMessage(Uint8Array.of(0x04, 0, ...new Uint8Array(72))), 'unknown-type')
    expectDiscoError(() => decodeDiscoMessage(Uint8Array.of(0x42, 0)), 'unknown-type')
  })

  it('tells disco packets from WireGuard and garbage', () => {
    const packet = fromHex(golden.ping.packet)
    expect(looksLikeDisco(packet)).toBe(true)
    expect(toHex(discoSender(packet))).toBe(golden.senderPublic)
    expect(looksLikeDisco(packet.subarray(0, 61))).toBe(false)
    expect(looksLikeDisco(Uint8Array.of(4, 0, 0, 0, ...new Uint8Array(80)))).toBe(false)
    expectDiscoError(() => discoSender(new Uint8Array(10)), 'not-disco')
    expectDiscoError(() => recipient.open(Uint8Array.of(1, 0, 0, 0)), 'not-disco')
  })

  it('rejects a flipped bit, a wrong recipient and our own key as sender', () => {
    const packet = fromHex(golden.pongV4.packet)
    for (let i = 6; i < packet.length; i += 7) {
      const bad = packet.slice()
      bad[i]! ^= 0x01
      expectDiscoError(() => recipient.open(bad), 'undecryptable')
    }
    const stranger = new DiscoKeyring(generateKeyPair().privateKey)
    expectDiscoError(() => stranger.open(packet), 'undecryptable')
    expectDiscoError(() => sender.open(sender.seal(recipient.publicKey, { type: 'ping', txId, padding: 0 })), 'undecryptable')
  })

  it('rejects a low-order sender key as undecryptable', () => {
    const packet = fromHex(golden.ping.packet)
    packet.fill(0, 6, 38)
    expectDiscoError(() => recipient.open(packet), 'undecryptable')
  })

  it('validates what it is asked to encode', () => {
    expectDiscoError(() => encodeDiscoMessage({ type: 'ping', txId: new Uint8Array(11), padding: 0 }), 'bad-argument')
    expectDiscoError(() => encodeDiscoMessage({ type: 'pong', txId, source: { ip: new Uint8Array(4), port: 1 } }), 'bad-argument')
    expectDiscoError(() => encodeDiscoMessage({ type: 'pong', txId, source: { ip: new Uint8Array(16), port: 70000 } }), 'bad-argument')
    expectDiscoError(() => sealDisco(new Uint8Array(32), new Uint8Array(31), { type: 'ping', txId, padding: 0 }), 'bad-argument')
  })

  it('throws nothing but DiscoError for arbitrary packets and plaintexts', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, withMagic) => {
        const packet = withMagic ? new Uint8Array([0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac, ...bytes]) : bytes
        for (const run of [() => recipient.open(packet), () => decodeDiscoMessage(bytes)]) {
          try {
            run()
          } catch (error) {
            if (!(error instanceof DiscoError)) throw error
          }
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('throws nothing but DiscoError for arbitrary plaintexts in a valid box', () => {
    const key = boxKey(senderPrivate, recipient.publicKey)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(1, 2, 3, 0x80, 5, 0xff), (body, type) => {
        const sealed = boxSeal(key, nonce, Uint8Array.of(type, 0, ...body))
        const packet = new Uint8Array([...fromHex(golden.ping.packet).subarray(0, 62), ...sealed])
        try {
          const message = recipient.open(packet).message
          // Whatever decodes must re-encode and decode to the same message.
          expect(decodeDiscoMessage(encodeDiscoMessage(message))).toEqual(message)
        } catch (error) {
          if (!(error instanceof DiscoError)) throw error
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('opens with the raw function given the shared key', () => {
    const key = boxKey(recipientPrivate, sender.publicKey)
    expect(openDisco(key, fromHex(golden.ping.packet))).toEqual({ type: 'ping', txId, padding: 0 })
  })
})
