// STUN messages (RFC 8489), sans-IO: decode and encode the header, the attribute TLVs, the
// (XOR-)MAPPED-ADDRESS values and FINGERPRINT. Nothing here touches a socket or a clock.
//
// RFC 8489 §5: a 20-byte header (type with the two top bits zero, length of the attributes in
// bytes — always a multiple of 4 —, the magic cookie 0x2112A442, a 96-bit transaction id), then
// attributes, each `type(2) length(2) value` padded to a multiple of 4 bytes (§14).

export const HEADER_LENGTH = 20
export const MAGIC_COOKIE = 0x2112a442
export const TRANSACTION_ID_LENGTH = 12

/** Methods (RFC 8489 §18.2) and classes (§5: the C1/C0 bits at 0x0100/0x0010 of the type). */
export const METHOD_BINDING = 0x001
export type StunClass = 'request' | 'indication' | 'success' | 'error'

/** Attribute types (RFC 8489 §18.3; CHANGE-REQUEST is RFC 5780 §7.2). */
export const Attr = {
  MAPPED_ADDRESS: 0x0001,
  CHANGE_REQUEST: 0x0003,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  REALM: 0x0014,
  NONCE: 0x0015,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  PASSWORD_ALGORITHM: 0x001d,
  USERHASH: 0x001e,
  XOR_MAPPED_ADDRESS: 0x0020,
  PASSWORD_ALGORITHMS: 0x8002,
  ALTERNATE_DOMAIN: 0x8003,
  SOFTWARE: 0x8022,
  ALTERNATE_SERVER: 0x8023,
  FINGERPRINT: 0x8028,
} as const

/** RFC 8489 §14.7: the CRC-32 is XOR'ed with this so a STUN fingerprint differs from other CRCs in the same packet. */
export const FINGERPRINT_XOR = 0x5354554e

export type StunErrorReason = 'too-short' | 'not-stun' | 'bad-length' | 'truncated-attribute' | 'bad-fingerprint' | 'attribute-after-fingerprint' | 'bad-address'

/** A datagram that is not a well-formed STUN message; `reason` names what is wrong. */
export class StunError extends Error {
  constructor(
    readonly reason: StunErrorReason,
    message: string,
  ) {
    super(message)
    this.name = 'StunError'
  }
}

export interface StunAttribute {
  type: number
  value: Uint8Array
}

export interface StunMessage {
  method: number
  class: StunClass
  /** The 32 bits after the length. MAGIC_COOKIE for RFC 5389/8489 agents; anything for RFC 3489 ones. */
  cookie: number
  transactionId: Uint8Array
  attributes: StunAttribute[]
  /** Present and verified (decode), or to be appended (encode). */
  fingerprint: boolean
}

export interface TransportAddress {
  family: 4 | 6
  /** 4 or 16 bytes, network order. */
  address: Uint8Array
  port: number
}

const CLASS_BITS: Record<StunClass, number> = { request: 0x0000, indication: 0x0010, success: 0x0100, error: 0x0110 }

/** RFC 8489 §5: the method's 12 bits are split around the two class bits (M0–M3, C0, M4–M6, C1, M7–M11). */
export function messageType(method: number, cls: StunClass): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | CLASS_BITS[cls]
}

function splitType(type: number): { method: number; class: StunClass } {
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2)
  const c = type & 0x0110
  const cls: StunClass = c === 0 ? 'request' : c === 0x0010 ? 'indication' : c === 0x0100 ? 'success' : 'error'
  return { method, class: cls }
}

/** Attributes 0x0000–0x7FFF are comprehension-required (RFC 8489 §14): an agent must understand them or refuse the message. */
export function isComprehensionRequired(type: number): boolean {
  return type < 0x8000
}

let crcTable: Uint32Array | undefined
/** CRC-32 as in ISO/IEC 13239 / ITU-T V.42 (the one zlib and Ethernet use), which §14.7 names. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256)
    for (let n = 0; n < 256; n++) {
      let c = n
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
      crcTable[n] = c >>> 0
    }
  }
  let crc = 0xffffffff
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

/** A quick test for demultiplexing (RFC 8489 §6.3 / RFC 7983): the two top bits are zero and the length is sane. */
export function looksLikeStun(bytes: Uint8Array): boolean {
  return bytes.length >= HEADER_LENGTH && (bytes[0]! & 0xc0) === 0 && (bytes[3]! & 0x03) === 0
}

/**
 * Decodes one datagram. Throws StunError for anything that is not a well-formed message: short
 * or bad header, a length that disagrees with the datagram, a truncated attribute, a FINGERPRINT
 * that is wrong or not last (§14.7: it must be the last attribute; a wrong one means the packet
 * is not STUN, §7.3). Unknown attributes are kept: the caller decides what to do with them.
 */
export function decodeStunMessage(bytes: Uint8Array): StunMessage {
  if (bytes.length < HEADER_LENGTH) throw new StunError('too-short', `a STUN message has a 20-byte header, got ${bytes.length} bytes`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const type = view.getUint16(0)
  if (type & 0xc000) throw new StunError('not-stun', 'the two most significant bits of a STUN message are zero (RFC 8489 §5)')
  const length = view.getUint16(2)
  if (length % 4 !== 0) throw new StunError('bad-length', `STUN message length ${length} is not a multiple of 4`)
  if (HEADER_LENGTH + length !== bytes.length) {
    throw new StunError('bad-length', `STUN header says ${length} bytes of attributes, the datagram has ${bytes.length - HEADER_LENGTH}`)
  }
  const { method, class: cls } = splitType(type)
  const cookie = view.getUint32(4)
  const transactionId = bytes.slice(8, HEADER_LENGTH)
  const attributes: StunAttribute[] = []
  let fingerprint = false
  let offset = HEADER_LENGTH
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) throw new StunError('truncated-attribute', `attribute header at byte ${offset} is cut off`)
    const attrType = view.getUint16(offset)
    const attrLength = view.getUint16(offset + 2)
    const valueStart = offset + 4
    if (valueStart + attrLength > bytes.length) {
      throw new StunError('truncated-attribute', `attribute 0x${attrType.toString(16).padStart(4, '0')} claims ${attrLength} bytes, ${bytes.length - valueStart} remain`)
    }
    const value = bytes.subarray(valueStart, valueStart + attrLength)
    if (attrType === Attr.FINGERPRINT) {
      if (attrLength !== 4) throw new StunError('bad-fingerprint', `FINGERPRINT has 4 bytes, got ${attrLength}`)
      if (valueStart + 4 !== bytes.length) throw new StunError('attribute-after-fingerprint', 'FINGERPRINT must be the last attribute (RFC 8489 §14.7)')
      // §14.7: the CRC covers the message up to (not including) this attribute, with the header
      // length already counting it — which it does here, since it is the last attribute.
      const expected = (crc32(bytes.subarray(0, offset)) ^ FINGERPRINT_XOR) >>> 0
      if (view.getUint32(valueStart) !== expected) throw new StunError('bad-fingerprint', 'FINGERPRINT does not match the message')
      fingerprint = true
    } else {
      attributes.push({ type: attrType, value })
    }
    offset = valueStart + ((attrLength + 3) & ~3)
  }
  if (offset !== bytes.length) throw new StunError('truncated-attribute', 'the last attribute’s padding runs past the datagram')
  return { method, class: cls, cookie, transactionId, attributes, fingerprint }
}

export function encodeStunMessage(message: StunMessage): Uint8Array {
  if (message.transactionId.length !== TRANSACTION_ID_LENGTH) throw new RangeError(`a transaction id has 12 bytes, got ${message.transactionId.length}`)
  let length = 0
  for (const a of message.attributes) {
    if (a.value.length > 0xffff) throw new RangeError(`attribute 0x${a.type.toString(16)} value is longer than 65535 bytes`)
    length += 4 + ((a.value.length + 3) & ~3)
  }
  if (message.fingerprint) length += 8
  if (length > 0xffff) throw new RangeError('STUN message is longer than 65535 bytes of attributes')
  const out = new Uint8Array(HEADER_LENGTH + length)
  const view = new DataView(out.buffer)
  view.setUint16(0, messageType(message.method, message.class))
  view.setUint16(2, length)
  view.setUint32(4, message.cookie >>> 0)
  out.set(message.transactionId, 8)
  let offset = HEADER_LENGTH
  for (const a of message.attributes) {
    view.setUint16(offset, a.type)
    view.setUint16(offset + 2, a.value.length)
    out.set(a.value, offset + 4)
    // Padding bytes are zero here; §14 lets receivers ignore whatever they hold.
    offset += 4 + ((a.value.length + 3) & ~3)
  }
  if (message.fingerprint) {
    view.setUint16(offset, Attr.FINGERPRINT)
    view.setUint16(offset + 2, 4)
    view.setUint32(offset + 4, (crc32(out.subarray(0, offset)) ^ FINGERPRINT_XOR) >>> 0)
  }
  return out
}

/** MAPPED-ADDRESS value (RFC 8489 §14.1): 0, family (1 = IPv4, 2 = IPv6), port, address. */
export function encodeMappedAddress(addr: TransportAddress): Uint8Array {
  const out = new Uint8Array(4 + addr.address.length)
  out[1] = addr.family === 4 ? 0x01 : 0x02
  out[2] = addr.port >> 8
  out[3] = addr.port & 0xff
  out.set(addr.address, 4)
  return out
}

export function decodeMappedAddress(value: Uint8Array): TransportAddress {
  if (value.length < 4) throw new StunError('bad-address', `an address attribute has at least 4 bytes, got ${value.length}`)
  const family = value[1] === 0x01 ? 4 : value[1] === 0x02 ? 6 : undefined
  if (family === undefined) throw new StunError('bad-address', `address family 0x${value[1]!.toString(16)} is neither IPv4 (1) nor IPv6 (2)`)
  const size = family === 4 ? 4 : 16
  if (value.length !== 4 + size) throw new StunError('bad-address', `an IPv${family} address attribute has ${4 + size} bytes, got ${value.length}`)
  return { family, port: (value[2]! << 8) | value[3]!, address: value.slice(4) }
}

/** XOR-MAPPED-ADDRESS (RFC 8489 §14.2): port XOR the cookie's top 16 bits; address XOR the cookie (IPv4) or cookie ‖ transaction id (IPv6). */
function xorMask(transactionId: Uint8Array): Uint8Array {
  const mask = new Uint8Array(16)
  new DataView(mask.buffer).setUint32(0, MAGIC_COOKIE)
  mask.set(transactionId, 4)
  return mask
}

export function encodeXorMappedAddress(addr: TransportAddress, transactionId: Uint8Array): Uint8Array {
  const mask = xorMask(transactionId)
  const out = encodeMappedAddress(addr)
  out[2] = out[2]! ^ mask[0]!
  out[3] = out[3]! ^ mask[1]!
  for (let i = 0; i < addr.address.length; i++) out[4 + i] = out[4 + i]! ^ mask[i]!
  return out
}

export function decodeXorMappedAddress(value: Uint8Array, transactionId: Uint8Array): TransportAddress {
  const plain = decodeMappedAddress(value)
  const mask = xorMask(transactionId)
  plain.port ^= (mask[0]! << 8) | mask[1]!
  for (let i = 0; i < plain.address.length; i++) plain.address[i] = plain.address[i]! ^ mask[i]!
  return plain
}

/** ERROR-CODE value (RFC 8489 §14.8): 21 zero bits, class (hundreds), number (0–99), UTF-8 reason. */
export function encodeErrorCode(code: number, reason: string): Uint8Array {
  const text = new TextEncoder().encode(reason)
  const out = new Uint8Array(4 + text.length)
  out[2] = Math.floor(code / 100) & 0x07
  out[3] = code % 100
  out.set(text, 4)
  return out
}

export function decodeErrorCode(value: Uint8Array): { code: number; reason: string } {
  if (value.length < 4) throw new StunError('truncated-attribute', `ERROR-CODE has at least 4 bytes, got ${value.length}`)
  return { code: (value[2]! & 0x07) * 100 + value[3]!, reason: new TextDecoder().decode(value.subarray(4)) }
}

/** UNKNOWN-ATTRIBUTES value (RFC 8489 §14.9): the 16-bit types, back to back. */
export function encodeUnknownAttributes(types: number[]): Uint8Array {
  const out = new Uint8Array(types.length * 2)
  types.forEach((t, i) => {
    out[2 * i] = t >> 8
    out[2 * i + 1] = t & 0xff
  })
  return out
}
