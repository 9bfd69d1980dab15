// Which overlay peers may use the ports `burrow up` serves: `--allow CIDR|ADDRESS|HOSTNAME`,
// repeatable. No entry means every node of the network (WireGuard already admits only nodes of
// the network). Hostnames are looked up in the live peer map at connection time, so a peer that
// joins later under an allowed name is admitted without a restart.
import { WireError, formatPrefix, parseAddress, parsePrefix, prefixContains, type IpAddress, type Prefix } from '../wire/index.ts'

export class AllowPolicyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AllowPolicyError'
  }
}

/** What the policy needs to know about a peer of the network. */
export interface PeerIdentity {
  hostname: string
  /** Overlay addresses in text form. */
  addresses: readonly string[]
}

export type AllowEntry = { kind: 'prefix'; prefix: Prefix; text: string } | { kind: 'hostname'; hostname: string; text: string }

export type AllowDecision = { allowed: true; peer: PeerIdentity | undefined; rule: string | undefined } | { allowed: false; peer: PeerIdentity | undefined; reason: string }

// RFC 1123 labels, dot-separated; the same alphabet the coordination server gives hostnames.
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i

/** Parses one `--allow` value: a CIDR prefix, a bare IP address (one host), or a hostname. */
export function parseAllowEntry(text: string): AllowEntry {
  const trimmed = text.trim()
  if (trimmed === '') throw new AllowPolicyError('--allow needs a CIDR prefix, an address or a hostname, got an empty value')
  const looksLikeAddress = trimmed.includes(':') || trimmed.includes('/') || /^[0-9.]+$/.test(trimmed)
  if (looksLikeAddress) {
    try {
      const prefix = parsePrefix(trimmed)
      return { kind: 'prefix', prefix, text: formatPrefix(prefix) }
    } catch (error) {
      if (error instanceof WireError) throw new AllowPolicyError(`--allow ${JSON.stringify(text)}: ${error.message}`)
      throw error
    }
  }
  if (!HOSTNAME.test(trimmed)) {
    throw new AllowPolicyError(`--allow ${JSON.stringify(text)} is neither a CIDR prefix, an IP address nor a hostname (letters, digits, "-" and ".")`)
  }
  return { kind: 'hostname', hostname: trimmed.toLowerCase(), text: trimmed.toLowerCase() }
}

export class AllowPolicy {
  readonly entries: readonly AllowEntry[]

  /** Throws AllowPolicyError naming the first bad entry; an empty list admits everyone. */
  constructor(entries: readonly string[] = []) {
    this.entries = entries.map(parseAllowEntry)
  }

  get allowsEveryone(): boolean {
    return this.entries.length === 0
  }

  /**
   * Decides for a connection from `remoteAddress`. `peers` is the live peer map; it names the
   * peer in the decision (for the log) and resolves hostname entries.
   */
  check(remoteAddress: string, peers: Iterable<PeerIdentity>): AllowDecision {
    let address: IpAddress
    try {
      address = parseAddress(remoteAddress)
    } catch {
      return { allowed: false, peer: undefined, reason: `${JSON.stringify(remoteAddress)} is not an IP address` }
    }
    const peer = findPeer(address, peers)
    if (this.entries.length === 0) return { allowed: true, peer, rule: undefined }
    for (const entry of this.entries) {
      if (entry.kind === 'prefix' && prefixContains(entry.prefix, address)) return { allowed: true, peer, rule: entry.text }
      if (entry.kind === 'hostname' && peer && hostnameMatches(entry.hostname, peer.hostname)) return { allowed: true, peer, rule: entry.text }
    }
    const who = peer ? `${peer.hostname} (${remoteAddress})` : `${remoteAddress} (not in the peer map)`
    return { allowed: false, peer, reason: `${who} matches no --allow entry (${this.entries.map((e) => e.text).join(', ')})` }
  }
}

function findPeer(address: IpAddress, peers: Iterable<PeerIdentity>): PeerIdentity | undefined {
  for (const peer of peers) {
    for (const text of peer.addresses) {
      let own: IpAddress
      try {
        // Some maps give host prefixes ("100.64.0.2/32"); a host prefix contains exactly its address.
        const prefix = parsePrefix(text)
        if (prefix.bits !== prefix.address.length * 8) continue
        own = prefix.address
      } catch {
        continue
      }
      if (prefixContains({ address: own, bits: own.length * 8 }, address)) return peer
    }
  }
  return undefined
}

/** `laptop` matches a peer called `laptop` or `laptop.example.burrow`; comparison ignores case. */
function hostnameMatches(entry: string, hostname: string): boolean {
  const name = hostname.toLowerCase()
  if (name === entry) return true
  return !entry.includes('.') && name.split('.')[0] === entry
}
