export { WireError, type WireErrorCode } from './errors.ts'
export { type IpAddress, type Prefix, parseAddress, formatAddress, parsePrefix, formatPrefix, prefixContains, addressEquals } from './address.ts'
export { onesComplementSum, finishChecksum, internetChecksum, pseudoHeaderSum, transportChecksum } from './checksum.ts'
export { PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6, type IpPacket, type IpBuildOptions, parseIp, buildIp, ipVersion, ipSource, ipDestination } from './ip.ts'
export { type UdpDatagram, parseUdp, buildUdp } from './udp.ts'
export {
  ICMPV4_ECHO_REPLY,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_TIME_EXCEEDED,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_TIME_EXCEEDED,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_ECHO_REPLY,
  type IcmpMessage,
  type Echo,
  type IcmpError,
  parseIcmp,
  buildIcmp,
  parseEcho,
  buildEcho,
  buildIcmpError,
} from './icmp.ts'
export { FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, MAX_WINDOW_SCALE, type TcpOptions, type TcpSegment, parseTcp, buildTcp } from './tcp.ts'
export { type IpHeaderFields, buildIpTcp, buildIpUdp } from './ip-packet.ts'
export { allocateBytes, SLAB_MAX_BYTES } from './slab.ts'
export { summarizePacket } from './summary.ts'
export {
  LINKTYPE_RAW,
  DEFAULT_SNAPLEN,
  DEFAULT_CAPTURE_MAX_BYTES,
  type PacketCaptureOptions,
  type PcapRecordView,
  PacketCapture,
  pcapFileHeader,
  pcapRecord,
  readPcap,
} from './pcap.ts'
