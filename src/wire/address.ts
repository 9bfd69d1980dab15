import { WireError } from './errors.ts'

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address in network byte order. */
export type IpAddress = Uint8Array

export interface Prefix {
  address: IpAddress
  bits: number
}

const IPV4_OCTET = /^(?:0|[1-9][0-9]{0,2})$/
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

function parseIpv4Into(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split('.')
  if (parts.length !== 4) return false
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!
    if (!IPV4_OCTET.test(part)) return false
    const value = Number(part)
    if (value > 255) return false
    out[offset + i] = value
  }
  return true
}

/** Parses the groups on one side of `::` into 16-bit values; an embedded IPv4 tail counts as two groups. */
function parseHexGroups(text: string, allowIpv4Tail: boolean): number[] | undefined {
  if (text === '') return []
  const parts = text.split(':')
  const groups: number[] = []
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    if (HEX_GROUP.test(part)) {
      groups.push(parseInt(part, 16))
    } else if (allowIpv4Tail && i === parts.length - 1 && part.includes('.')) {
      const v4 = new Uint8Array(4)
      if (!parseIpv4Into(part, v4, 0)) return undefined
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
    } else {
      return undefined
    }
  }
  return groups
}

function parseIpv6(text: string): IpAddress | undefined {
  const doubleColon = text.indexOf('::')
  let groups: number[]
  if (doubleColon === -1) {
    const all = parseHexGroups(text, true)
    if (all === undefined || all.length !== 8) return undefined
    groups = all
  } else {
    if (text.indexOf('::', doubleColon + 1) !== -1) return undefined
    const head = parseHexGroups(text.slice(0, doubleColon), false)
    const tail = parseHexGroups(text.slice(doubleColon + 2), true)
    if (head === undefined || tail === undefined) return undefined
    const missing = 8 - head.length - tail.length
    // "::" stands for at least one zero group (RFC 4291 §2.2).
    if (missing < 1) return undefined
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail]
  }
  const out = new Uint8Array(16)
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >> 8
    out[2 * i + 1] = groups[i]! & 0xff
  }
  return out
}

/** Parses dotted-quad IPv4 or any RFC 4291 textual IPv6 form (zone ids are not accepted). */
export function parseAddress(text: string): IpAddress {
  if (text.includes(':')) {
    const v6 = parseIpv6(text)
    if (v6 !== undefined) return v6
  } else {
    const v4 = new Uint8Array(4)
    if (parseIpv4Into(text, v4, 0)) return v4
  }
  throw new WireError('bad-address', `not an IP address: ${JSON.stringify(text)}`)
}

function checkAddress(a: IpAddress): void {
  if (a.length !== 4 && a.length !== 16) {
    throw new WireError('bad-address', `an IP address has 4 or 16 bytes, got ${a.length}`)
  }
}

function isIpv4Mapped(a: IpAddress): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false
  return a[10] === 0xff && a[11] === 0xff
}

/** Dotted-quad for IPv4; RFC 5952 canonical text for IPv6 (lowercase, longest zero run of 2+ groups compressed, first wins ties;
 * IPv4-mapped addresses in the mixed `::ffff:a.b.c.d` notation of RFC 5952 §5). */
export function formatAddress(a: IpAddress): string {
  checkAddress(a)
  if (a.length === 4) return `${a[0]}.${a[1]}.${a[2]}.${a[3]}`
  if (isIpv4Mapped(a)) return `::ffff:${a[12]}.${a[13]}.${a[14]}.${a[15]}`
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push((a[2 * i]! << 8) | a[2 * i + 1]!)
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let end = i
    while (end < 8 && groups[end] === 0) end++
    if (end - i > bestLength) {
      bestStart = i
      bestLength = end - i
    }
    i = end
  }
  const hex = (from: number, to: number): string =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':')
  if (bestStart === -1) return hex(0, 8)
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`
}

export function addressEquals(a: IpAddress, b: IpAddress): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function maskInPlace(address: Uint8Array, bits: number): void {
  for (let i = 0; i < address.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i))
    address[i]! &= (0xff00 >> keep) & 0xff
  }
}

/** Parses `address/bits` or a bare address (a host prefix); host bits are masked off. */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/')
  const address = parseAddress(slash === -1 ? text : text.slice(0, slash))
  const maxBits = address.length * 8
  let bits = maxBits
  if (slash !== -1) {
    const bitsText = text.slice(slash + 1)
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(bitsText) || Number(bitsText) > maxBits) {
      throw new WireError('bad-address', `bad prefix length in ${JSON.stringify(text)} (0..${maxBits})`)
    }
    bits = Number(bitsText)
  }
  maskInPlace(address, bits)
  return { address, bits }
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.address)}/${p.bits}`
}

/** True when `a` is in `p`; addresses of the other family are never contained. */
export function prefixContains(p: Prefix, a: IpAddress): boolean {
  if (a.length !== p.address.length) return false
  // A hand-built prefix may claim more bits than the address has; compare what exists.
  let bits = Math.min(p.bits, a.length * 8)
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff00 >> bits) & 0xff
    if (((a[i]! ^ p.address[i]!) & mask) !== 0) return false
  }
  return true
}
