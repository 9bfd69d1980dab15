// A stand-in for the overlay TCP/IP stack's ICMP handling until that stack is wired into the Node loop:
// answers ICMP and ICMPv6 echo requests addressed to one of our own overlay addresses.
import { addressEquals, type IpAddress } from '../../wire/address.ts'
import { WireError } from '../../wire/errors.ts'
import { buildEcho, parseEcho } from '../../wire/icmp.ts'
import { buildIp, parseIp, PROTO_ICMP, PROTO_ICMPV6 } from '../../wire/ip.ts'

/** The echo reply to send back, or undefined when `packet` is not a valid echo request to one of `localAddresses`. */
export function echoReplyFor(packet: Uint8Array, localAddresses: readonly IpAddress[]): Uint8Array | undefined {
  try {
    const ip = parseIp(packet)
    const icmpProtocol = ip.version === 4 ? PROTO_ICMP : PROTO_ICMPV6
    if (ip.protocol !== icmpProtocol) return undefined
    if (!localAddresses.some((local) => addressEquals(local, ip.dst))) return undefined
    const echo = parseEcho(ip.payload, ip.version, ip.src, ip.dst)
    if (echo?.kind !== 'request') return undefined
    const reply = buildEcho({ kind: 'reply', id: echo.id, seq: echo.seq, data: echo.data }, ip.version, ip.dst, ip.src)
    return buildIp({ src: ip.dst, dst: ip.src, protocol: icmpProtocol, payload: reply })
  } catch (error) {
    if (error instanceof WireError) return undefined
    throw error
  }
}
