// Overlay address allocation: IPv4 from 100.64.0.0/10 (CGNAT, as Tailscale uses), IPv6 from the
// network's ULA /48. A node's address is derived from a hash of its node key and then probed
// linearly past taken ones, so the same key tends to land on the same address even in a fresh
// network; stability across restarts comes from the store, which remembers every allocation.
import { randomBytes, sha256 } from '../../crypto/index.ts'
import { formatAddress, parseAddress } from '../../wire/index.ts'

export const IPV4_PREFIX = '100.64.0.0/10'
const IPV4_BASE = (100 << 24) | (64 << 16)
const IPV4_SIZE = 1 << 22

export class AllocationError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AllocationError'
  }
}

function ipv4FromOffset(offset: number): string {
  const n = (IPV4_BASE + offset) >>> 0
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

/**
 * Addresses we never hand out: the first and last of the range, any x.x.x.0 / x.x.x.255 (some
 * stacks still treat them as network/broadcast), and 100.100.100.0/24, which Tailscale reserves
 * for its own service address so Burrow nodes can share a machine with it without confusion.
 */
function reservedOffset(offset: number): boolean {
  const last = offset & 255
  if (last === 0 || last === 255) return true
  const address = (IPV4_BASE + offset) >>> 0
  return address >>> 8 === ((100 << 16) | (100 << 8) | 100)
}

/** Picks a free IPv4 address for `nodeKey`; `taken` says whether an address is already in use. */
export function allocateIpv4(nodeKey: Uint8Array, taken: (address: string) => boolean): string {
  const digest = sha256(nodeKey)
  const start = ((digest[0]! << 24) | (digest[1]! << 16) | (digest[2]! << 8) | digest[3]!) >>> 0
  for (let i = 0; i < IPV4_SIZE; i++) {
    const offset = (start + i) % IPV4_SIZE
    if (reservedOffset(offset)) continue
    const address = ipv4FromOffset(offset)
    if (!taken(address)) return address
  }
  throw new AllocationError(`no free IPv4 address left in ${IPV4_PREFIX}`)
}

/** A fresh RFC 4193 ULA /48: fd00::/8 followed by a 40-bit random global id. */
export function generateUlaPrefix(random: (length: number) => Uint8Array = randomBytes): string {
  const id = random(5)
  const bytes = new Uint8Array(16)
  bytes[0] = 0xfd
  bytes.set(id, 1)
  return `${formatAddress(bytes)}/48`
}

/**
 * The node's IPv6 address: the network's /48, subnet 0, and the IPv4 address in the low 32 bits.
 * Embedding the (unique) IPv4 address makes the IPv6 address unique without a second search.
 */
export function ipv6For(ulaPrefix: string, ipv4: string): string {
  const slash = ulaPrefix.indexOf('/')
  const base = parseAddress(slash === -1 ? ulaPrefix : ulaPrefix.slice(0, slash))
  if (base.length !== 16 || base[0] !== 0xfd || ulaPrefix.slice(slash + 1) !== '48') {
    throw new AllocationError(`IPv6 prefix ${ulaPrefix} is not a ULA /48 (fdXX:XXXX:XXXX::/48)`)
  }
  const v4 = parseAddress(ipv4)
  if (v4.length !== 4) throw new AllocationError(`${ipv4} is not an IPv4 address`)
  const out = new Uint8Array(16)
  out.set(base.subarray(0, 6), 0)
  out.set(v4, 12)
  return formatAddress(out)
}
