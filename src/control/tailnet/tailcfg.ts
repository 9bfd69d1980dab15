// The parts of Tailscale's control protocol types (tailscale.com/tailcfg/tailcfg.go) that
// Burrow sends or reads. JSON field names are Go's exported names. Optional fields are omitted
// on the wire when unset, as Go's `omitempty` does; server messages are kept loose (unknown
// fields pass through untouched) because newer servers add fields freely.

/** `nodekey:<64 hex>` (the WireGuard public key), `mkey:<64 hex>`, `discokey:<64 hex>`. */
export type NodeKeyText = `nodekey:${string}`
export type MachineKeyText = `mkey:${string}`
export type DiscoKeyText = `discokey:${string}`

export interface NetInfo {
  /** The DERP region whose relay this node holds open (its home region); 0 = none. */
  PreferredDERP?: number
  [field: string]: unknown
}

export interface Hostinfo {
  IPNVersion?: string
  BackendLogID?: string
  OS?: string
  OSVersion?: string
  Hostname?: string
  GoArch?: string
  NetInfo?: NetInfo
  [field: string]: unknown
}

export interface RegisterRequest {
  Version: number
  NodeKey: NodeKeyText
  OldNodeKey?: NodeKeyText
  /** RFC 3339; a time in the past logs the node out. */
  Expiry?: string
  /** The AuthURL of an earlier response: long-polls until the user completes the login. */
  Followup?: string
  Hostinfo?: Hostinfo
  Ephemeral?: boolean
  Auth?: { AuthKey?: string; [field: string]: unknown }
  [field: string]: unknown
}

export interface RegisterResponse {
  User?: Record<string, unknown>
  Login?: Record<string, unknown>
  NodeKeyExpired?: boolean
  MachineAuthorized?: boolean
  /** Set when the user must log in interactively: show it, then re-register with Followup. */
  AuthURL?: string
  Error?: string
  [field: string]: unknown
}

export interface MapRequest {
  Version: number
  Compress?: '' | 'zstd'
  KeepAlive?: boolean
  NodeKey: NodeKeyText
  DiscoKey?: DiscoKeyText
  Stream?: boolean
  Hostinfo?: Hostinfo
  OmitPeers?: boolean
  Endpoints?: string[]
  EndpointTypes?: number[]
  ReadOnly?: boolean
  [field: string]: unknown
}

/**
 * One message of the map stream, as the server sent it. Its merge rules (control/controlclient/
 * map.go) belong to the netmap module; the transport only parses and forwards it.
 */
export interface MapResponse {
  KeepAlive?: boolean
  Node?: Record<string, unknown>
  Peers?: Array<Record<string, unknown>>
  PeersChanged?: Array<Record<string, unknown>>
  PeersRemoved?: number[]
  PeersChangedPatch?: Array<Record<string, unknown>>
  OnlineChange?: Record<string, boolean>
  PeerSeenChange?: Record<string, boolean>
  DERPMap?: Record<string, unknown>
  DNSConfig?: Record<string, unknown>
  Domain?: string
  PacketFilter?: unknown[]
  PacketFilters?: Record<string, unknown[] | null>
  [field: string]: unknown
}

/** The server's /key answer (tailcfg.OverTLSPublicKeyResponse). */
export interface OverTLSPublicKeyResponse {
  legacyPublicKey?: string
  publicKey: string
}
