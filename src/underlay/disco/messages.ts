// The plaintext inside a disco box: type byte, version byte (0), body. Layouts follow Tailscale's
// `disco` package exactly for the types it defines; 0x80 is Burrow's own (WebRTC signalling).
//
// Parsing is lenient where Tailscale's is (bytes past the known body are ignored, a ping's node key
// is optional, a malformed CallMeMaybe parses as an empty one) and strict where a wrong value would
// be acted upon (signals).
import { DiscoError } from './errors.ts'

export const DISCO_VERSION = 0
export const TX_ID_LENGTH = 12
export const NODE_KEY_LENGTH = 32
/** A 16-byte IP address (IPv4 as v4-mapped IPv6) followed by a big-endian port. */
export const ADDR_PORT_LENGTH = 18

export const DiscoType = {
  Ping: 0x01,
  Pong: 0x02,
  CallMeMaybe: 0x03,
  /**
   * Burrow-specific: a WebRTC offer, answer or ICE candidate as UTF-8 JSON. Tailscale uses
   * 0x01–0x09 today; 0x80 leaves its range free for growth, and a Tailscale node that receives it
   * drops it as an unknown type, which is harmless.
   */
  WebRtcSignal: 0x80,
} as const

/** Types Tailscale defines that Burrow recognises but does not act on (UDP relay endpoints). */
const TAILSCALE_RELAY_TYPES = new Set([0x04, 0x05, 0x06, 0x07, 0x08, 0x09])

export interface AddrPort {
  /** 16 bytes; IPv4 is v4-mapped (`::ffff:a.b.c.d`), as on Tailscale's wire. */
  ip: Uint8Array
  port: number
}

export interface DiscoPing {
  type: 'ping'
  txId: Uint8Array
  /** The sender's WireGuard public key, when it included one. */
  nodeKey?: Uint8Array
  /** Zero bytes after the body (Tailscale pads pings to probe path MTU). */
  padding: number
}

export interface DiscoPong {
  type: 'pong'
  txId: Uint8Array
  /** Where the ping came from, as the ponging side saw it. */
  source: AddrPort
}

export interface DiscoCallMeMaybe {
  type: 'call-me-maybe'
  endpoints: AddrPort[]
}

export type WebRtcSignal =
  | { session: number; kind: 'offer' | 'answer'; sdp: string }
  | { session: number; kind: 'candidate'; candidate: string; sdpMid: string | null; sdpMLineIndex: number | null }
  /** The sender wants a direct path and asks the receiver (the offering side) to start one. */
  | { session: number; kind: 'request' }
  /** The sender gave up on this session (closed, failed or superseded). */
  | { session: number; kind: 'bye' }

export interface DiscoWebRtcSignal {
  type: 'webrtc-signal'
  signal: WebRtcSignal
}

export type DiscoMessage = DiscoPing | DiscoPong | DiscoCallMeMaybe | DiscoWebRtcSignal

/** The unspecified address and port 0: what a pong reports when the path has no IP endpoint (WebRTC). */
export const UNSPECIFIED_ADDR_PORT: AddrPort = { ip: new Uint8Array(16), port: 0 }

const MAX_SIGNAL_TEXT = 60_000

function header(type: number, bodyLength: number): Uint8Array {
  const out = new Uint8Array(2 + bodyLength)
  out[0] = type
  out[1] = DISCO_VERSION
  return out
}

function checkLength(value: Uint8Array, length: number, what: string): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new DiscoError('bad-argument', `${what} must be ${length} bytes`)
  }
}

function writeAddrPort(out: Uint8Array, offset: number, addr: AddrPort): void {
  checkLength(addr.ip, 16, 'an address')
  if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 65535) {
    throw new DiscoError('bad-argument', `port must be 0..65535, got ${addr.port}`)
  }
  out.set(addr.ip, offset)
  out[offset + 16] = addr.port >>> 8
  out[offset + 17] = addr.port & 0xff
}

function readAddrPort(body: Uint8Array, offset: number): AddrPort {
  return { ip: body.slice(offset, offset + 16), port: (body[offset + 16]! << 8) | body[offset + 17]! }
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

/** Encodes a message's plaintext (type, version, body). */
export function encodeDiscoMessage(message: DiscoMessage): Uint8Array {
  switch (message.type) {
    case 'ping': {
      checkLength(message.txId, TX_ID_LENGTH, 'a transaction id')
      if (message.nodeKey) checkLength(message.nodeKey, NODE_KEY_LENGTH, 'a node key')
      const padding = message.padding ?? 0
      if (!Number.isInteger(padding) || padding < 0) throw new DiscoError('bad-argument', `padding must be a non-negative integer, got ${padding}`)
      const out = header(DiscoType.Ping, TX_ID_LENGTH + (message.nodeKey ? NODE_KEY_LENGTH : 0) + padding)
      out.set(message.txId, 2)
      if (message.nodeKey) out.set(message.nodeKey, 2 + TX_ID_LENGTH)
      return out
    }
    case 'pong': {
      checkLength(message.txId, TX_ID_LENGTH, 'a transaction id')
      const out = header(DiscoType.Pong, TX_ID_LENGTH + ADDR_PORT_LENGTH)
      out.set(message.txId, 2)
      writeAddrPort(out, 2 + TX_ID_LENGTH, message.source)
      return out
    }
    case 'call-me-maybe': {
      const out = header(DiscoType.CallMeMaybe, ADDR_PORT_LENGTH * message.endpoints.length)
      message.endpoints.forEach((endpoint, i) => writeAddrPort(out, 2 + i * ADDR_PORT_LENGTH, endpoint))
      return out
    }
    case 'webrtc-signal': {
      const text = textEncoder.encode(JSON.stringify(validateSignal(message.signal, 'bad-argument')))
      if (text.length > MAX_SIGNAL_TEXT) throw new DiscoError('bad-argument', `a WebRTC signal must be at most ${MAX_SIGNAL_TEXT} bytes of JSON, got ${text.length}`)
      const out = header(DiscoType.WebRtcSignal, text.length)
      out.set(text, 2)
      return out
    }
    default:
      throw new DiscoError('bad-argument', `unknown disco message type ${JSON.stringify((message as { type?: unknown }).type)}`)
  }
}

/** Decodes a message's plaintext. Throws only `DiscoError`. */
export function decodeDiscoMessage(plaintext: Uint8Array): DiscoMessage {
  if (plaintext.length < 2) throw new DiscoError('truncated', `a disco message needs 2 header bytes, got ${plaintext.length}`)
  const type = plaintext[0]!
  const body = plaintext.subarray(2)
  switch (type) {
    case DiscoType.Ping: {
      if (body.length < TX_ID_LENGTH) throw new DiscoError('truncated', `a ping needs a ${TX_ID_LENGTH}-byte transaction id, got ${body.length} bytes`)
      const ping: DiscoPing = { type: 'ping', txId: body.slice(0, TX_ID_LENGTH), padding: body.length - TX_ID_LENGTH }
      if (body.length >= TX_ID_LENGTH + NODE_KEY_LENGTH) {
        ping.nodeKey = body.slice(TX_ID_LENGTH, TX_ID_LENGTH + NODE_KEY_LENGTH)
        ping.padding -= NODE_KEY_LENGTH
      }
      return ping
    }
    case DiscoType.Pong: {
      if (body.length < TX_ID_LENGTH + ADDR_PORT_LENGTH) {
        throw new DiscoError('truncated', `a pong needs ${TX_ID_LENGTH + ADDR_PORT_LENGTH} body bytes, got ${body.length}`)
      }
      return { type: 'pong', txId: body.slice(0, TX_ID_LENGTH), source: readAddrPort(body, TX_ID_LENGTH) }
    }
    case DiscoType.CallMeMaybe: {
      // Tailscale answers a malformed CallMeMaybe with an empty one rather than an error.
      const endpoints: AddrPort[] = []
      if (plaintext[1] === DISCO_VERSION && body.length > 0 && body.length % ADDR_PORT_LENGTH === 0) {
        for (let offset = 0; offset < body.length; offset += ADDR_PORT_LENGTH) endpoints.push(readAddrPort(body, offset))
      }
      return { type: 'call-me-maybe', endpoints }
    }
    case DiscoType.WebRtcSignal: {
      let parsed: unknown
      try {
        parsed = JSON.parse(textDecoder.decode(body))
      } catch {
        throw new DiscoError('bad-signal', 'a WebRTC signal must be UTF-8 JSON')
      }
      return { type: 'webrtc-signal', signal: validateSignal(parsed, 'bad-signal') }
    }
    default:
      if (TAILSCALE_RELAY_TYPES.has(type)) {
        throw new DiscoError('unknown-type', `disco message type 0x${type.toString(16).padStart(2, '0')} (Tailscale UDP relay) is not supported`)
      }
      throw new DiscoError('unknown-type', `unknown disco message type 0x${type.toString(16).padStart(2, '0')}`)
  }
}

function isOptionalString(value: unknown): value is string | null {
  return value === null || typeof value === 'string'
}

/** Returns a clean copy of a signal (no stray fields) or throws naming the bad field. */
function validateSignal(value: unknown, code: 'bad-signal' | 'bad-argument'): WebRtcSignal {
  const fail = (why: string): never => {
    throw new DiscoError(code, `WebRTC signal: ${why}`)
  }
  if (typeof value !== 'object' || value === null) return fail('must be an object')
  const signal = value as Record<string, unknown>
  const session = signal.session
  if (typeof session !== 'number' || !Number.isSafeInteger(session) || session < 0) return fail('`session` must be a non-negative integer')
  switch (signal.kind) {
    case 'offer':
    case 'answer':
      if (typeof signal.sdp !== 'string' || signal.sdp.length === 0) return fail(`an ${signal.kind} needs a non-empty \`sdp\` string`)
      return { session, kind: signal.kind, sdp: signal.sdp }
    case 'candidate': {
      const { candidate, sdpMid, sdpMLineIndex } = signal
      if (typeof candidate !== 'string') return fail('a candidate needs a `candidate` string')
      if (!isOptionalString(sdpMid ?? null)) return fail('`sdpMid` must be a string or null')
      const index = sdpMLineIndex ?? null
      if (index !== null && (typeof index !== 'number' || !Number.isInteger(index) || index < 0)) return fail('`sdpMLineIndex` must be a non-negative integer or null')
      return { session, kind: 'candidate', candidate, sdpMid: (sdpMid as string | null | undefined) ?? null, sdpMLineIndex: index as number | null }
    }
    case 'request':
    case 'bye':
      return { session, kind: signal.kind }
    default:
      return fail(`unknown kind ${JSON.stringify(signal.kind)} (expected offer, answer, candidate, request or bye)`)
  }
}
