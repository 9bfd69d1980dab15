// One line per IP packet, in the spirit of tcpdump's default output, for debug logs:
//   IP 100.64.0.1.51000 > 100.64.0.2.80: TCP [S.] seq 1000 ack 2001 win 65535 len 0
//   IP6 fd7a::1 > fd7a::2: ICMP6 echo request id 7 seq 1 len 64
// It never throws: a packet it cannot read is summarized as what is wrong with it, since the
// packets worth logging are often exactly the malformed ones.
import { formatAddress } from './address.ts'
import { transportChecksum } from './checksum.ts'
import { WireError } from './errors.ts'
import { ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, parseTcp } from './tcp.ts'
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, parseIp } from './ip.ts'

// tcpdump's flag letters, in its order ("." is ACK).
const TCP_FLAG_LETTERS: ReadonlyArray<[number, string]> = [
  [SYN, 'S'],
  [FIN, 'F'],
  [RST, 'R'],
  [PSH, 'P'],
  [URG, 'U'],
  [ECE, 'E'],
  [CWR, 'W'],
  [ACK, '.'],
]

const ICMP_NAMES: Record<number, string> = { 0: 'echo reply', 3: 'unreachable', 8: 'echo request', 11: 'time exceeded' }
const ICMPV6_NAMES: Record<number, string> = {
  1: 'unreachable',
  2: 'packet too big',
  3: 'time exceeded',
  128: 'echo request',
  129: 'echo reply',
  133: 'router solicitation',
  134: 'router advertisement',
  135: 'neighbor solicitation',
  136: 'neighbor advertisement',
}

function tcpFlags(flags: number): string {
  let text = ''
  for (const [bit, letter] of TCP_FLAG_LETTERS) if (flags & bit) text += letter
  return text || 'none'
}

/** tcpdump joins address and port with a dot, for IPv6 too. */
function endpoint(address: Uint8Array, port?: number): string {
  const text = formatAddress(address)
  return port === undefined ? text : `${text}.${port}`
}

/** A one-line human summary of an IP packet; never throws. */
export function summarizePacket(packet: Uint8Array): string {
  let ip
  try {
    ip = parseIp(packet)
  } catch (error) {
    const reason = error instanceof WireError ? error.message : String(error)
    return `invalid IP packet (${packet.length} bytes): ${reason}`
  }
  const family = ip.version === 4 ? 'IP' : 'IP6'
  const body = ip.payload
  const from = (port?: number) => endpoint(ip.src, port)
  const to = (port?: number) => endpoint(ip.dst, port)
  if (ip.protocol === PROTO_TCP) {
    try {
      const seg = parseTcp(body, ip.src, ip.dst, false)
      const bad = transportChecksum(body, ip.src, ip.dst, PROTO_TCP) !== 0 ? ' [bad cksum]' : ''
      const ack = seg.flags & ACK ? ` ack ${seg.ack}` : ''
      return `${family} ${from(seg.srcPort)} > ${to(seg.dstPort)}: TCP [${tcpFlags(seg.flags)}] seq ${seg.seq}${ack} win ${seg.window} len ${seg.payload.length}${bad}`
    } catch (error) {
      return `${family} ${from()} > ${to()}: TCP invalid (${(error as Error).message})`
    }
  }
  if (ip.protocol === PROTO_UDP) {
    if (body.length < 8) return `${family} ${from()} > ${to()}: UDP truncated (${body.length} bytes)`
    const srcPort = (body[0]! << 8) | body[1]!
    const dstPort = (body[2]! << 8) | body[3]!
    return `${family} ${from(srcPort)} > ${to(dstPort)}: UDP len ${body.length - 8}`
  }
  if (ip.protocol === PROTO_ICMP || ip.protocol === PROTO_ICMPV6) {
    const v6 = ip.protocol === PROTO_ICMPV6
    const name = v6 ? 'ICMP6' : 'ICMP'
    if (body.length < 4) return `${family} ${from()} > ${to()}: ${name} truncated (${body.length} bytes)`
    const type = body[0]!
    const kind = (v6 ? ICMPV6_NAMES : ICMP_NAMES)[type] ?? `type ${type} code ${body[1]}`
    const isEcho = v6 ? type === 128 || type === 129 : type === 0 || type === 8
    const echo = isEcho && body.length >= 8 ? ` id ${(body[4]! << 8) | body[5]!} seq ${(body[6]! << 8) | body[7]!}` : ''
    return `${family} ${from()} > ${to()}: ${name} ${kind}${echo} len ${body.length}`
  }
  return `${family} ${from()} > ${to()}: protocol ${ip.protocol} len ${body.length}`
}
