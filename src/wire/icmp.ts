import { type IpAddress } from './address.ts'
import { internetChecksum, transportChecksum } from './checksum.ts'
import { WireError } from './errors.ts'
import { checkAddressPair, checkUint, readUint16, writeUint16, writeUint32 } from './fields.ts'
import { PROTO_ICMPV6 } from './ip.ts'

const ICMP_HEADER_LENGTH = 4
const ECHO_HEADER_LENGTH = 8

export const ICMPV4_ECHO_REPLY = 0
export const ICMPV4_DEST_UNREACHABLE = 3
export const ICMPV4_ECHO_REQUEST = 8
export const ICMPV4_TIME_EXCEEDED = 11
export const ICMPV6_DEST_UNREACHABLE = 1
export const ICMPV6_PACKET_TOO_BIG = 2
export const ICMPV6_TIME_EXCEEDED = 3
export const ICMPV6_ECHO_REQUEST = 128
export const ICMPV6_ECHO_REPLY = 129

/** An ICMP or ICMPv6 message; `body` is everything after type, code and checksum. */
export interface IcmpMessage {
  type: number
  code: number
  body: Uint8Array
}

export interface Echo {
  kind: 'request' | 'reply'
  id: number
  seq: number
  data: Uint8Array
}

/** Everything an ICMP error carries besides the addresses. */
export interface IcmpError {
  type: number
  code: number
  /** The 32-bit field after the checksum (unused, pointer, MTU...); 0 by default. */
  rest?: number
  /** The packet that caused the error, starting at its IP header; truncated as RFC 1812 / RFC 4443 allow. */
  original: Uint8Array
}

// Errors quote as much of the offending packet as fits in the minimum datagram each version
// guarantees: 576 bytes for IPv4 (RFC 1812 §4.3.2.3), 1280 for IPv6 (RFC 4443 §2.4).
const MAX_QUOTE_V4 = 576 - 20 - 8
const MAX_QUOTE_V6 = 1280 - 40 - 8

function checksumOf(message: Uint8Array, version: 4 | 6, src: IpAddress, dst: IpAddress): number {
  return version === 4 ? internetChecksum(message) : transportChecksum(message, src, dst, PROTO_ICMPV6)
}

function checkVersion(version: 4 | 6, src: IpAddress, dst: IpAddress): void {
  checkAddressPair(src, dst)
  if ((version === 4 ? 4 : 16) !== src.length) {
    throw new WireError('bad-address', `ICMP version ${version} with ${src.length}-byte addresses`)
  }
}

/** Parses an ICMP (version 4) or ICMPv6 (version 6, pseudo-header checksum) message, verifying its checksum. */
export function parseIcmp(message: Uint8Array, version: 4 | 6, src: IpAddress, dst: IpAddress): IcmpMessage {
  checkVersion(version, src, dst)
  if (message.length < ICMP_HEADER_LENGTH) {
    throw new WireError('truncated', `ICMP message of ${message.length} bytes is shorter than its 4-byte header`)
  }
  if (checksumOf(message, version, src, dst) !== 0) {
    throw new WireError('bad-checksum', `ICMP${version === 6 ? 'v6' : ''} checksum mismatch`)
  }
  return { type: message[0]!, code: message[1]!, body: message.subarray(ICMP_HEADER_LENGTH) }
}

/** Builds an ICMP/ICMPv6 message with its checksum filled in. */
export function buildIcmp(m: IcmpMessage, version: 4 | 6, src: IpAddress, dst: IpAddress): Uint8Array {
  checkVersion(version, src, dst)
  checkUint('ICMP type', m.type, 8)
  checkUint('ICMP code', m.code, 8)
  const message = new Uint8Array(ICMP_HEADER_LENGTH + m.body.length)
  message[0] = m.type
  message[1] = m.code
  message.set(m.body, ICMP_HEADER_LENGTH)
  writeUint16(message, 2, checksumOf(message, version, src, dst))
  return message
}

/** Parses an echo request/reply; undefined for other ICMP types. Throws like `parseIcmp`. */
export function parseEcho(message: Uint8Array, version: 4 | 6, src: IpAddress, dst: IpAddress): Echo | undefined {
  const { type } = parseIcmp(message, version, src, dst)
  const request = version === 4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST
  const reply = version === 4 ? ICMPV4_ECHO_REPLY : ICMPV6_ECHO_REPLY
  if (type !== request && type !== reply) return undefined
  if (message.length < ECHO_HEADER_LENGTH) {
    throw new WireError('truncated', `ICMP echo of ${message.length} bytes is shorter than its 8-byte header`)
  }
  return {
    kind: type === request ? 'request' : 'reply',
    id: readUint16(message, 4),
    seq: readUint16(message, 6),
    data: message.subarray(ECHO_HEADER_LENGTH),
  }
}

export function buildEcho(echo: Echo, version: 4 | 6, src: IpAddress, dst: IpAddress): Uint8Array {
  checkUint('ICMP echo id', echo.id, 16)
  checkUint('ICMP echo sequence', echo.seq, 16)
  const body = new Uint8Array(4 + echo.data.length)
  writeUint16(body, 0, echo.id)
  writeUint16(body, 2, echo.seq)
  body.set(echo.data, 4)
  const type = version === 4 ? (echo.kind === 'request' ? ICMPV4_ECHO_REQUEST : ICMPV4_ECHO_REPLY) : echo.kind === 'request' ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY
  return buildIcmp({ type, code: 0, body }, version, src, dst)
}

/** Builds an ICMP error (destination unreachable, time exceeded, packet too big...) quoting the offending packet. */
export function buildIcmpError(error: IcmpError, version: 4 | 6, src: IpAddress, dst: IpAddress): Uint8Array {
  const rest = error.rest ?? 0
  checkUint('ICMP error field', rest, 32)
  const quoted = error.original.subarray(0, version === 4 ? MAX_QUOTE_V4 : MAX_QUOTE_V6)
  const body = new Uint8Array(4 + quoted.length)
  writeUint32(body, 0, rest)
  body.set(quoted, 4)
  return buildIcmp({ type: error.type, code: error.code, body }, version, src, dst)
}
