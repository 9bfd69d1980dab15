/**
 * The tailcfg.CapabilityVersion Burrow speaks, in one place: sent in cleartext in the Noise
 * initiation (bound by its prologue), as `?v=` of /key, and as `Version` of every register and
 * map request. Claiming a version promises its behaviours (tailscale.com/tailcfg/tailcfg.go
 * lists them): nil/empty map fields mean "unchanged", PeersChangedPatch, incremental DERPMap
 * (≥65), a read-only streaming map request with separate "lite" updates (≥68), PacketFilters
 * chunks (≥81), HomeDERP (≥111), nil AllowedIPs = Addresses (≥112), unknown disco message types
 * ignored (≥121). Headscale v0.29.2 accepts the latest ten minor releases (≥113 there).
 */
export const CAPABILITY_VERSION = 130
