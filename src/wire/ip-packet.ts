// Whole IP packets carrying TCP or UDP, built in one allocation: the IP header, transport header,
// options and payload are written once into the final buffer and the transport checksum is summed
// once over pseudo-header + segment. Byte for byte the same as buildIp(build{Tcp,Udp}(…)), which
// copies the payload twice; this is the per-packet path of the userspace stack. TCP packets up to
// 4 KiB are views into a shared slab (see slab.ts).
import { type IpAddress } from './address.ts'
import { finishChecksum as imported_finishChecksum, checksumWordSum as imported_checksumWordSum, pseudoHeaderSum as imported_pseudoHeaderSum } from './checksum.ts'
import { allocateBytes as imported_allocateBytes } from './slab.ts'
import { checkAddressPair as imported_checkAddressPair, writeUint16 as imported_writeUint16 } from './fields.ts'
import { PROTO_TCP as imported_PROTO_TCP, PROTO_UDP as imported_PROTO_UDP, ipHeaderLength as imported_ipHeaderLength, writeIpHeader as imported_writeIpHeader } from './ip.ts'
import { type TcpSegment, tcpHeaderLength as imported_tcpHeaderLength, writeTcpSegment as imported_writeTcpSegment } from './tcp.ts'
import { type UdpDatagram, udpLength as imported_udpLength, writeUdpDatagram as imported_writeUdpDatagram } from './udp.ts'

// Module-local copies of the imports the per-packet path calls: under Node's ESM→CJS interop
// (tsx, vitest) every use of an imported binding is a getter call, ~10 % of a 1420-byte profile.
const finishChecksum = imported_finishChecksum
const checksumWordSum = imported_checksumWordSum
const pseudoHeaderSum = imported_pseudoHeaderSum
const allocateBytes = imported_allocateBytes
const checkAddressPair = imported_checkAddressPair
const writeUint16 = imported_writeUint16
const PROTO_TCP = imported_PROTO_TCP
const PROTO_UDP = imported_PROTO_UDP
const ipHeaderLength = imported_ipHeaderLength
const writeIpHeader = imported_writeIpHeader
const tcpHeaderLength = imported_tcpHeaderLength
const writeTcpSegment = imported_writeTcpSegment
const udpLength = imported_udpLength
const writeUdpDatagram = imported_writeUdpDatagram

/** The IP header fields of a packet whose protocol and payload come from the transport builder. */
export interface IpHeaderFields {
  src: IpAddress
  dst: IpAddress
  ttl?: number
  /** IPv4 identification field; ignored for IPv6. */
  id?: number
}

function transportChecksumAt(packet: Uint8Array, start: number, src: IpAddress, dst: IpAddress, protocol: number): number {
  const initial = pseudoHeaderSum(src, dst, protocol, packet.length - start)
  return finishChecksum(checksumWordSum(packet, start, packet.length, initial))
}

/** `buildIp({ ...ip, protocol: PROTO_TCP, payload: buildTcp(seg, ip.src, ip.dst) })` in one allocation. */
export function buildIpTcp(ip: IpHeaderFields, seg: TcpSegment): Uint8Array {
  const { src, dst, ttl = 64, id = 0 } = ip
  checkAddressPair(src, dst)
  const tcpHeader = tcpHeaderLength(seg)
  const segmentLength = tcpHeader + seg.payload.length
  const ipHeader = ipHeaderLength(src, dst, PROTO_TCP, ttl, id, segmentLength)
  const packet = allocateBytes(ipHeader + segmentLength)
  writeIpHeader(packet, src, dst, PROTO_TCP, ttl, id)
  writeTcpSegment(seg, tcpHeader, packet, ipHeader)
  writeUint16(packet, ipHeader + 16, transportChecksumAt(packet, ipHeader, src, dst, PROTO_TCP))
  return packet
}

/** `buildIp({ ...ip, protocol: PROTO_UDP, payload: buildUdp(d, ip.src, ip.dst) })` in one allocation. */
export function buildIpUdp(ip: IpHeaderFields, d: UdpDatagram): Uint8Array {
  const { src, dst, ttl = 64, id = 0 } = ip
  checkAddressPair(src, dst)
  const datagramLength = udpLength(d)
  const ipHeader = ipHeaderLength(src, dst, PROTO_UDP, ttl, id, datagramLength)
  const packet = new Uint8Array(ipHeader + datagramLength)
  writeIpHeader(packet, src, dst, PROTO_UDP, ttl, id)
  writeUdpDatagram(d, datagramLength, packet, ipHeader)
  // A computed zero is sent as all ones: zero on the wire means "no checksum" (RFC 768).
  writeUint16(packet, ipHeader + 6, transportChecksumAt(packet, ipHeader, src, dst, PROTO_UDP) || 0xffff)
  return packet
}
