// Codecs for the four WireGuard messages (whitepaper §5.4). Every multi-byte integer is
// little-endian; the message type is a u32 whose top three bytes are zero. Decoders return views
// into the datagram (no copies); encoders return new buffers owned by the caller.

export const MESSAGE_INITIATION = 1
export const MESSAGE_RESPONSE = 2
export const MESSAGE_COOKIE_REPLY = 3
export const MESSAGE_TRANSPORT = 4

export const INITIATION_LENGTH = 148
export const RESPONSE_LENGTH = 92
export const COOKIE_REPLY_LENGTH = 64
export const TRANSPORT_HEADER_LENGTH = 16
/** Header plus the 16-byte tag of an empty (keepalive) payload. */
export const TRANSPORT_MIN_LENGTH = 32
export const MAC_LENGTH = 16
export const TIMESTAMP_LENGTH = 12
export const COOKIE_NONCE_LENGTH = 24

const KEY = 32
const TAG = 16

export class MessageFormatError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MessageFormatError'
  }
}

export function readU32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0
}

export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff
  bytes[offset + 1] = (value >>> 8) & 0xff
  bytes[offset + 2] = (value >>> 16) & 0xff
  bytes[offset + 3] = (value >>> 24) & 0xff
}

/** The message type (1–4), or undefined when the first four bytes are not a known type. */
export function messageType(datagram: Uint8Array): number | undefined {
  if (datagram.length < 4) return undefined
  const type = readU32(datagram, 0)
  return type >= MESSAGE_INITIATION && type <= MESSAGE_TRANSPORT ? type : undefined
}

function expectLength(datagram: Uint8Array, type: number, length: number, name: string): void {
  if (datagram.length !== length) throw new MessageFormatError(`${name} must be ${length} bytes, got ${datagram.length}`)
  if (readU32(datagram, 0) !== type) throw new MessageFormatError(`${name} must start with type ${type} and three zero bytes`)
}

// Handshake initiation: type(4) sender(4) ephemeral(32) static(32+16) timestamp(12+16) mac1(16) mac2(16)
export const INITIATION_SENDER = 4
export const INITIATION_EPHEMERAL = 8
export const INITIATION_STATIC = INITIATION_EPHEMERAL + KEY
export const INITIATION_TIMESTAMP = INITIATION_STATIC + KEY + TAG
export const INITIATION_MAC1 = INITIATION_TIMESTAMP + TIMESTAMP_LENGTH + TAG

export interface Initiation {
  sender: number
  ephemeral: Uint8Array
  encryptedStatic: Uint8Array
  encryptedTimestamp: Uint8Array
}

export function encodeInitiation(message: Initiation): Uint8Array {
  const out = new Uint8Array(INITIATION_LENGTH)
  writeU32(out, 0, MESSAGE_INITIATION)
  writeU32(out, INITIATION_SENDER, message.sender)
  out.set(expectSize(message.ephemeral, KEY, 'ephemeral'), INITIATION_EPHEMERAL)
  out.set(expectSize(message.encryptedStatic, KEY + TAG, 'encrypted static'), INITIATION_STATIC)
  out.set(expectSize(message.encryptedTimestamp, TIMESTAMP_LENGTH + TAG, 'encrypted timestamp'), INITIATION_TIMESTAMP)
  return out
}

export function decodeInitiation(datagram: Uint8Array): Initiation {
  expectLength(datagram, MESSAGE_INITIATION, INITIATION_LENGTH, 'handshake initiation')
  return {
    sender: readU32(datagram, INITIATION_SENDER),
    ephemeral: datagram.subarray(INITIATION_EPHEMERAL, INITIATION_STATIC),
    encryptedStatic: datagram.subarray(INITIATION_STATIC, INITIATION_TIMESTAMP),
    encryptedTimestamp: datagram.subarray(INITIATION_TIMESTAMP, INITIATION_MAC1),
  }
}

// Handshake response: type(4) sender(4) receiver(4) ephemeral(32) empty(0+16) mac1(16) mac2(16)
export const RESPONSE_SENDER = 4
export const RESPONSE_RECEIVER = 8
export const RESPONSE_EPHEMERAL = 12
export const RESPONSE_EMPTY = RESPONSE_EPHEMERAL + KEY
export const RESPONSE_MAC1 = RESPONSE_EMPTY + TAG

export interface Response {
  sender: number
  receiver: number
  ephemeral: Uint8Array
  encryptedNothing: Uint8Array
}

export function encodeResponse(message: Response): Uint8Array {
  const out = new Uint8Array(RESPONSE_LENGTH)
  writeU32(out, 0, MESSAGE_RESPONSE)
  writeU32(out, RESPONSE_SENDER, message.sender)
  writeU32(out, RESPONSE_RECEIVER, message.receiver)
  out.set(expectSize(message.ephemeral, KEY, 'ephemeral'), RESPONSE_EPHEMERAL)
  out.set(expectSize(message.encryptedNothing, TAG, 'encrypted nothing'), RESPONSE_EMPTY)
  return out
}

export function decodeResponse(datagram: Uint8Array): Response {
  expectLength(datagram, MESSAGE_RESPONSE, RESPONSE_LENGTH, 'handshake response')
  return {
    sender: readU32(datagram, RESPONSE_SENDER),
    receiver: readU32(datagram, RESPONSE_RECEIVER),
    ephemeral: datagram.subarray(RESPONSE_EPHEMERAL, RESPONSE_EMPTY),
    encryptedNothing: datagram.subarray(RESPONSE_EMPTY, RESPONSE_MAC1),
  }
}

// Cookie reply: type(4) receiver(4) nonce(24) cookie(16+16)
export const COOKIE_RECEIVER = 4
export const COOKIE_NONCE = 8
export const COOKIE_ENCRYPTED = COOKIE_NONCE + COOKIE_NONCE_LENGTH

export interface CookieReply {
  receiver: number
  nonce: Uint8Array
  encryptedCookie: Uint8Array
}

export function encodeCookieReply(message: CookieReply): Uint8Array {
  const out = new Uint8Array(COOKIE_REPLY_LENGTH)
  writeU32(out, 0, MESSAGE_COOKIE_REPLY)
  writeU32(out, COOKIE_RECEIVER, message.receiver)
  out.set(expectSize(message.nonce, COOKIE_NONCE_LENGTH, 'cookie nonce'), COOKIE_NONCE)
  out.set(expectSize(message.encryptedCookie, MAC_LENGTH + TAG, 'encrypted cookie'), COOKIE_ENCRYPTED)
  return out
}

export function decodeCookieReply(datagram: Uint8Array): CookieReply {
  expectLength(datagram, MESSAGE_COOKIE_REPLY, COOKIE_REPLY_LENGTH, 'cookie reply')
  return {
    receiver: readU32(datagram, COOKIE_RECEIVER),
    nonce: datagram.subarray(COOKIE_NONCE, COOKIE_ENCRYPTED),
    encryptedCookie: datagram.subarray(COOKIE_ENCRYPTED, COOKIE_REPLY_LENGTH),
  }
}

// Transport data: type(4) receiver(4) counter(8, LE u64) then ciphertext of the padded packet + tag.
export const TRANSPORT_RECEIVER = 4
export const TRANSPORT_COUNTER = 8

/** Checks the fixed header of a transport message; the caller reads the fields in place (hot path). */
export function isTransport(datagram: Uint8Array): boolean {
  return datagram.length >= TRANSPORT_MIN_LENGTH && readU32(datagram, 0) === MESSAGE_TRANSPORT
}

/** Where MAC1 starts in a handshake message (it covers everything before it); MAC2 follows it. */
export function mac1Offset(message: Uint8Array): number {
  return message.length - 2 * MAC_LENGTH
}

export function mac2Offset(message: Uint8Array): number {
  return message.length - MAC_LENGTH
}

function expectSize(field: Uint8Array, length: number, name: string): Uint8Array {
  if (field.length !== length) throw new MessageFormatError(`${name} must be ${length} bytes, got ${field.length}`)
  return field
}
