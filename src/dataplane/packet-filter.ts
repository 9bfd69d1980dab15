// The inbound packet filter of a tailnet node: which decrypted packets from peers may reach our
// overlay. Sans-IO and synchronous; the dataplane core asks it about every inbound packet and
// tells it about every outbound one (UDP replies are admitted by the flows we started).
//
// The verdicts are tailscaled's (wgengine/filter/filter.go `runIn4`/`runIn6`, `runOut`, and
// match.go, v1.102.x), so a Burrow node refuses exactly what a tailscaled node with the same
// PacketFilters would:
// - TCP: only a SYN (SYN set, ACK clear) is checked; every other segment belongs to a connection
//   that had to start with a SYN, so it passes (tailscaled keeps no TCP state either);
// - UDP and SCTP: admitted when a rule matches, or when it answers a flow we sent (the reversed
//   5-tuple is remembered, 512 flows, least recently used forgotten);
// - ICMP: echo replies and errors pass; anything else when some rule admits its source to its
//   destination address on any port;
// - TSMP (IP protocol 99) is tailscaled's own control messages: we speak none of it, it is
//   dropped under its own reason so it can be counted (capability version 144 says peers send it);
// - non-first fragments pass (they carry no ports; the first fragment was judged);
// - other protocols: only by a rule that lists the protocol and opens all ports.
// A rule matches when the protocol is in its list (empty = TCP, UDP, ICMPv4, ICMPv6), the source
// is in one of its source prefixes, and the destination address and port in one of its ranges.
import { formatAddress, parsePrefix, prefixContains, type Prefix } from '../wire/address.ts'

/** One rule as the control plane hands it over (src/control/control-plane.ts PacketFilterRule). */
export interface PacketFilterRuleInput {
  srcIPs: string[]
  dstPorts: Array<{ prefix: string; ports: { first: number; last: number } }>
  protocols: number[]
}

export type FilterVerdict =
  | { accept: true }
  | {
      accept: false
      /** `filtered`: no rule admits it; `tsmp`: a Tailscale control message, which we do not speak. */
      reason: 'filtered' | 'tsmp'
      /** Human-readable summary for a debug log: `TCP 100.64.0.2:51000 > 100.64.0.1:22 no rules matched`. */
      summary: string
    }

const TCP = 6
const UDP = 17
const ICMPV4 = 1
const ICMPV6 = 58
const SCTP = 132
const TSMP = 99
const DEFAULT_PROTOCOLS = [TCP, UDP, ICMPV4, ICMPV6]
const FLOW_CACHE_SIZE = 512
const TCP_SYN = 0x02
const TCP_ACK = 0x10

interface CompiledRule {
  protocols: ReadonlySet<number>
  sources: Prefix[]
  destinations: Array<{ prefix: Prefix; first: number; last: number }>
}

/** The fields of an IP packet the filter looks at. */
interface Parsed {
  version: 4 | 6
  protocol: number
  src: Uint8Array
  dst: Uint8Array
  /** Ports for TCP/UDP/SCTP, 0 otherwise. */
  srcPort: number
  dstPort: number
  tcpFlags: number
  icmpType: number
  /** A fragment other than the first: no transport header. */
  laterFragment: boolean
}

export class PacketFilterError extends Error {
  override readonly name = 'PacketFilterError'
}

export class PacketFilter {
  private readonly rules: CompiledRule[]
  /** Reversed tuples of UDP/SCTP flows we sent, in least-recently-used order (Map keeps insertion order). */
  private readonly flows = new Map<string, true>()

  /** Compiles the rules; a malformed prefix throws a PacketFilterError naming it. */
  constructor(rules: readonly PacketFilterRuleInput[]) {
    this.rules = rules.map((rule) => ({
      protocols: new Set(rule.protocols.length === 0 ? DEFAULT_PROTOCOLS : rule.protocols),
      sources: rule.srcIPs.map((text) => prefix(text)),
      destinations: rule.dstPorts.map((d) => ({ prefix: prefix(d.prefix), first: d.ports.first, last: d.ports.last })),
    }))
  }

  /** Notes an outbound packet: a UDP/SCTP flow we start admits its replies (wgengine/filter `runOut`). */
  noteOutbound(packet: Uint8Array): void {
    const q = parse(packet)
    if (!q || q.laterFragment || (q.protocol !== UDP && q.protocol !== SCTP)) return
    const key = flowKey(q.protocol, q.dst, q.dstPort, q.src, q.srcPort)
    this.flows.delete(key)
    this.flows.set(key, true)
    if (this.flows.size > FLOW_CACHE_SIZE) this.flows.delete(this.flows.keys().next().value!)
  }

  /** Judges a decrypted inbound packet (the core has already checked its source against the peer's AllowedIPs). */
  checkInbound(packet: Uint8Array): FilterVerdict {
    const q = parse(packet)
    if (!q) return deny('filtered', packet, undefined, 'unparseable')
    if (q.laterFragment) return ACCEPT
    switch (q.protocol) {
      case ICMPV4:
      case ICMPV6:
        if (isIcmpReplyOrError(q)) return ACCEPT
        if (this.rules.some((r) => matchesIPsOnly(r, q))) return ACCEPT
        break
      case TCP:
        if ((q.tcpFlags & (TCP_SYN | TCP_ACK)) !== TCP_SYN) return ACCEPT
        if (this.rules.some((r) => matches(r, q))) return ACCEPT
        break
      case UDP:
      case SCTP: {
        const key = flowKey(q.protocol, q.src, q.srcPort, q.dst, q.dstPort)
        if (this.flows.has(key)) {
          this.flows.delete(key)
          this.flows.set(key, true)
          return ACCEPT
        }
        if (this.rules.some((r) => matches(r, q))) return ACCEPT
        break
      }
      case TSMP:
        return deny('tsmp', packet, q, 'TSMP not supported')
      default:
        if (this.rules.some((r) => matchesAllPorts(r, q))) return ACCEPT
        return deny('filtered', packet, q, `unknown protocol ${q.protocol}`)
    }
    return deny('filtered', packet, q, 'no rules matched')
  }
}

const ACCEPT: FilterVerdict = { accept: true }

function prefix(text: string): Prefix {
  try {
    return parsePrefix(text)
  } catch (error) {
    throw new PacketFilterError(`packet filter rule has a malformed prefix ${JSON.stringify(text)}: ${(error as Error).message}`)
  }
}

function matches(rule: CompiledRule, q: Parsed): boolean {
  if (!rule.protocols.has(q.protocol) || !rule.sources.some((p) => prefixContains(p, q.src))) return false
  return rule.destinations.some((d) => q.dstPort >= d.first && q.dstPort <= d.last && prefixContains(d.prefix, q.dst))
}

/** match.go `matchIPsOnly`: ICMP is let through to an address any rule opens to the source, whatever the ports or protocols. */
function matchesIPsOnly(rule: CompiledRule, q: Parsed): boolean {
  return rule.sources.some((p) => prefixContains(p, q.src)) && rule.destinations.some((d) => prefixContains(d.prefix, q.dst))
}

/** match.go `matchProtoAndIPsOnlyIfAllPorts`. */
function matchesAllPorts(rule: CompiledRule, q: Parsed): boolean {
  if (!rule.protocols.has(q.protocol) || !rule.sources.some((p) => prefixContains(p, q.src))) return false
  return rule.destinations.some((d) => d.first === 0 && d.last === 65535 && prefixContains(d.prefix, q.dst))
}

/** net/packet `IsEchoResponse` / `IsError`: echo reply; destination unreachable, time exceeded (and IPv6's packet too big, parameter problem). */
function isIcmpReplyOrError(q: Parsed): boolean {
  if (q.version === 4) return q.icmpType === 0 || q.icmpType === 3 || q.icmpType === 11
  return q.icmpType === 129 || (q.icmpType >= 1 && q.icmpType <= 4)
}

function flowKey(protocol: number, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): string {
  return `${protocol}|${src.join('.')}|${srcPort}|${dst.join('.')}|${dstPort}`
}

function parse(packet: Uint8Array): Parsed | undefined {
  const version = packet[0]! >> 4
  let offset: number
  let protocol: number
  let src: Uint8Array
  let dst: Uint8Array
  let laterFragment = false
  if (version === 4) {
    if (packet.length < 20) return undefined
    offset = (packet[0]! & 0x0f) * 4
    if (offset < 20 || packet.length < offset) return undefined
    protocol = packet[9]!
    laterFragment = (((packet[6]! & 0x1f) << 8) | packet[7]!) !== 0
    src = packet.subarray(12, 16)
    dst = packet.subarray(16, 20)
  } else if (version === 6) {
    if (packet.length < 40) return undefined
    offset = 40
    protocol = packet[6]!
    src = packet.subarray(8, 24)
    dst = packet.subarray(24, 40)
    // A fragment header (44) with a non-zero offset: no transport header follows.
    if (protocol === 44 && packet.length >= 48) {
      laterFragment = ((packet[42]! << 8) | packet[43]!) >> 3 !== 0
      protocol = packet[40]!
      offset = 48
    }
  } else {
    return undefined
  }
  const q: Parsed = { version, protocol, src, dst, srcPort: 0, dstPort: 0, tcpFlags: 0, icmpType: 0, laterFragment }
  if (laterFragment) return q
  const transport = packet.subarray(offset)
  if (protocol === TCP || protocol === UDP || protocol === SCTP) {
    // A first fragment too short for ports is judged on port 0 (tailscaled treats it as a fragment with no ports).
    if (transport.length >= 4) {
      q.srcPort = (transport[0]! << 8) | transport[1]!
      q.dstPort = (transport[2]! << 8) | transport[3]!
    }
    if (protocol === TCP && transport.length >= 14) q.tcpFlags = transport[13]!
  } else if (protocol === ICMPV4 || protocol === ICMPV6) {
    q.icmpType = transport.length >= 1 ? transport[0]! : 255
  }
  return q
}

const PROTOCOL_NAMES: Record<number, string> = { [TCP]: 'TCP', [UDP]: 'UDP', [ICMPV4]: 'ICMPv4', [ICMPV6]: 'ICMPv6', [SCTP]: 'SCTP', [TSMP]: 'TSMP' }

function deny(reason: 'filtered' | 'tsmp', packet: Uint8Array, q: Parsed | undefined, why: string): FilterVerdict {
  if (!q) return { accept: false, reason, summary: `${packet.length}-byte packet ${why}` }
  const name = PROTOCOL_NAMES[q.protocol] ?? `proto ${q.protocol}`
  const host = (a: Uint8Array) => (a.length === 4 ? formatAddress(a) : `[${formatAddress(a)}]`)
  const ports = q.protocol === TCP || q.protocol === UDP || q.protocol === SCTP
  const end = (a: Uint8Array, port: number) => (ports ? `${host(a)}:${port}` : host(a))
  return { accept: false, reason, summary: `${name} ${end(q.src, q.srcPort)} > ${end(q.dst, q.dstPort)} ${why}` }
}
