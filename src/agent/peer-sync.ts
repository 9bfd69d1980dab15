// Peer sync, sans-IO: what the dataplane must do so that it matches a netmap. A pure function of
// what the agent has applied so far and the control plane's current netmap; the agent performs
// the operations in order and records each one that succeeded, so a failed one is planned again
// at the next netmap.
import type { Netmap, NetmapPeer, RelayMap } from '../control/control-plane.ts'

/** One peer as the agent has put it into the dataplane. */
export interface AppliedPeer {
  /** The relay region its route goes through. */
  relay: number
  allowedIPs: readonly string[]
  /** The disco key its direct path was set up with (null: no direct path). */
  discoKey: string | null
}

export type PeerOp =
  /** Hold a relay connection in `region` as home (NotePreferred) and report it to the control plane. */
  | { op: 'set-home'; region: number }
  /** Remove the peer (its route and direct path); `relay` is the region to let go of. */
  | { op: 'remove-peer'; nodeKey: string; relay: number }
  | { op: 'add-peer'; nodeKey: string; allowedIPs: string[]; relay: number }
  /** Route the peer through another relay region (its session and AllowedIPs stay). */
  | { op: 'move-peer'; nodeKey: string; relay: number; from: number }
  /** Start or update the peer's direct-path discovery (a new disco key means it restarted). */
  | { op: 'set-direct'; nodeKey: string; discoKey: string; relay: number }

/**
 * Our home region: the current one while the relay map still has it, else the control plane's
 * suggestion, else the lowest-numbered region not marked `avoid` (any region, if all are).
 */
export function chooseHome(current: number | undefined, relayMap: RelayMap): number | undefined {
  const { regions } = relayMap
  if (current !== undefined && regions.has(current)) return current
  if (relayMap.suggestedHome !== undefined && regions.has(relayMap.suggestedHome)) return relayMap.suggestedHome
  const ids = [...regions.keys()].sort((a, b) => a - b)
  return ids.find((id) => !regions.get(id)!.avoid) ?? ids[0]
}

/** The region a peer is reached through: its home relay when the relay map has it, else ours. */
export function relayOf(peer: NetmapPeer, relayMap: RelayMap, home: number): number {
  return peer.homeRelay !== null && relayMap.regions.has(peer.homeRelay) ? peer.homeRelay : home
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/**
 * The operations that turn `applied` into `netmap`, with our home region currently `home`.
 * Order: home first (every route may need it), then removals (they free relays), then additions
 * and moves, then direct-path updates (they need the peer's relay). Nothing when there is no
 * relay region at all: a netmap without relays cannot route anyone.
 */
export function planPeerSync(applied: ReadonlyMap<string, AppliedPeer>, netmap: Netmap, home: number | undefined): PeerOp[] {
  const ops: PeerOp[] = []
  const nextHome = chooseHome(home, netmap.relayMap)
  if (nextHome === undefined) return ops
  if (nextHome !== home) ops.push({ op: 'set-home', region: nextHome })
  const wanted = new Map(netmap.peers.filter((peer) => peer.nodeKey !== netmap.self.nodeKey).map((peer) => [peer.nodeKey, peer]))
  const readd = new Set<string>()
  for (const [nodeKey, known] of applied) {
    const peer = wanted.get(nodeKey)
    // The dataplane keys AllowedIPs by peer, so a change re-adds it (the next handshake is fresh).
    if (peer && sameList(peer.allowedIPs, known.allowedIPs)) continue
    ops.push({ op: 'remove-peer', nodeKey, relay: known.relay })
    if (peer) readd.add(nodeKey)
  }
  const direct: PeerOp[] = []
  for (const peer of wanted.values()) {
    const relay = relayOf(peer, netmap.relayMap, nextHome)
    const known = readd.has(peer.nodeKey) ? undefined : applied.get(peer.nodeKey)
    if (!known) ops.push({ op: 'add-peer', nodeKey: peer.nodeKey, allowedIPs: [...peer.allowedIPs], relay })
    else if (known.relay !== relay) ops.push({ op: 'move-peer', nodeKey: peer.nodeKey, relay, from: known.relay })
    if (peer.discoKey !== null && (!known || known.relay !== relay || known.discoKey !== peer.discoKey)) {
      direct.push({ op: 'set-direct', nodeKey: peer.nodeKey, discoKey: peer.discoKey, relay })
    }
  }
  return [...ops, ...direct]
}
