// AllowedIPs as WireGuard uses them: outbound, the peer whose prefix is the longest match for the destination;
// inbound, a check that the inner source belongs to the peer the packet was authenticated as.
import { type IpAddress, type Prefix, prefixContains } from '../../wire/address.ts'

interface Route<Peer> {
  prefix: Prefix
  peer: Peer
}

export class AllowedIps<Peer> {
  // Kept longest-prefix first so the first match is the best one; peers have a handful of prefixes, so a scan is fine here.
  private routes: Route<Peer>[] = []

  /** Adds a prefix for `peer`; the same prefix given to another peer moves to that peer, as `wg set` does. */
  add(prefix: Prefix, peer: Peer): void {
    this.routes = this.routes.filter((route) => !samePrefix(route.prefix, prefix))
    this.routes.push({ prefix, peer })
    this.routes.sort((a, b) => b.prefix.bits - a.prefix.bits)
  }

  removePeer(peer: Peer): void {
    this.routes = this.routes.filter((route) => route.peer !== peer)
  }

  /** The peer owning the longest prefix containing `destination`, or undefined when no prefix does. */
  lookup(destination: IpAddress): Peer | undefined {
    for (const route of this.routes) if (prefixContains(route.prefix, destination)) return route.peer
    return undefined
  }

  /** Whether `source` is a legitimate inner source for `peer` (its longest match is that peer). */
  allows(peer: Peer, source: IpAddress): boolean {
    return this.lookup(source) === peer
  }
}

function samePrefix(a: Prefix, b: Prefix): boolean {
  if (a.bits !== b.bits || a.address.length !== b.address.length) return false
  for (let i = 0; i < a.address.length; i++) if (a.address[i] !== b.address[i]) return false
  return true
}
