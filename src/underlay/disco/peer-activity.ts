// What both direct-path managers (WebRTC in src/underlay/webrtc/direct-paths.ts, plain UDP in
// src/node/udp-direct.ts) do around each peer's PeerPathSelector: notice traffic from the
// dataplane's counters, and mirror datagrams to the relay while a direct path is on trial.
import type { DataplaneCore } from '../../dataplane/core.ts'
import { looksLikeDisco } from './envelope.ts'
import type { PeerPathSelector } from './path-selector.ts'

/** A peer whose WireGuard packet counters were last seen at `txPackets`/`rxPackets`. */
export interface WatchedPeer {
  nodeKey: Uint8Array
  selector: PeerPathSelector
  txPackets: number
  rxPackets: number
}

/** Tells each peer's selector about traffic: any change in its counters since the last read is activity. */
export function noteCounterActivity(core: Pick<DataplaneCore, 'peerByKey' | 'stats'>, peers: Iterable<WatchedPeer>, now: number): void {
  for (const peer of peers) {
    const id = core.peerByKey(peer.nodeKey)
    if (id === undefined) continue
    const stats = core.stats(id)
    if (stats.txPackets !== peer.txPackets || stats.rxPackets !== peer.rxPackets) {
      peer.txPackets = stats.txPackets
      peer.rxPackets = stats.rxPackets
      peer.selector.noteActivity(now)
    }
  }
}

/**
 * What of a batch sent on the direct path also goes to the relay: while `selector` routes the peer
 * both ways (a direct path not yet trusted), copies of the WireGuard datagrams (the relay gets its
 * own bytes to own; disco pings test the direct path itself); otherwise none.
 */
export function relayMirrorCopies(selector: PeerPathSelector, now: number, datagrams: readonly Uint8Array[]): Uint8Array[] {
  if (!selector.routes(now).includes('relay')) return []
  const copies: Uint8Array[] = []
  for (const datagram of datagrams) if (!looksLikeDisco(datagram)) copies.push(datagram.slice())
  return copies
}
