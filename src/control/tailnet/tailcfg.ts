// The subset of Tailscale's `tailcfg` wire types (tailscale.com/tailcfg/tailcfg.go, v1.102.x) a
// Burrow node reads from a map stream. JSON field names are Go's (no struct tags on these
// fields), so they are PascalCase. Every field is optional on the wire: capability version ≥ 68
// promises that a nil/absent field means "unchanged" in delta messages, and servers omit zero values.

/** tailcfg.NodeID (int64; Headscale's ids fit in a double). */
export type NodeID = number

/** tailcfg.DERPNode: one relay server of a region. */
export interface DERPNode {
  Name: string
  RegionID: number
  HostName: string
  /** An IPv4 literal to dial instead of resolving HostName; "none" disables IPv4. */
  IPv4?: string
  IPv6?: string
  /** 0 = 3478, -1 = no STUN. */
  STUNPort?: number
  STUNOnly?: boolean
  /** 0 = 443 (or 80 over plain HTTP). */
  DERPPort?: number
  InsecureForTests?: boolean
  CanPort80?: boolean
  CertName?: string
}

/** tailcfg.DERPRegion. */
export interface DERPRegion {
  RegionID: number
  RegionCode: string
  RegionName: string
  Latitude?: number
  Longitude?: number
  /** Don't pick as home, but still reach peers homed here. */
  Avoid?: boolean
  /** Neither measure nor pick as home (newer field, same intent as Avoid for us). */
  NoMeasureNoHome?: boolean
  Nodes: DERPNode[] | null
}

/** tailcfg.DERPMap. `Regions` absent/null in a delta keeps the previous regions. */
export interface DERPMap {
  Regions?: Record<string, DERPRegion | null> | null
  OmitDefaultRegions?: boolean
  HomeParams?: { RegionScore?: Record<string, number> | null } | null
}

/** tailcfg.PortRange (inclusive). */
export interface PortRange {
  First: number
  Last: number
}

/** tailcfg.NetPortRange: a destination "IP" (CIDR, bare IP, or "*") and ports. */
export interface NetPortRange {
  IP: string
  /** Deprecated prefix length for a bare IP (only used when IP has no "/"). */
  Bits?: number | null
  Ports: PortRange
}

/** tailcfg.FilterRule. */
export interface FilterRule {
  /** "*", CIDR, bare IP, or an IP range "a-b". Capability grants ("cap:…") are ignored by us. */
  SrcIPs: string[] | null
  /** Deprecated; ignored by tailscaled too. */
  SrcBits?: number[] | null
  DstPorts?: NetPortRange[] | null
  /** IANA protocol numbers; empty = TCP, UDP, ICMPv4, ICMPv6. */
  IPProto?: number[] | null
  /** Peer-capability grants; they do not admit packets. */
  CapGrant?: unknown[] | null
}

/** tailcfg.Hostinfo (the fields we read or send). */
export interface Hostinfo {
  Hostname?: string
  OS?: string
  OSVersion?: string
  IPNVersion?: string
  FrontendLogID?: string
  BackendLogID?: string
  NetInfo?: NetInfo | null
  [key: string]: unknown
}

/** tailcfg.NetInfo: `PreferredDERP` is the home region the server turns into `HomeDERP`. */
export interface NetInfo {
  PreferredDERP?: number
  WorkingUDP?: boolean | null
  DERPLatency?: Record<string, number> | null
  [key: string]: unknown
}

/** tailcfg.Node: a peer (or ourselves in MapResponse.Node). */
export interface Node {
  ID: NodeID
  StableID?: string
  /** MagicDNS FQDN with a trailing dot (`name.tailnet.example.`); may be empty without MagicDNS. */
  Name: string
  User?: number
  /** `nodekey:` + 64 hex: the peer's WireGuard public key. */
  Key: string
  /** RFC 3339; the zero time (`0001-01-01T00:00:00Z`) = never expires. */
  KeyExpiry?: string
  /** `discokey:` + 64 hex; absent when the node has none. */
  DiscoKey?: string
  /** The node's own addresses as /32 and /128 prefixes. */
  Addresses?: string[] | null
  /** Routed prefixes; nil means "same as Addresses" (capver ≥ 112). */
  AllowedIPs?: string[] | null
  Endpoints?: string[] | null
  /** Legacy home region, `127.3.3.40:<region>` (servers before HomeDERP). */
  DERP?: string
  /** Home DERP region id (capver ≥ 111); 0 = none. */
  HomeDERP?: number
  Hostinfo?: Hostinfo | null
  Created?: string
  Cap?: number
  Tags?: string[] | null
  PrimaryRoutes?: string[] | null
  /** RFC 3339, when offline. */
  LastSeen?: string | null
  Online?: boolean | null
  MachineAuthorized?: boolean
  ComputedName?: string
  ComputedNameWithHost?: string
  Expired?: boolean
  CapMap?: Record<string, unknown> | null
  [key: string]: unknown
}

/** tailcfg.PeerChange: a patch of one peer; a zero/nil field is "unchanged". */
export interface PeerChange {
  NodeID: NodeID
  DERPRegion?: number
  Cap?: number
  Endpoints?: string[] | null
  Key?: string | null
  DiscoKey?: string | null
  Online?: boolean | null
  LastSeen?: string | null
  KeyExpiry?: string | null
  KeySignature?: string | null
  CapMap?: Record<string, unknown> | null
}

/** tailcfg.DNSConfig (the fields MagicDNS needs). */
export interface DNSConfig {
  Resolvers?: Array<{ Addr: string }> | null
  Routes?: Record<string, Array<{ Addr: string }> | null> | null
  FallbackResolvers?: Array<{ Addr: string }> | null
  Domains?: string[] | null
  Proxied?: boolean
  Nameservers?: string[] | null
  ExtraRecords?: Array<{ Name: string; Type?: string; Value: string }> | null
  [key: string]: unknown
}

/** tailcfg.MapResponse, one message of the map stream. */
export interface MapResponse {
  KeepAlive?: boolean
  Node?: Node | null
  DERPMap?: DERPMap | null
  /** Non-empty: the complete peer list (all deltas in the same message are ignored). */
  Peers?: Node[] | null
  PeersChanged?: Node[] | null
  PeersRemoved?: NodeID[] | null
  PeersChangedPatch?: PeerChange[] | null
  /** true: the peer was seen now; false: LastSeen cleared. */
  PeerSeenChange?: Record<string, boolean> | null
  OnlineChange?: Record<string, boolean> | null
  DNSConfig?: DNSConfig | null
  /** "" = unchanged. */
  Domain?: string
  /** Older single filter: replaces chunk "base". */
  PacketFilter?: FilterRule[] | null
  /** Named chunks; a null value deletes the chunk, `"*": null` clears all first. */
  PacketFilters?: Record<string, FilterRule[] | null> | null
  UserProfiles?: Array<{ ID: number; LoginName?: string; DisplayName?: string }> | null
  ControlTime?: string
  [key: string]: unknown
}
