import { type IpAddress } from './address.ts'
import { transportChecksum } from './checksum.ts'
import { WireError } from './errors.ts'
import { checkAddressPair, checkUint, readUint16, writeUint16 } from './fields.ts'
import { PROTO_UDP } from './ip.ts'

const UDP_HEADER_LENGTH = 8

export interface UdpDatagram {
  srcPort: number
  dstPort: number
  payload: Uint8Array
}

/** Parses a UDP datagram (the IP payload), verifying its checksum; a zero checksum is accepted only over IPv4. */
export function parseUdp(segment: Uint8Array, src: IpAddress, dst: IpAddress): UdpDatagram {
  checkAddressPair(src, dst)
  if (segment.length < UDP_HEADER_LENGTH) {
    throw new WireError('truncated', `UDP datagram of ${segment.length} bytes is shorter than its 8-byte header`)
  }
  const length = readUint16(segment, 4)
  if (length < UDP_HEADER_LENGTH) throw new WireError('bad-length', `UDP length ${length} is below 8`)
  if (length > segment.length) {
    throw new WireError('truncated', `UDP length ${length} exceeds the ${segment.length} bytes received`)
  }
  const datagram = segment.subarray(0, length)
  if (readUint16(segment, 6) === 0) {
    if (src.length === 16) throw new WireError('bad-checksum', 'UDP over IPv6 must carry a checksum (RFC 8200 §8.1)')
  } else if (transportChecksum(datagram, src, dst, PROTO_UDP) !== 0) {
    throw new WireError('bad-checksum', 'UDP checksum mismatch')
  }
  return {
    srcPort: readUint16(segment, 0),
    dstPort: readUint16(segment, 2),
    payload: segment.subarray(UDP_HEADER_LENGTH, length),
  }
}

/** Validates `d` for encoding and returns the datagram length (internal to src/wire). */
export function udpLength(d: UdpDatagram): number {
  checkUint('UDP source port', d.srcPort, 16)
  checkUint('UDP destination port', d.dstPort, 16)
  const length = UDP_HEADER_LENGTH + d.payload.length
  if (length > 0xffff) throw new WireError('bad-length', `UDP datagram of ${length} bytes exceeds 65535`)
  return length
}

/** Writes a validated datagram at `out[at..]` with the checksum field zero (internal to src/wire). */
export function writeUdpDatagram(d: UdpDatagram, length: number, out: Uint8Array, at: number): void {
  writeUint16(out, at, d.srcPort)
  writeUint16(out, at + 2, d.dstPort)
  writeUint16(out, at + 4, length)
  out.set(d.payload, at + UDP_HEADER_LENGTH)
}

/** Builds the UDP header + payload with its checksum filled in (the IP header is not included). */
export function buildUdp(d: UdpDatagram, src: IpAddress, dst: IpAddress): Uint8Array {
  checkAddressPair(src, dst)
  const length = udpLength(d)
  const datagram = new Uint8Array(length)
  writeUdpDatagram(d, length, datagram, 0)
  // A computed zero is sent as all ones: zero on the wire means "no checksum" (RFC 768).
  writeUint16(datagram, 6, transportChecksum(datagram, src, dst, PROTO_UDP) || 0xffff)
  return datagram
}
