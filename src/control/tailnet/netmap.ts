// The netmap of one tailnet map session: MapResponse messages in, the normalized `Netmap` of the
// ControlPlane interface out. Sans-IO: `apply(message, now)` is synchronous and pure apart from
// the session's own state.
//
// The merge rules are tailscaled's (control/controlclient/map.go, `updateStateFromResponse` and
// `updatePeersStateFromResponse`, v1.102.x), which the capability version we claim promises:
// - non-empty `Peers` replaces the whole peer set and every delta in the same message is ignored;
// - else `PeersRemoved`, then `PeersChanged` (whole nodes, upserted), `PeerSeenChange`,
//   `OnlineChange`, `PeersChangedPatch` (a zero/nil field is "unchanged"), in that order;
// - `DERPMap` nil = unchanged; its `Regions` nil keeps the previous regions; nil regions are
//   dropped (Headscale was seen sending them);
// - `PacketFilter` (one blob) is chunk "base" of `PacketFilters`; in `PacketFilters` `"*": null`
//   clears every chunk first and a null chunk deletes it; the rules are the chunks in key order;
// - `DNSConfig` nil = unchanged, `Domain` "" = unchanged.
// A peer whose key has expired (`Expired`, or `KeyExpiry` at or before `now`) is left out of the
// netmap: tailscaled keeps it only as a flagged, unreachable entry with a broken key
// (ipn/ipnlocal/expiry.go `flagExpiredPeers`) — this is how a `tailscale logout` reaches peers,
// since Headscale keeps the node and sends it with a past KeyExpiry. The session reports the next
// future expiry as `nextEvent()`; `poll(now)` then drops the peer.
// A session is one map stream: a new stream starts a new session (its first message is whole).
import type { DnsConfig, Netmap, NetmapChange, NetmapPeer, NetmapSelf, PacketFilterRule, RelayMap, RelayRegion } from '../control-plane.ts'
import { formatAddress, parseAddress } from '../../wire/address.ts'
import type { DERPMap, DERPRegion, FilterRule, MapResponse, Node, NodeID } from './tailcfg.ts'

/** A map message that cannot be merged (a peer without a key, a malformed address). */
export class NetmapError extends Error {
  override readonly name = 'NetmapError'
}

export interface TailnetNetmapOptions {
  /**
   * Reach DERP servers over plain HTTP (`http://host:port/derp`, default port 80) instead of
   * HTTPS — tailscaled's TS_DEBUG_USE_DERP_HTTP (derp/derphttp/derphttp_client.go). For test
   * tailnets whose DERP servers have no TLS.
   */
  derpPlainHTTP?: boolean
}

/** The legacy home-region encoding of `Node.DERP` (tailcfg.DerpMagicIP, port = region id). */
const LEGACY_DERP_PREFIX = '127.3.3.40:'

/** One merged message: the whole netmap, what changed, and the peers left out because they were malformed. */
export interface TailnetMapUpdate {
  netmap: Netmap
  change: NetmapChange
  /** One error per peer that could not be converted (no valid key, a malformed address); the rest of the map is used. */
  rejected: NetmapError[]
}

export class TailnetMapSession {
  #self: Node | undefined
  readonly #peers = new Map<NodeID, Node>()
  #derpMap: DERPMap | undefined
  readonly #filterChunks = new Map<string, FilterRule[]>()
  #dnsConfig: MapResponse['DNSConfig']
  #domain = ''
  #current: Netmap | undefined
  /** The `now` of the last apply/poll (epoch ms): what KeyExpiry is compared with. */
  #now = 0

  readonly #options: TailnetNetmapOptions

  constructor(options: TailnetNetmapOptions = {}) {
    this.#options = options
  }

  /**
   * The next instant (epoch ms) a peer in the map expires, when `poll` must run; undefined when
   * no peer has a future KeyExpiry (ipn/ipnlocal/expiry.go `nextPeerExpiry`).
   */
  nextEvent(): number | undefined {
    let next: number | undefined
    for (const node of this.#peers.values()) {
      const expiry = keyExpiry(node)
      if (expiry !== undefined && expiry > this.#now && !node.Expired && (next === undefined || expiry < next)) next = expiry
    }
    return next
  }

  /** Drops the peers whose key expired by `now`; the update is undefined when none did. */
  poll(now: number): TailnetMapUpdate | undefined {
    this.#now = Math.max(this.#now, now)
    if (!this.#self || !this.#current) return undefined
    const previous = this.#current
    const rejected: NetmapError[] = []
    const netmap = this.#build(rejected)
    const change = diff(previous, netmap, false)
    if (change.upsert.length === 0 && change.remove.length === 0) return undefined
    this.#current = netmap
    return { netmap, change, rejected: [] }
  }

  /** The netmap after the last message; undefined until a message carried our own `Node`. */
  get netmap(): Netmap | undefined {
    return this.#current
  }

  /** The merged packet filter rules as tailcfg sent them (for the inbound filter). */
  get filterRules(): FilterRule[] {
    return [...this.#filterChunks.keys()].sort().flatMap((key) => this.#filterChunks.get(key)!)
  }

  /**
   * Merges one map message. Returns the new netmap and what changed, or undefined when nothing
   * the netmap shows changed (a keep-alive) or our own node is not known yet. `now` (epoch ms) is
   * what `PeerSeenChange: true` records as the peer's last contact.
   */
  apply(message: MapResponse, now: number): TailnetMapUpdate | undefined {
    if (message.KeepAlive && Object.keys(message).length === 1) return undefined
    this.#now = Math.max(this.#now, now)
    // Checked before anything is merged: a message with a bad self node changes nothing.
    if (message.Node) this.#selfOf(message.Node)
    this.#mergePeers(message, now)
    if (message.Node) this.#self = message.Node
    let other = false
    if (message.DERPMap) {
      this.#mergeDerpMap(message.DERPMap)
      other = true
    }
    if (message.PacketFilter) {
      this.#filterChunks.set('base', message.PacketFilter)
      other = true
    }
    if (message.PacketFilters) {
      const chunks = message.PacketFilters
      if ('*' in chunks && chunks['*'] === null) this.#filterChunks.clear()
      for (const [key, rules] of Object.entries(chunks)) {
        if (key === '*') continue
        if (rules) this.#filterChunks.set(key, rules)
        else this.#filterChunks.delete(key)
      }
      other = true
    }
    if (message.DNSConfig) {
      this.#dnsConfig = message.DNSConfig
      other = true
    }
    if (message.Domain) {
      if (message.Domain !== this.#domain) other = true
      this.#domain = message.Domain
    }
    if (!this.#self) return undefined
    const previous = this.#current
    const rejected: NetmapError[] = []
    const netmap = this.#build(rejected)
    this.#current = netmap
    const change = diff(previous, netmap, other || previous === undefined)
    if (previous && change.upsert.length === 0 && change.remove.length === 0 && !change.other && rejected.length === 0 && sameSelf(previous.self, netmap.self)) return undefined
    return { netmap, change, rejected }
  }

  #mergePeers(message: MapResponse, now: number): void {
    if (message.Peers && message.Peers.length > 0) {
      this.#peers.clear()
      for (const node of message.Peers) this.#peers.set(node.ID, node)
      return
    }
    for (const id of message.PeersRemoved ?? []) this.#peers.delete(id)
    for (const node of message.PeersChanged ?? []) this.#peers.set(node.ID, node)
    for (const [id, seen] of Object.entries(message.PeerSeenChange ?? {})) {
      const node = this.#peers.get(Number(id))
      if (node) this.#peers.set(node.ID, { ...node, LastSeen: seen ? new Date(now).toISOString() : null })
    }
    for (const [id, online] of Object.entries(message.OnlineChange ?? {})) {
      const node = this.#peers.get(Number(id))
      if (node) this.#peers.set(node.ID, { ...node, Online: online })
    }
    for (const patch of message.PeersChangedPatch ?? []) {
      const node = this.#peers.get(patch.NodeID)
      if (!node) continue
      const next: Node = { ...node }
      if (patch.DERPRegion) next.HomeDERP = patch.DERPRegion
      if (patch.Cap) next.Cap = patch.Cap
      if (patch.Endpoints) next.Endpoints = patch.Endpoints
      if (patch.Key) next.Key = patch.Key
      if (patch.DiscoKey) next.DiscoKey = patch.DiscoKey
      if (patch.Online !== undefined && patch.Online !== null) next.Online = patch.Online
      if (patch.LastSeen) next.LastSeen = patch.LastSeen
      if (patch.KeyExpiry) next.KeyExpiry = patch.KeyExpiry
      if (patch.CapMap) next.CapMap = patch.CapMap
      this.#peers.set(node.ID, next)
    }
  }

  #mergeDerpMap(incoming: DERPMap): void {
    const regions: Record<string, DERPRegion> = {}
    const source = incoming.Regions ?? this.#derpMap?.Regions ?? {}
    for (const [id, region] of Object.entries(source)) if (region) regions[id] = region
    this.#derpMap = {
      Regions: regions,
      OmitDefaultRegions: incoming.Regions ? incoming.OmitDefaultRegions : this.#derpMap?.OmitDefaultRegions,
      HomeParams: incoming.HomeParams ?? this.#derpMap?.HomeParams,
    }
  }

  /** Our own node must be valid (a NetmapError otherwise); a malformed peer is left out and reported in `rejected`. */
  #build(rejected: NetmapError[]): Netmap {
    const self = this.#self!
    const peers: NetmapPeer[] = []
    for (const node of this.#peers.values()) {
      if (node.Key === self.Key || expired(node, this.#now)) continue
      try {
        peers.push(this.#peerOf(node))
      } catch (error) {
        if (!(error instanceof NetmapError)) throw error
        rejected.push(error)
      }
    }
    // Stable order: by name, then key (names are unique in a tailnet, but a netmap in flux may repeat one).
    peers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.nodeKey < b.nodeKey ? -1 : a.nodeKey > b.nodeKey ? 1 : 0))
    const netmap: Netmap = {
      self: this.#selfOf(self),
      peers,
      relayMap: this.#relayMap(),
      // Always defined: with no rules from the server tailscaled admits no new inbound flows
      // (ipnlocal sets an empty filter.New; only replies to our own traffic pass), and so do we.
      packetFilter: expandFilter(this.filterRules),
    }
    const dns = this.#dns()
    if (dns) netmap.dns = dns
    return netmap
  }

  #selfOf(node: Node): NetmapSelf {
    const self: NetmapSelf = { nodeKey: normalizeKey(node.Key, 'nodekey', node), name: shortName(node), addresses: addressesOf(node), homeRelay: homeRegion(node) }
    const fqdn = fqdnOf(node)
    if (fqdn) self.fqdn = fqdn
    return self
  }

  #peerOf(node: Node): NetmapPeer {
    const addresses = addressesOf(node)
    const allowedIPs = node.AllowedIPs ?? node.Addresses ?? []
    const peer: NetmapPeer = {
      nodeKey: normalizeKey(node.Key, 'nodekey', node),
      discoKey: node.DiscoKey && !/^discokey:0{64}$/.test(node.DiscoKey) ? normalizeKey(node.DiscoKey, 'discokey', node) : null,
      name: shortName(node),
      addresses,
      allowedIPs: allowedIPs.map((prefix) => normalizePrefix(prefix, node)),
      homeRelay: homeRegion(node),
      online: node.Online ?? undefined,
    }
    const fqdn = fqdnOf(node)
    if (fqdn) peer.fqdn = fqdn
    if (node.LastSeen !== undefined) peer.lastSeen = node.LastSeen === null ? null : Date.parse(node.LastSeen)
    return peer
  }

  #relayMap(): RelayMap {
    const regions = new Map<number, RelayRegion>()
    for (const region of Object.values(this.#derpMap?.Regions ?? {})) {
      if (!region) continue
      const nodes = (region.Nodes ?? []).filter((n) => !n.STUNOnly).map((n) => ({ name: n.Name, url: this.#derpUrl(n), stunPort: n.STUNPort ?? 3478 }))
      if (nodes.length === 0) continue
      const relay: RelayRegion = { id: region.RegionID, code: region.RegionCode, name: region.RegionName, nodes }
      if (region.Avoid || region.NoMeasureNoHome) relay.avoid = true
      regions.set(region.RegionID, relay)
    }
    return { regions }
  }

  /** derp/derphttp/derphttp_client.go `urlString`: https on 443, or http on 80, port appended only when it differs. */
  #derpUrl(node: { HostName: string; IPv4?: string; DERPPort?: number }): string {
    const plain = this.#options.derpPlainHTTP ?? false
    const defaultPort = plain ? 80 : 443
    const host = node.HostName.includes(':') ? `[${node.HostName}]` : node.HostName
    const port = node.DERPPort && node.DERPPort !== defaultPort ? `:${node.DERPPort}` : ''
    return `${plain ? 'http' : 'https'}://${host}${port}/derp`
  }

  #dns(): DnsConfig | undefined {
    const config = this.#dnsConfig
    if (!config && !this.#domain) return undefined
    const dns: DnsConfig = {
      magicDNS: (config?.Proxied ?? false) || (config?.Domains?.length ?? 0) > 0,
      nameservers: (config?.Resolvers ?? []).map((r) => r.Addr),
      searchDomains: config?.Domains ?? [],
    }
    // The MagicDNS suffix: MapResponse.Domain is the tailnet's name (Headscale sends its base domain),
    // the first search domain is what tailscaled appends to short names.
    const domain = config?.Domains?.[0] ?? this.#domain
    if (domain) dns.domain = domain.replace(/\.$/, '')
    return dns
  }
}

function normalizeKey(text: string | undefined, kind: 'nodekey' | 'discokey', node: Node): string {
  const match = text ? new RegExp(`^${kind}:([0-9a-fA-F]{64})$`).exec(text) : null
  if (!match) throw new NetmapError(`node ${node.ID} (${node.Name}) has no valid ${kind}: ${JSON.stringify(text)}`)
  return `${kind}:${match[1]!.toLowerCase()}`
}

function normalizePrefix(prefix: string, node: Node): string {
  try {
    return canonicalPrefix(prefix.includes('/') ? prefix : `${prefix}/${prefix.includes(':') ? 128 : 32}`)
  } catch {
    throw new NetmapError(`node ${node.ID} (${node.Name}) has a malformed prefix ${JSON.stringify(prefix)}`)
  }
}

/** The node's own addresses, prefix length dropped, IPv4 first (tailcfg sends them as /32 and /128). */
function addressesOf(node: Node): string[] {
  const addresses = (node.Addresses ?? []).map((prefix) => normalizePrefix(prefix, node).split('/')[0]!)
  return addresses.sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')))
}

/** HomeDERP (capver ≥ 111), else the legacy `DERP: "127.3.3.40:<region>"`; 0/absent = none. */
export function homeRegion(node: Pick<Node, 'HomeDERP' | 'DERP'>): number | null {
  if (node.HomeDERP) return node.HomeDERP
  if (node.DERP?.startsWith(LEGACY_DERP_PREFIX)) {
    const region = Number(node.DERP.slice(LEGACY_DERP_PREFIX.length))
    if (Number.isInteger(region) && region > 0) return region
  }
  return null
}

/** KeyExpiry in epoch ms; undefined for "never" (absent, null, or Go's zero time, year 1). */
function keyExpiry(node: Pick<Node, 'KeyExpiry'>): number | undefined {
  if (!node.KeyExpiry) return undefined
  const at = Date.parse(node.KeyExpiry)
  // Go's zero time.Time marshals as 0001-01-01T00:00:00Z: the node never expires.
  return Number.isFinite(at) && at > 0 ? at : undefined
}

/** Expired by control's flag, or by its KeyExpiry at `now` (ipn/ipnlocal/expiry.go: `!KeyExpiry.After(now)`). */
function expired(node: Node, now: number): boolean {
  if (node.Expired) return true
  const at = keyExpiry(node)
  return at !== undefined && at <= now
}

/** The MagicDNS FQDN without its trailing dot. */
function fqdnOf(node: Node): string | undefined {
  const name = node.Name?.replace(/\.$/, '')
  return name && name.includes('.') ? name : undefined
}

/** The first label of the MagicDNS name (what tailscaled calls the peer), else the computed or host name. */
function shortName(node: Node): string {
  const fromName = node.Name?.replace(/\.$/, '').split('.')[0]
  return fromName || node.ComputedName || node.Hostinfo?.Hostname || `node-${node.ID}`
}

function sameSelf(a: NetmapSelf, b: NetmapSelf): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

function diff(previous: Netmap | undefined, next: Netmap, other: boolean): NetmapChange {
  const before = new Map((previous?.peers ?? []).map((p) => [p.nodeKey, JSON.stringify(p)]))
  const upsert: string[] = []
  for (const peer of next.peers) if (before.get(peer.nodeKey) !== JSON.stringify(peer)) upsert.push(peer.nodeKey)
  const after = new Set(next.peers.map((p) => p.nodeKey))
  const remove = [...before.keys()].filter((key) => !after.has(key))
  return { upsert, remove, other }
}

/** IANA numbers tailcfg's empty IPProto stands for (wgengine/filter/tailcfg.go defaultProtos). */
export const DEFAULT_PROTOCOLS = [6, 17, 1, 58]

/**
 * tailcfg.FilterRule → PacketFilterRule, as wgengine/filter/tailcfg.go `MatchesFromFilterRules`
 * parses them: "*" is 0.0.0.0/0 and ::/0, "a-b" ranges become the covering prefixes, a bare IP is
 * a host prefix, "cap:…" sources admit nothing (capability grants are not packets), out-of-range
 * protocol numbers are dropped. A malformed entry is skipped (tailscaled logs and skips it too).
 */
export function expandFilter(rules: FilterRule[]): PacketFilterRule[] {
  return rules.map((rule) => ({
    srcIPs: (rule.SrcIPs ?? []).flatMap((s) => parseIPSet(s)),
    dstPorts: (rule.DstPorts ?? []).flatMap((d) => parseIPSet(d.IP).map((prefix) => ({ prefix, ports: { first: d.Ports.First, last: d.Ports.Last } }))),
    protocols: (rule.IPProto ?? []).filter((n) => Number.isInteger(n) && n >= 0 && n <= 255),
  }))
}

function parseIPSet(text: string): string[] {
  if (text === '*') return ['0.0.0.0/0', '::/0']
  if (text.startsWith('cap:')) return []
  try {
    if (text.includes('/')) return [canonicalPrefix(text)]
    const dash = text.split('-')
    if (dash.length === 2) return rangeToPrefixes(dash[0]!, dash[1]!)
    const bytes = parseAddress(text)
    return [`${formatAddress(bytes)}/${bytes.length * 8}`]
  } catch {
    return []
  }
}

function canonicalPrefix(text: string): string {
  const [address, bitsText] = text.split('/') as [string, string]
  const bytes = parseAddress(address)
  const bits = Number(bitsText)
  if (!/^\d+$/.test(bitsText) || bits > bytes.length * 8) throw new NetmapError(`not a prefix: ${text}`)
  return `${formatAddress(bytes)}/${bits}`
}

function toBigInt(bytes: Uint8Array): bigint {
  let v = 0n
  for (const b of bytes) v = (v << 8n) | BigInt(b)
  return v
}

function fromBigInt(v: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 255n)
    v >>= 8n
  }
  return out
}

/** The fewest prefixes covering first..last inclusive (go4.org/netipx IPRange.Prefixes). */
export function rangeToPrefixes(firstText: string, lastText: string): string[] {
  let a: Uint8Array
  let b: Uint8Array
  try {
    a = parseAddress(firstText)
    b = parseAddress(lastText)
  } catch {
    throw new NetmapError(`not an IP range: ${firstText}-${lastText}`)
  }
  if (a.length !== b.length) throw new NetmapError(`IP range mixes families: ${firstText}-${lastText}`)
  const width = BigInt(a.length * 8)
  let lo = toBigInt(a)
  const hi = toBigInt(b)
  if (lo > hi) throw new NetmapError(`IP range runs backwards: ${firstText}-${lastText}`)
  const out: string[] = []
  while (lo <= hi) {
    let size = 0n
    while (size < width) {
      const block = 1n << (size + 1n)
      if (lo % block !== 0n || lo + block - 1n > hi) break
      size++
    }
    out.push(`${formatAddress(fromBigInt(lo, a.length))}/${width - size}`)
    lo += 1n << size
  }
  return out
}
