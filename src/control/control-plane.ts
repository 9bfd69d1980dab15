// The contract between a node agent (src/agent) and whatever tells it who its peers are.
//
// A control plane turns one server's protocol (Burrow's /control WebSocket today; Tailscale's
// ts2021 map long-poll next) into one normalized netmap. It may receive the map whole or as a
// stream of deltas; it merges them itself and always hands the agent the whole current netmap,
// plus a hint of what changed. The agent never sees a wire format: it diffs the netmap it has
// applied against the new one (src/agent/peer-sync.ts) and changes the dataplane to match.
//
// Types only (and one error class): every layer above `control` may import this file, and a
// control plane implementation imports nothing of the agent or the worker.
import type { DriverClock } from '../clock/clock.ts'
import type { KeyPair } from '../crypto/index.ts'

/** The key material the agent owns; it lends the control plane what its protocol needs. */
export interface ControlPlaneKeys {
  /** The WireGuard key: the node's identity in the netmap (`nodekey:` + 64 hex). */
  node: KeyPair
  /** The disco key (direct-path discovery), announced to peers through the control plane. */
  disco: KeyPair
  /** The machine key, for control protocols that have one (Tailscale's ts2021 Noise handshake). */
  machine?: KeyPair
}

/** One relay server. `url` is the DERP WebSocket URL the agent dials (`wss://host/derp`). */
export interface RelayNode {
  name: string
  url: string
  /** STUN, for control planes that hand it out (tailcfg.DERPNode.STUNPort; -1 or absent: none). */
  stunPort?: number
}

/** A relay region: one or more interchangeable relays; a node's "home relay" is a region. */
export interface RelayRegion {
  /** Stable id, the value a peer's `homeRelay` and `setHomeRelay` use (tailcfg.DERPRegion.RegionID). */
  id: number
  code: string
  name: string
  /** In preference order; a client connects to the first that answers. Never empty. */
  nodes: RelayNode[]
  /** The region should not be picked as home (tailcfg.DERPRegion.Avoid), but peers homed there are still reached. */
  avoid?: boolean
}

export interface RelayMap {
  /** Keyed by region id. */
  regions: ReadonlyMap<number, RelayRegion>
  /**
   * The region to call home until the agent has measured better (Burrow: the relay serving the
   * coordination). Absent: the agent picks by probe latency among regions that are not `avoid`.
   */
  suggestedHome?: number
}

/** One port range of a packet filter rule (tailcfg.PortRange: inclusive). */
export interface PortRange {
  first: number
  last: number
}

/**
 * One inbound rule (tailcfg.FilterRule, already expanded): a packet is accepted when its source is
 * in `srcIPs`, its destination in one of `dstPorts`, and its IP protocol in `protocols`.
 */
export interface PacketFilterRule {
  /** CIDR prefixes (`100.64.0.0/10`, `fd7a:115c:a1e0::/48`); `*` is spelled `0.0.0.0/0` and `::/0`. */
  srcIPs: string[]
  dstPorts: Array<{ prefix: string; ports: PortRange }>
  /** IANA protocol numbers; an empty list means tailcfg's default (TCP, UDP, ICMPv4, ICMPv6). */
  protocols: number[]
}

export interface DnsConfig {
  /** The MagicDNS suffix (`tailnet.example.ts.net`); a peer's `fqdn` ends in it. */
  domain?: string
  magicDNS: boolean
  nameservers: string[]
  searchDomains: string[]
}

/** One other node as the control plane describes it. */
export interface NetmapPeer {
  /** `nodekey:` + 64 lowercase hex. The identity: two entries with the same key are the same peer. */
  nodeKey: string
  /** `discokey:` + 64 lowercase hex, or null when the peer has none (it cannot do direct paths). */
  discoKey: string | null
  /** Short host name, unique in the netmap (the name `connect('name', …)` takes). */
  name: string
  /** Fully qualified MagicDNS name (`name.tailnet.example.ts.net`), when the control plane has DNS. */
  fqdn?: string
  /** The peer's own overlay addresses, text form, IPv4 first. */
  addresses: string[]
  /** CIDR prefixes routed to this peer (its addresses as /32 and /128, plus any subnet routes). */
  allowedIPs: string[]
  /** Region id of the relay the peer receives on; null when it reported none. */
  homeRelay: number | null
  /** Whether the control plane has a live connection to the peer; undefined when it does not say. */
  online: boolean | undefined
  /** Epoch ms of the peer's last contact with the control plane, when known. */
  lastSeen?: number | null
}

export interface NetmapSelf {
  nodeKey: string
  /** Short host name as the control plane assigned it (it may differ from the one asked for). */
  name: string
  fqdn?: string
  addresses: string[]
  /** Our home region as the control plane last recorded it. */
  homeRelay: number | null
}

export interface Netmap {
  self: NetmapSelf
  /** Every peer (ourselves excluded), in a stable order. */
  peers: NetmapPeer[]
  /**
   * The same peers by node key, when the control plane keeps such an index: with it and a
   * change hint the agent plans only the changed peers, so a change costs its own size rather
   * than the netmap's (issue 17: a busy 850-node network). It may be the control plane's live
   * index: read it only through the latest netmap.
   */
  peerIndex?: ReadonlyMap<string, NetmapPeer>
  relayMap: RelayMap
  /** The overlay prefixes addresses are handed out from, when the control plane says. */
  network?: { ipv4Prefix: string; ipv6Prefix: string }
  /** STUN/TURN servers for WebRTC direct paths the control plane hands out (Burrow's relay: its own STUN server, TURN with credentials). */
  iceServers?: Array<{ urls: string | string[]; username?: string; credential?: string }>
  /** Inbound filter; undefined: accept everything from peers (Burrow's coordination has no ACLs). */
  packetFilter?: PacketFilterRule[]
  dns?: DnsConfig
}

/** What changed since the previous `netmap` event: a hint, the netmap itself is authoritative. */
export interface NetmapChange {
  /** Node keys added or changed. */
  upsert: string[]
  /** Node keys gone. */
  remove: string[]
  /** The relay map, packet filter or DNS config changed too. */
  other: boolean
}

export type ControlPlaneState =
  | 'idle'
  | 'connecting'
  /** Registered, the netmap is live. */
  | 'connected'
  /** Lost the server; retrying with backoff (the last netmap stays in use). */
  | 'reconnecting'
  /** Interactive login: waiting until someone opens the `auth-url` and approves this node. */
  | 'needs-login'
  /** Refused for good (wrong auth key, key not accepted): retrying cannot help. */
  | 'failed'
  | 'stopped'

/** The control-plane subset of BurrowErrorCode (src/burrow-errors.ts maps these one to one). */
export type ControlPlaneErrorCode = 'unauthorized' | 'forbidden' | 'replaced' | 'unreachable' | 'coordination'

/** Maps an HTTP-like status (the coordination protocol's, or a ts2021 response's) to an error code. */
export function controlErrorCode(status: number): ControlPlaneErrorCode {
  if (status === 401) return 'unauthorized'
  if (status === 403) return 'forbidden'
  if (status === 409) return 'replaced'
  if (status === 0 || status === 408) return 'unreachable'
  return 'coordination'
}

/** A control plane failed or refused us. `status` is HTTP-like (0: never reached the server). */
export class ControlPlaneError extends Error {
  override name = 'ControlPlaneError'
  readonly code: ControlPlaneErrorCode
  constructor(
    readonly status: number,
    message: string,
    /** True when retrying cannot help (the state goes to `failed`). */
    readonly fatal: boolean = false,
  ) {
    super(message)
    this.code = controlErrorCode(status)
  }
}

export interface ControlPlaneEvents {
  /** The whole current netmap, after every change (the first one also resolves `ready()`). */
  netmap: (netmap: Netmap, change: NetmapChange) => void
  state: (state: ControlPlaneState, detail?: { error?: ControlPlaneError; retryInMs?: number }) => void
  /** A failure; a fatal one also moves the state to `failed`, the others are retried. */
  error: (error: ControlPlaneError) => void
  /** Interactive login: the app shows this URL to a person; `ready()` resolves once they approve. */
  'auth-url': (url: string) => void
}

export interface ControlPlane {
  /** Which protocol (`burrow`, `tailnet`), for status output. */
  readonly kind: string
  readonly state: ControlPlaneState
  /** The current netmap; undefined until the first one. */
  readonly netmap: Netmap | undefined
  /**
   * The DERP URL the home relay most likely has, known before the first netmap (Burrow's
   * coordination: the relay serving it), so the agent can dial it while registering. A hint only:
   * the netmap's relay map decides.
   */
  readonly relayURL?: string
  on<K extends keyof ControlPlaneEvents>(event: K, listener: ControlPlaneEvents[K]): () => void
  /** Connects and registers; progress arrives as events. Calling it twice does nothing. */
  start(): void
  /** Resolves with the first netmap; rejects with a ControlPlaneError on a fatal refusal or `stop()`. */
  ready(): Promise<Netmap>
  /**
   * Reports the region we hold a relay connection in (tailcfg.Hostinfo.NetInfo.PreferredDERP);
   * `relayURL` is the region's relay we are logged in to, for protocols that name relays (Burrow's).
   */
  setHomeRelay(region: number | null, relayURL?: string): void
  /** Tells the server this node is gone for good (it is removed from every peer's netmap), then stops. */
  logout(): Promise<void>
  /** Disconnects; the node stays registered (an ephemeral node is removed by the server later). */
  stop(): void
}

/** What the agent passes a control plane factory; the factory picks the protocol's own options. */
export interface ControlPlaneParams {
  keys: ControlPlaneKeys
  /** The host name asked for; the netmap's `self.name` is what was assigned. */
  hostname: string
  /** Pre-authorized key; without one a control plane that supports it starts interactive login. */
  authKey?: string
  /** The agent's clock, when it was given one (tests: a ManualClock); else the control plane picks. */
  clock?: DriverClock
}

export type ControlPlaneFactory = (params: ControlPlaneParams) => ControlPlane
