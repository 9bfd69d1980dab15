export { WireError, type WireErrorCode } from './errors.ts'
export {
  type IpAddress,
  type Prefix,
  parseAddress,
  formatAddress,
  parsePrefix,
  formatPrefix,
  prefixContains,
  addressEquals,
} from './address.ts'
export { onesComplementSum, finishChecksum, internetChecksum, pseudoHeaderSum } from './checksum.ts'
export {
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
  PROTO_ICMPV6,
  type IpPacket,
  type IpBuildOptions,
  parseIp,
  buildIp,
  ipVersion,
  ipSource,
  ipDestination,
} from './ip.ts'
