// The agent's side of plain-UDP direct paths between Node peers. The manager itself needs
// `node:dgram` and lives in src/node/udp-direct.ts; the agent (which also runs in browsers) only
// knows this interface, and gets a factory for it from the Node entry (`burrow/node`).
//
// A peer is handed to the manager as well as to the WebRTC manager. Once a UDP path to it is
// proven (a pong to one of our probes came back over the socket), the manager `claim`s it: the
// agent takes it away from WebRTC, and the UDP manager alone moves its route from then on. A peer
// UDP cannot reach (a browser tab, symmetric NATs) is never claimed and keeps WebRTC (and TURN).
import type { DiscoDatagram } from '../dataplane/core.ts'
import type { UnderlayId } from '../dataplane/transport.ts'
import type { PathKind } from '../underlay/disco/path-selector.ts'
import type { WorkerContext } from '../worker/host.ts'

export interface UdpDirectPath {
  path: PathKind
  rttMs: number | null
  /** The peer's UDP endpoint in use (`203.0.113.7:41641`), while direct. */
  endpoint: string | null
  /** While direct, the path in ICE's words: `local` is host or srflx (how the peer saw us); `remote` is unknown (only the peer knows). */
  candidates: { local: string; remote: string } | null
}

export interface UdpDirect {
  /** Takes a disco datagram that is its business (arrived over its socket, or a CallMeMaybe); false leaves it to WebRTC. */
  handleDisco(disco: DiscoDatagram): boolean
  setPeer(nodeKey: string, discoKey: string, relayUnderlay: UnderlayId): void
  removePeer(nodeKey: string): void
  /** The peer's UDP path, or undefined while it has not been claimed. */
  pathOf(nodeKey: string): UdpDirectPath | undefined
  /** The coordination service's ICE servers: their `stun:` URLs are asked for our public endpoint. */
  setIceServers(servers: Array<{ urls: string | string[] }>): void
  debugInfo(): { counters: Record<string, number>; port: number; endpoints: string[] }
  stop(): void
}

export interface UdpDirectParams {
  context: WorkerContext
  discoPrivateKey: Uint8Array
  homeRelayUnderlay: UnderlayId
  /** The peer speaks UDP disco: stop WebRTC for it. */
  claim(nodeKey: string): void
  onPathChange(nodeKey: string, path: PathKind, rttMs: number | null): void
}

export type UdpDirectFactory = (params: UdpDirectParams) => UdpDirect
