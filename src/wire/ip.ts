import { type IpAddress } from './address.ts'
import { finishChecksum as imported_finishChecksum, onesComplementSumOf as imported_onesComplementSumOf } from './checksum.ts'
import { WireError } from './errors.ts'
import { checkAddressPair as imported_checkAddressPair, checkUint as imported_checkUint, readUint16 as imported_readUint16, writeUint16 as imported_writeUint16 } from './fields.ts'

// Module-local copies of the imports the per-packet path calls: under Node's ESM→CJS interop
// (tsx, vitest) every use of an imported binding is a getter call, ~10 % of a 1420-byte profile.
const finishChecksum = imported_finishChecksum
const onesComplementSumOf = imported_onesComplementSumOf
const checkAddressPair = imported_checkAddressPair
const checkUint = imported_checkUint
const readUint16 = imported_readUint16
const writeUint16 = imported_writeUint16

export const PROTO_ICMP = 1
export const PROTO_TCP = 6
export const PROTO_UDP = 17
export const PROTO_ICMPV6 = 58

const IPV4_HEADER_LENGTH = 20
const IPV6_HEADER_LENGTH = 40
const IPV6_HOP_BY_HOP = 0
const IPV6_ROUTING = 43
const IPV6_FRAGMENT = 44
const IPV6_DESTINATION_OPTIONS = 60

export interface IpPacket {
  version: 4 | 6
  /** View into the packet. */
  src: IpAddress
  /** View into the packet. */
  dst: IpAddress
  /** Upper-layer protocol (after any skipped IPv6 extension headers). */
  protocol: number
  /** IPv4 TTL or IPv6 hop limit. */
  ttl: number
  /** Bytes before the payload, including IPv4 options and IPv6 extension headers. */
  headerLength: number
  /** View of the upper-layer bytes, bounded by the stated length. */
  payload: Uint8Array
}

export interface IpBuildOptions {
  src: IpAddress
  dst: IpAddress
  protocol: number
  payload: Uint8Array
  ttl?: number
  /** IPv4 identification field; ignored for IPv6. */
  id?: number
}

/** The IP version of a packet long enough to hold that version's fixed header, else undefined. */
export function ipVersion(packet: Uint8Array): 4 | 6 | undefined {
  if (packet.length === 0) return undefined
  const version = packet[0]! >> 4
  if (version === 4 && packet.length >= IPV4_HEADER_LENGTH) return 4
  if (version === 6 && packet.length >= IPV6_HEADER_LENGTH) return 6
  return undefined
}

/** The source address as a view, without validating anything beyond the fixed header size. */
export function ipSource(packet: Uint8Array): IpAddress | undefined {
  const version = ipVersion(packet)
  if (version === 4) return packet.subarray(12, 16)
  if (version === 6) return packet.subarray(8, 24)
  return undefined
}

/** The destination address as a view, without validating anything beyond the fixed header size. */
export function ipDestination(packet: Uint8Array): IpAddress | undefined {
  const version = ipVersion(packet)
  if (version === 4) return packet.subarray(16, 20)
  if (version === 6) return packet.subarray(24, 40)
  return undefined
}

function parseIpv4(packet: Uint8Array): IpPacket {
  if (packet.length < IPV4_HEADER_LENGTH) {
    throw new WireError('truncated', `IPv4 packet of ${packet.length} bytes is shorter than its 20-byte header`)
  }
  const headerLength = (packet[0]! & 0x0f) * 4
  if (headerLength < IPV4_HEADER_LENGTH) {
    throw new WireError('bad-length', `IPv4 header length ${headerLength} is below 20`)
  }
  const totalLength = readUint16(packet, 2)
  if (totalLength < headerLength) {
    throw new WireError('bad-length', `IPv4 total length ${totalLength} is below header length ${headerLength}`)
  }
  if (packet.length < totalLength) {
    throw new WireError('truncated', `IPv4 total length ${totalLength} exceeds the ${packet.length} bytes received`)
  }
  // A header is a few words: the plain 16-bit loop beats setting up the word-wise sum.
  if (finishChecksum(onesComplementSumOf(packet, 0, headerLength, 0)) !== 0) {
    throw new WireError('bad-checksum', 'IPv4 header checksum mismatch')
  }
  const moreFragments = (packet[6]! & 0x20) !== 0
  const fragmentOffset = ((packet[6]! & 0x1f) << 8) | packet[7]!
  if (moreFragments || fragmentOffset !== 0) {
    throw new WireError('unsupported', 'IPv4 fragments are not reassembled')
  }
  return {
    version: 4,
    src: packet.subarray(12, 16),
    dst: packet.subarray(16, 20),
    protocol: packet[9]!,
    ttl: packet[8]!,
    headerLength,
    payload: packet.subarray(headerLength, totalLength),
  }
}

function parseIpv6(packet: Uint8Array): IpPacket {
  if (packet.length < IPV6_HEADER_LENGTH) {
    throw new WireError('truncated', `IPv6 packet of ${packet.length} bytes is shorter than its 40-byte header`)
  }
  const payloadLength = readUint16(packet, 4)
  const end = IPV6_HEADER_LENGTH + payloadLength
  if (packet.length < end) {
    throw new WireError('truncated', `IPv6 payload length ${payloadLength} exceeds the ${packet.length - 40} bytes received`)
  }
  let nextHeader = packet[6]!
  let offset = IPV6_HEADER_LENGTH
  for (;;) {
    if (nextHeader === IPV6_FRAGMENT) {
      throw new WireError('unsupported', 'IPv6 fragments are not reassembled')
    }
    const isExtension = (nextHeader === IPV6_HOP_BY_HOP && offset === IPV6_HEADER_LENGTH) || nextHeader === IPV6_ROUTING || nextHeader === IPV6_DESTINATION_OPTIONS
    if (!isExtension) break
    if (end - offset < 8) {
      throw new WireError('truncated', `IPv6 extension header ${nextHeader} runs past the payload`)
    }
    const extensionLength = (packet[offset + 1]! + 1) * 8
    if (end - offset < extensionLength) {
      throw new WireError('truncated', `IPv6 extension header ${nextHeader} of ${extensionLength} bytes runs past the payload`)
    }
    nextHeader = packet[offset]!
    offset += extensionLength
  }
  if (nextHeader === IPV6_HOP_BY_HOP) {
    throw new WireError('bad-option', 'IPv6 hop-by-hop options header is only allowed first')
  }
  return {
    version: 6,
    src: packet.subarray(8, 24),
    dst: packet.subarray(24, 40),
    protocol: nextHeader,
    ttl: packet[7]!,
    headerLength: offset,
    payload: packet.subarray(offset, end),
  }
}

/** Parses and validates an IPv4 or IPv6 packet; bytes past the stated length are ignored. */
export function parseIp(packet: Uint8Array): IpPacket {
  if (packet.length === 0) throw new WireError('truncated', 'empty IP packet')
  const version = packet[0]! >> 4
  if (version === 4) return parseIpv4(packet)
  if (version === 6) return parseIpv6(packet)
  throw new WireError('bad-version', `IP version ${version} is neither 4 nor 6`)
}

/** Validates the IP fields of a packet and returns its header length (internal to src/wire). */
export function ipHeaderLength(src: IpAddress, dst: IpAddress, protocol: number, ttl: number, id: number, payloadLength: number): number {
  checkAddressPair(src, dst)
  checkUint('IP protocol', protocol, 8)
  checkUint('IP ttl', ttl, 8)
  checkUint('IPv4 id', id, 16)
  if (src.length === 4) {
    const totalLength = IPV4_HEADER_LENGTH + payloadLength
    if (totalLength > 0xffff) throw new WireError('bad-length', `IPv4 packet of ${totalLength} bytes exceeds 65535`)
    return IPV4_HEADER_LENGTH
  }
  if (payloadLength > 0xffff) throw new WireError('bad-length', `IPv6 payload of ${payloadLength} bytes exceeds 65535`)
  return IPV6_HEADER_LENGTH
}

/**
 * Writes a validated IP header at the start of zero-filled `packet`, whose length is the whole
 * packet (internal to src/wire).
 */
export function writeIpHeader(packet: Uint8Array, src: IpAddress, dst: IpAddress, protocol: number, ttl: number, id: number): void {
  if (src.length === 4) {
    packet[0] = 0x45
    writeUint16(packet, 2, packet.length)
    writeUint16(packet, 4, id)
    // Don't Fragment: we never reassemble fragments, so ask the path for "fragmentation needed" instead.
    packet[6] = 0x40
    packet[8] = ttl
    packet[9] = protocol
    packet.set(src, 12)
    packet.set(dst, 16)
    writeUint16(packet, 10, finishChecksum(onesComplementSumOf(packet, 0, IPV4_HEADER_LENGTH, 0)))
    return
  }
  packet[0] = 0x60
  writeUint16(packet, 4, packet.length - IPV6_HEADER_LENGTH)
  packet[6] = protocol
  packet[7] = ttl
  packet.set(src, 8)
  packet.set(dst, 24)
}

/** Builds an IPv4 packet (when `src` has 4 bytes; DF set, no options) or IPv6 packet around `payload`. */
export function buildIp({ src, dst, protocol, payload, ttl = 64, id = 0 }: IpBuildOptions): Uint8Array {
  const headerLength = ipHeaderLength(src, dst, protocol, ttl, id, payload.length)
  const packet = new Uint8Array(headerLength + payload.length)
  writeIpHeader(packet, src, dst, protocol, ttl, id)
  packet.set(payload, headerLength)
  return packet
}
