// DERP protocol version 2 frames: 1-byte type + 4-byte big-endian payload length + payload.
// Layouts follow Tailscale's derp package byte for byte so Burrow talks to its relays.

export const PROTOCOL_VERSION = 2
export const MAGIC = new Uint8Array([0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91]) // "DERP🔑"
export const FRAME_HEADER_LENGTH = 5
export const KEY_LENGTH = 32
export const NONCE_LENGTH = 24
/** Largest packet a client may send or receive (Tailscale's MaxPacketSize). */
export const MAX_PACKET_SIZE = 64 << 10
/** Largest ClientInfo/ServerInfo payload accepted (Tailscale refuses longer ClientInfo). */
export const MAX_INFO_LENGTH = 256 << 10
/** Largest frame of any type the readers accept; anything longer is a protocol violation. */
export const MAX_FRAME_LENGTH = 1 << 20

/** The longest payload a frame of `type` may announce; longer means the peer is misbehaving. */
export function maxPayloadLength(type: number): number {
  switch (type) {
    case FrameType.SendPacket:
    case FrameType.RecvPacket:
      return KEY_LENGTH + MAX_PACKET_SIZE
    case FrameType.ForwardPacket:
      return 2 * KEY_LENGTH + MAX_PACKET_SIZE
    case FrameType.ClientInfo:
    case FrameType.ServerInfo:
      return MAX_INFO_LENGTH
    default:
      return MAX_FRAME_LENGTH
  }
}

export const FrameType = {
  ServerKey: 0x01,
  ClientInfo: 0x02,
  ServerInfo: 0x03,
  SendPacket: 0x04,
  RecvPacket: 0x05,
  KeepAlive: 0x06,
  NotePreferred: 0x07,
  PeerGone: 0x08,
  PeerPresent: 0x09,
  ForwardPacket: 0x0a,
  WatchConns: 0x10,
  ClosePeer: 0x11,
  Ping: 0x12,
  Pong: 0x13,
  Health: 0x14,
  Restarting: 0x15,
} as const

export const PeerGoneReason = { Disconnected: 0, NotHere: 1 } as const

export type DerpFrame =
  | { type: 'server-key'; key: Uint8Array }
  /** `sealed` is the 24-byte nonce followed by the NaCl box of the ClientInfo JSON. */
  | { type: 'client-info'; clientKey: Uint8Array; sealed: Uint8Array }
  | { type: 'server-info'; sealed: Uint8Array }
  | { type: 'send-packet'; destination: Uint8Array; packet: Uint8Array }
  | { type: 'recv-packet'; source: Uint8Array; packet: Uint8Array }
  | { type: 'keep-alive' }
  | { type: 'note-preferred'; preferred: boolean }
  | { type: 'peer-gone'; key: Uint8Array; reason?: number }
  | { type: 'peer-present'; key: Uint8Array; ip?: Uint8Array; port?: number; flags?: number }
  | { type: 'forward-packet'; source: Uint8Array; destination: Uint8Array; packet: Uint8Array }
  | { type: 'watch-conns' }
  | { type: 'close-peer'; key: Uint8Array }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'health'; problem: string }
  | { type: 'restarting'; reconnectInMs: number; tryForMs: number }
  /** A type this implementation does not know; the protocol says to skip it. */
  | { type: 'unknown'; code: number; payload: Uint8Array }

export class DerpFrameError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DerpFrameError'
  }
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

/** Payload length of `frame` once encoded. */
export function payloadLength(frame: DerpFrame): number {
  switch (frame.type) {
    case 'server-key':
      return MAGIC.length + KEY_LENGTH
    case 'client-info':
      return KEY_LENGTH + frame.sealed.length
    case 'server-info':
      return frame.sealed.length
    case 'send-packet':
      return KEY_LENGTH + frame.packet.length
    case 'recv-packet':
      return KEY_LENGTH + frame.packet.length
    case 'keep-alive':
    case 'watch-conns':
      return 0
    case 'note-preferred':
      return 1
    case 'peer-gone':
      return KEY_LENGTH + (frame.reason === undefined ? 0 : 1)
    case 'peer-present':
      return KEY_LENGTH + (frame.ip === undefined ? 0 : 18 + (frame.flags === undefined ? 0 : 1))
    case 'forward-packet':
      return 2 * KEY_LENGTH + frame.packet.length
    case 'close-peer':
      return KEY_LENGTH
    case 'ping':
    case 'pong':
      return 8
    case 'health':
      return textEncoder.encode(frame.problem).length
    case 'restarting':
      return 8
    case 'unknown':
      return frame.payload.length
  }
}

function typeCode(frame: DerpFrame): number {
  switch (frame.type) {
    case 'server-key':
      return FrameType.ServerKey
    case 'client-info':
      return FrameType.ClientInfo
    case 'server-info':
      return FrameType.ServerInfo
    case 'send-packet':
      return FrameType.SendPacket
    case 'recv-packet':
      return FrameType.RecvPacket
    case 'keep-alive':
      return FrameType.KeepAlive
    case 'note-preferred':
      return FrameType.NotePreferred
    case 'peer-gone':
      return FrameType.PeerGone
    case 'peer-present':
      return FrameType.PeerPresent
    case 'forward-packet':
      return FrameType.ForwardPacket
    case 'watch-conns':
      return FrameType.WatchConns
    case 'close-peer':
      return FrameType.ClosePeer
    case 'ping':
      return FrameType.Ping
    case 'pong':
      return FrameType.Pong
    case 'health':
      return FrameType.Health
    case 'restarting':
      return FrameType.Restarting
    case 'unknown':
      return frame.code
  }
}

function requireLength(what: string, bytes: Uint8Array, length: number): void {
  if (bytes.length !== length) throw new DerpFrameError(`${what} must be ${length} bytes, got ${bytes.length}`)
}

/** Encoded size of `frame` including its 5-byte header. */
export function encodedLength(frame: DerpFrame): number {
  return FRAME_HEADER_LENGTH + payloadLength(frame)
}

/** Writes `frame` (header + payload) into `out` at `offset`; returns the offset after it. */
export function writeFrame(frame: DerpFrame, out: Uint8Array, offset = 0): number {
  const length = payloadLength(frame)
  if (length > MAX_FRAME_LENGTH) throw new DerpFrameError(`frame payload of ${length} bytes exceeds ${MAX_FRAME_LENGTH}`)
  if (out.length - offset < FRAME_HEADER_LENGTH + length) throw new RangeError('output buffer too small for frame')
  writeHeader(out, offset, typeCode(frame), length)
  let p = offset + FRAME_HEADER_LENGTH
  const put = (bytes: Uint8Array): void => {
    out.set(bytes, p)
    p += bytes.length
  }
  switch (frame.type) {
    case 'server-key':
      requireLength('server key', frame.key, KEY_LENGTH)
      put(MAGIC)
      put(frame.key)
      break
    case 'client-info':
      requireLength('client key', frame.clientKey, KEY_LENGTH)
      put(frame.clientKey)
      put(frame.sealed)
      break
    case 'server-info':
      put(frame.sealed)
      break
    case 'send-packet':
      requireLength('destination key', frame.destination, KEY_LENGTH)
      put(frame.destination)
      put(frame.packet)
      break
    case 'recv-packet':
      requireLength('source key', frame.source, KEY_LENGTH)
      put(frame.source)
      put(frame.packet)
      break
    case 'keep-alive':
    case 'watch-conns':
      break
    case 'note-preferred':
      out[p++] = frame.preferred ? 1 : 0
      break
    case 'peer-gone':
      requireLength('peer key', frame.key, KEY_LENGTH)
      put(frame.key)
      if (frame.reason !== undefined) out[p++] = frame.reason & 0xff
      break
    case 'peer-present':
      requireLength('peer key', frame.key, KEY_LENGTH)
      put(frame.key)
      if (frame.ip !== undefined) {
        requireLength('peer address', frame.ip, 16)
        put(frame.ip)
        out[p++] = ((frame.port ?? 0) >>> 8) & 0xff
        out[p++] = (frame.port ?? 0) & 0xff
        if (frame.flags !== undefined) out[p++] = frame.flags & 0xff
      }
      break
    case 'forward-packet':
      requireLength('source key', frame.source, KEY_LENGTH)
      requireLength('destination key', frame.destination, KEY_LENGTH)
      put(frame.source)
      put(frame.destination)
      put(frame.packet)
      break
    case 'close-peer':
      requireLength('peer key', frame.key, KEY_LENGTH)
      put(frame.key)
      break
    case 'ping':
    case 'pong':
      requireLength(`${frame.type} data`, frame.data, 8)
      put(frame.data)
      break
    case 'health':
      put(textEncoder.encode(frame.problem))
      break
    case 'restarting':
      writeU32(out, p, frame.reconnectInMs)
      writeU32(out, p + 4, frame.tryForMs)
      p += 8
      break
    case 'unknown':
      put(frame.payload)
      break
  }
  return p
}

export function encodeFrame(frame: DerpFrame): Uint8Array {
  const out = new Uint8Array(encodedLength(frame))
  writeFrame(frame, out)
  return out
}

export function writeHeader(out: Uint8Array, offset: number, type: number, length: number): void {
  out[offset] = type
  writeU32(out, offset + 1, length)
}

function writeU32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = (value >>> 24) & 0xff
  out[offset + 1] = (value >>> 16) & 0xff
  out[offset + 2] = (value >>> 8) & 0xff
  out[offset + 3] = value & 0xff
}

export function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0
}

function atLeast(name: string, payload: Uint8Array, length: number): void {
  if (payload.length < length) throw new DerpFrameError(`${name} frame too short: ${payload.length} bytes, need at least ${length}`)
}

function packetOf(name: string, payload: Uint8Array, offset: number): Uint8Array {
  const packet = payload.subarray(offset)
  if (packet.length > MAX_PACKET_SIZE) throw new DerpFrameError(`${name} packet of ${packet.length} bytes exceeds ${MAX_PACKET_SIZE}`)
  return packet
}

/**
 * Interprets one frame's payload. Returned byte fields are views into `payload`.
 * Throws DerpFrameError naming the problem for a malformed payload.
 */
export function decodeFrame(type: number, payload: Uint8Array): DerpFrame {
  switch (type) {
    case FrameType.ServerKey: {
      // Tailscale's client tolerates trailing bytes after the key; so do we.
      atLeast('ServerKey', payload, MAGIC.length + KEY_LENGTH)
      for (let i = 0; i < MAGIC.length; i++) {
        if (payload[i] !== MAGIC[i]) throw new DerpFrameError('ServerKey frame has the wrong magic (not a DERP server)')
      }
      return { type: 'server-key', key: payload.subarray(MAGIC.length, MAGIC.length + KEY_LENGTH) }
    }
    case FrameType.ClientInfo:
      atLeast('ClientInfo', payload, KEY_LENGTH + NONCE_LENGTH + 16)
      if (payload.length > MAX_INFO_LENGTH) throw new DerpFrameError(`ClientInfo frame of ${payload.length} bytes is too long`)
      return { type: 'client-info', clientKey: payload.subarray(0, KEY_LENGTH), sealed: payload.subarray(KEY_LENGTH) }
    case FrameType.ServerInfo:
      atLeast('ServerInfo', payload, NONCE_LENGTH + 16)
      if (payload.length > MAX_INFO_LENGTH) throw new DerpFrameError(`ServerInfo frame of ${payload.length} bytes is too long`)
      return { type: 'server-info', sealed: payload }
    case FrameType.SendPacket:
      atLeast('SendPacket', payload, KEY_LENGTH)
      return { type: 'send-packet', destination: payload.subarray(0, KEY_LENGTH), packet: packetOf('SendPacket', payload, KEY_LENGTH) }
    case FrameType.RecvPacket:
      atLeast('RecvPacket', payload, KEY_LENGTH)
      return { type: 'recv-packet', source: payload.subarray(0, KEY_LENGTH), packet: packetOf('RecvPacket', payload, KEY_LENGTH) }
    case FrameType.KeepAlive:
      return { type: 'keep-alive' }
    case FrameType.NotePreferred:
      if (payload.length !== 1) throw new DerpFrameError(`NotePreferred frame must be 1 byte, got ${payload.length}`)
      return { type: 'note-preferred', preferred: payload[0] !== 0 }
    case FrameType.PeerGone: {
      atLeast('PeerGone', payload, KEY_LENGTH)
      const key = payload.subarray(0, KEY_LENGTH)
      return payload.length > KEY_LENGTH ? { type: 'peer-gone', key, reason: payload[KEY_LENGTH]! } : { type: 'peer-gone', key }
    }
    case FrameType.PeerPresent: {
      atLeast('PeerPresent', payload, KEY_LENGTH)
      const key = payload.subarray(0, KEY_LENGTH)
      if (payload.length < KEY_LENGTH + 18) return { type: 'peer-present', key }
      const ip = payload.subarray(KEY_LENGTH, KEY_LENGTH + 16)
      const port = (payload[KEY_LENGTH + 16]! << 8) | payload[KEY_LENGTH + 17]!
      return payload.length > KEY_LENGTH + 18 ? { type: 'peer-present', key, ip, port, flags: payload[KEY_LENGTH + 18]! } : { type: 'peer-present', key, ip, port }
    }
    case FrameType.ForwardPacket:
      atLeast('ForwardPacket', payload, 2 * KEY_LENGTH)
      return {
        type: 'forward-packet',
        source: payload.subarray(0, KEY_LENGTH),
        destination: payload.subarray(KEY_LENGTH, 2 * KEY_LENGTH),
        packet: packetOf('ForwardPacket', payload, 2 * KEY_LENGTH),
      }
    case FrameType.WatchConns:
      return { type: 'watch-conns' }
    case FrameType.ClosePeer:
      atLeast('ClosePeer', payload, KEY_LENGTH)
      return { type: 'close-peer', key: payload.subarray(0, KEY_LENGTH) }
    case FrameType.Ping:
    case FrameType.Pong: {
      // Tailscale reads the first 8 bytes and ignores any extra.
      const name = type === FrameType.Ping ? 'Ping' : 'Pong'
      atLeast(name, payload, 8)
      return { type: type === FrameType.Ping ? 'ping' : 'pong', data: payload.subarray(0, 8) }
    }
    case FrameType.Health: {
      let problem: string
      try {
        problem = textDecoder.decode(payload)
      } catch {
        throw new DerpFrameError('Health frame text is not valid UTF-8')
      }
      return { type: 'health', problem }
    }
    case FrameType.Restarting:
      atLeast('Restarting', payload, 8)
      return { type: 'restarting', reconnectInMs: readU32(payload, 0), tryForMs: readU32(payload, 4) }
    default:
      return { type: 'unknown', code: type, payload }
  }
}
