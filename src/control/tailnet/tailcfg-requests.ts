// The tailcfg shapes the transport sends (tailscale.com/tailcfg/tailcfg.go): register and map
// requests, the register answer, the /key answer. What the map stream returns is in tailcfg.ts.
// Optional fields are omitted on the wire when unset, as Go's `omitempty` does.
import type { Hostinfo } from './tailcfg.ts'

/** `nodekey:<64 hex>` (the WireGuard public key), `discokey:<64 hex>`. */
export type NodeKeyText = `nodekey:${string}`
export type DiscoKeyText = `discokey:${string}`

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
  /** Required in practice: real tailscaled ignores peers without one. */
  DiscoKey?: DiscoKeyText
  Stream?: boolean
  Hostinfo?: Hostinfo
  OmitPeers?: boolean
  Endpoints?: string[]
  EndpointTypes?: number[]
  ReadOnly?: boolean
  [field: string]: unknown
}

/** The server's /key answer (tailcfg.OverTLSPublicKeyResponse). */
export interface OverTLSPublicKeyResponse {
  legacyPublicKey?: string
  publicKey: string
}
