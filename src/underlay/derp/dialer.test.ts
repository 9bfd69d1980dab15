import { describe, expect, it } from 'vitest'
import { boxKey, generateKeyPair } from '../../crypto/index.ts'
import { DERP_WEBSOCKET_MESSAGE_LIMIT, webSocketDialer, type WebSocketLike } from './dialer.ts'
import { FrameReader } from './frame-reader.ts'
import { decodeFrame, encodeFrame, MAGIC } from './frames.ts'
import { sealJson } from './info.ts'
import { DerpClientSession } from './session.ts'

/** A WebSocket that is open at once and records every message sent. */
class RecordingWebSocket implements WebSocketLike {
  static last: RecordingWebSocket | undefined
  binaryType = 'arraybuffer'
  bufferedAmount = 0
  readyState = 1
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number; reason: string }) => void) | null = null
  onerror: ((event: unknown) => void) | null = null
  readonly sent: Uint8Array[] = []
  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    RecordingWebSocket.last = this
  }
  send(data: Uint8Array): void {
    this.sent.push(data.slice())
  }
  close(): void {
    this.readyState = 3
  }
}

const handlers = { onOpen() {}, onData() {}, onClose() {} }
const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

describe('webSocketDialer message size (derper reads at most 32768 bytes per WebSocket message)', () => {
  it('the limit is coder/websocket’s default read limit, 32768 bytes', () => {
    expect(DERP_WEBSOCKET_MESSAGE_LIMIT).toBe(32768)
  })

  it('a write longer than the limit leaves as several messages of at most 32768 bytes, in order, byte for byte', () => {
    const stream = webSocketDialer(RecordingWebSocket)('http://relay.test/derp', handlers)
    const bytes = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7) & 0xff)
    stream.send(bytes)
    const sent = RecordingWebSocket.last!.sent
    expect(sent.map((m) => m.length)).toEqual([32768, 32768, 32768, 100_000 - 3 * 32768])
    expect(concat(sent)).toEqual(bytes)
  })

  it('a write within the limit is one message, unchanged', () => {
    const stream = webSocketDialer(RecordingWebSocket)('http://relay.test/derp', handlers)
    stream.send(new Uint8Array(32768).fill(1))
    stream.send(new Uint8Array(10).fill(2))
    expect(RecordingWebSocket.last!.sent.map((m) => m.length)).toEqual([32768, 10])
  })

  it('the coalesced output of a bulk send (what a TCP sender does to a DERP session) never puts a message over the limit on the socket, and the frames survive', () => {
    const relay = generateKeyPair()
    const me = generateKeyPair()
    const session = new DerpClientSession({ privateKey: me.privateKey }, 0)
    const serverKey = encodeFrame({ type: 'server-key', key: relay.publicKey })
    serverKey.set(MAGIC, 5)
    session.receive(serverKey, 0)
    session.takeOutput()
    session.receive(encodeFrame({ type: 'server-info', sealed: sealJson(boxKey(relay.privateKey, me.publicKey), { version: 2 }) }), 0)
    expect(session.state).toBe('ready')
    const stream = webSocketDialer(RecordingWebSocket)('http://relay.test/derp', handlers)
    for (let i = 0; i < 200; i++) expect(session.send(relay.publicKey, new Uint8Array(1280).fill(i), 0)).toBe(true)
    for (let out = session.takeOutput(); out; out = session.takeOutput()) stream.send(out)
    const sent = RecordingWebSocket.last!.sent
    expect(Math.max(...sent.map((m) => m.length))).toBeLessThanOrEqual(DERP_WEBSOCKET_MESSAGE_LIMIT)
    // Reassembled as the byte stream derper reads, the frames are whole.
    const reader = new FrameReader()
    reader.push(concat(sent))
    const packets: number[] = []
    for (let raw = reader.next(); raw; raw = reader.next()) {
      const frame = decodeFrame(raw.type, raw.payload)
      if (frame.type === 'send-packet') packets.push(frame.packet[0]!)
    }
    expect(packets).toEqual(Array.from({ length: 200 }, (_, i) => i))
  })

  it('a maxMessageBytes that is not a positive whole number is refused', () => {
    expect(() => webSocketDialer(RecordingWebSocket, { maxMessageBytes: 0 })).toThrow(/maxMessageBytes/)
  })
})
