// The synchronous dataplane core: cryptokey routing (AllowedIPs) in front of a WireGuard tunnel,
// plus the table of which underlay transport and endpoint reaches each peer. Sans-IO: every call
// takes `now` and returns the batches to hand to transports; nothing here touches a clock or socket.
import { Tunnel, type DropReason, type PeerId, type PeerOptions, type TunnelOptions } from '../tunnel/index.ts'
import { ipDestination, ipSource, type Prefix } from '../wire/index.ts'
import { DataplaneError } from './errors.ts'
import { PacketFilter, type PacketFilterRuleInput } from './packet-filter.ts'
import { RouteTable, checkPrefix } from './route-table.ts'
import type { Endpoint, OverlayId, UnderlayId } from './transport.ts'

/** The first bytes of every disco message ("TS" + 💬). WireGuard messages start with 1..4. */
export const DISCO_MAGIC = Uint8Array.of(0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac)

export type DataplaneDropReason =
  | DropReason
  /** A decrypted packet's source address is not in the sending peer's AllowedIPs. */
  | 'source-not-allowed'
  /** No peer's AllowedIPs contain an outbound packet's destination. */
  | 'no-route'
  /** The peer has no underlay route yet (path selection has not set one). */
  | 'no-endpoint'
  /** No overlay transport serves an inbound packet's destination. */
  | 'no-overlay'
  /** Too short or not IPv4/IPv6. */
  | 'malformed-ip'
  /** Datagrams arrived on an underlay id the core does not know. */
  | 'unknown-underlay'
  /** The packet filter (a tailnet's PacketFilters) admits no such inbound packet. */
  | 'filtered'
  /** A TSMP packet (IP protocol 99, Tailscale's in-band control messages), which Burrow does not speak. */
  | 'tsmp'

export type DropCounts = Partial<Record<DataplaneDropReason, number>>

export interface DataplaneOptions extends TunnelOptions {
  /**
   * Handshake messages per second beyond which the tunnel is told it is under load (it then
   * answers handshakes lacking a valid MAC2 with cookie replies). Default 256.
   */
  handshakesPerSecondUnderLoad?: number
  /** Told about every inbound packet the packet filter drops (for a debug log); `summary` names protocol, addresses, ports and why. */
  onFilterDrop?: (peer: PeerId, reason: 'filtered' | 'tsmp', summary: string) => void
}

export interface DataplanePeerConfig extends PeerOptions {
  /** Overlay prefixes this peer may send from and that are routed to it. */
  allowedIps: Prefix[]
}

export interface PeerRoute {
  underlay: UnderlayId
  endpoint: Endpoint
}

export interface DataplanePeerStats {
  /** IP packets (and their bytes) routed to this peer. */
  txPackets: number
  txBytes: number
  /** IP packets (and their bytes) received from this peer and delivered to an overlay. */
  rxPackets: number
  rxBytes: number
  lastHandshake?: number
  drops: DropCounts
  route?: PeerRoute
}

/** Datagrams for one endpoint on one underlay. */
export interface UnderlayBatch {
  underlay: UnderlayId
  endpoint: Endpoint
  datagrams: Uint8Array[]
}

/** IP packets for one overlay transport. */
export interface OverlayBatch {
  overlay: OverlayId
  packets: Uint8Array[]
}

/** A disco message as received, left untouched for path selection. */
export interface DiscoDatagram {
  underlay: UnderlayId
  endpoint: Endpoint
  datagram: Uint8Array
}

export interface OutboundResult {
  toUnderlay: UnderlayBatch[]
  /** Packets addressed to one of our own overlay addresses. */
  loopback: OverlayBatch[]
}

export interface InboundResult {
  toOverlay: OverlayBatch[]
  /** Handshake responses, cookie replies, keepalives and flushed queued data. */
  toUnderlay: UnderlayBatch[]
  disco: DiscoDatagram[]
}

export interface EventResult {
  toUnderlay: UnderlayBatch[]
}

interface PeerState {
  publicKey: Uint8Array
  allowedIps: Map<string, Prefix>
  route: PeerRoute | undefined
  /** The last endpoint seen per underlay, so switching back to an underlay needs no rediscovery. */
  endpoints: Map<UnderlayId, Endpoint>
  txPackets: number
  txBytes: number
  rxPackets: number
  rxBytes: number
  drops: DropCounts
}

const HANDSHAKE_INITIATION = 1
const HANDSHAKE_RESPONSE = 2
const UNDER_LOAD_HOLD_MS = 1000

function prefixKey(prefix: Prefix): string {
  let key = `${prefix.address.length}/${prefix.bits}/`
  for (let i = 0; i < prefix.address.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix.bits - i * 8))
    key += (prefix.address[i]! & (0xff << (8 - keep)) & 0xff).toString(16) + '.'
  }
  return key
}

function isDisco(datagram: Uint8Array): boolean {
  if (datagram.length < DISCO_MAGIC.length) return false
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (datagram[i] !== DISCO_MAGIC[i]) return false
  return true
}

function count(drops: DropCounts, reason: DataplaneDropReason): void {
  drops[reason] = (drops[reason] ?? 0) + 1
}

export class DataplaneCore {
  readonly tunnel: Tunnel
  private readonly peers = new Map<PeerId, PeerState>()
  private readonly allowedIps = new RouteTable<PeerId>()
  private readonly localRoutes = new RouteTable<OverlayId>()
  private readonly overlays = new Map<OverlayId, Prefix[]>()
  private readonly underlays = new Set<UnderlayId>()
  private readonly globalDrops: DropCounts = {}
  private readonly handshakeLimit: number
  private handshakeWindowStart = -Infinity
  private handshakesInWindow = 0
  private underLoadUntil = -Infinity
  private filter: PacketFilter | undefined
  private readonly onFilterDrop: DataplaneOptions['onFilterDrop']

  constructor(options: DataplaneOptions) {
    this.tunnel = new Tunnel(options)
    this.handshakeLimit = options.handshakesPerSecondUnderLoad ?? 256
    this.onFilterDrop = options.onFilterDrop
  }

  /**
   * Sets the inbound packet filter (see packet-filter.ts); undefined accepts every packet from a
   * peer (Burrow's own coordination has no ACLs). Malformed rules throw and leave the old filter.
   */
  setPacketFilter(rules: readonly PacketFilterRuleInput[] | undefined): void {
    this.filter = rules === undefined ? undefined : new PacketFilter(rules)
  }

  get publicKey(): Uint8Array {
    return this.tunnel.publicKey
  }

  // ── peers and cryptokey routing ──────────────────────────────────────────────

  addPeer(config: DataplanePeerConfig): PeerId {
    for (const prefix of config.allowedIps) checkPrefix(prefix)
    const { allowedIps, ...peerOptions } = config
    const peer = this.tunnel.addPeer(peerOptions)
    this.peers.set(peer, {
      publicKey: peerOptions.publicKey.slice(),
      allowedIps: new Map(),
      route: undefined,
      endpoints: new Map(),
      txPackets: 0,
      txBytes: 0,
      rxPackets: 0,
      rxBytes: 0,
      drops: {},
    })
    for (const prefix of allowedIps) this.claimPrefix(peer, prefix)
    return peer
  }

  removePeer(peer: PeerId): void {
    const state = this.peerState(peer)
    for (const prefix of state.allowedIps.values()) this.allowedIps.remove(prefix)
    this.peers.delete(peer)
    this.tunnel.removePeer(peer)
  }

  peerIds(): PeerId[] {
    return [...this.peers.keys()]
  }

  peerPublicKey(peer: PeerId): Uint8Array {
    return this.peerState(peer).publicKey.slice()
  }

  peerByKey(publicKey: Uint8Array): PeerId | undefined {
    return this.tunnel.peerByKey(publicKey)
  }

  /** Replaces the peer's AllowedIPs. A prefix owned by another peer moves to this one (as in WireGuard). */
  setAllowedIps(peer: PeerId, prefixes: Prefix[]): void {
    const state = this.peerState(peer)
    for (const prefix of prefixes) checkPrefix(prefix)
    for (const prefix of state.allowedIps.values()) this.allowedIps.remove(prefix)
    state.allowedIps.clear()
    for (const prefix of prefixes) this.claimPrefix(peer, prefix)
  }

  addAllowedIp(peer: PeerId, prefix: Prefix): void {
    this.peerState(peer)
    checkPrefix(prefix)
    this.claimPrefix(peer, prefix)
  }

  removeAllowedIp(peer: PeerId, prefix: Prefix): boolean {
    const state = this.peerState(peer)
    checkPrefix(prefix)
    const key = prefixKey(prefix)
    if (!state.allowedIps.delete(key)) return false
    this.allowedIps.remove(prefix)
    return true
  }

  allowedIpsOf(peer: PeerId): Prefix[] {
    return [...this.peerState(peer).allowedIps.values()]
  }

  /** The peer whose AllowedIPs hold `address` by longest prefix. */
  routeFor(address: Uint8Array): PeerId | undefined {
    return this.allowedIps.lookup(address)
  }

  private claimPrefix(peer: PeerId, prefix: Prefix): void {
    const key = prefixKey(prefix)
    const { replaced, previous } = this.allowedIps.insert(prefix, peer)
    if (replaced && previous !== undefined && previous !== peer) this.peers.get(previous)?.allowedIps.delete(key)
    this.peers.get(peer)!.allowedIps.set(key, { address: prefix.address.slice(), bits: prefix.bits })
  }

  // ── transports and the peer → underlay route table ───────────────────────────

  /** Registers an overlay transport serving `addresses` (our own overlay addresses or prefixes). */
  addOverlay(overlay: OverlayId, addresses: Prefix[]): void {
    if (this.overlays.has(overlay)) throw new DataplaneError('duplicate-transport', `overlay ${overlay} already exists`)
    for (const prefix of addresses) checkPrefix(prefix)
    this.overlays.set(
      overlay,
      addresses.map((p) => ({ address: p.address.slice(), bits: p.bits })),
    )
    for (const prefix of addresses) this.localRoutes.insert(prefix, overlay)
  }

  removeOverlay(overlay: OverlayId): void {
    const addresses = this.overlays.get(overlay)
    if (!addresses) throw new DataplaneError('unknown-transport', `no overlay ${overlay}`)
    for (const prefix of addresses) if (this.localRoutes.get(prefix) === overlay) this.localRoutes.remove(prefix)
    this.overlays.delete(overlay)
  }

  addUnderlay(underlay: UnderlayId): void {
    if (this.underlays.has(underlay)) throw new DataplaneError('duplicate-transport', `underlay ${underlay} already exists`)
    this.underlays.add(underlay)
  }

  /** Forgets the underlay and every peer route and remembered endpoint on it. */
  removeUnderlay(underlay: UnderlayId): void {
    if (!this.underlays.delete(underlay)) throw new DataplaneError('unknown-transport', `no underlay ${underlay}`)
    for (const state of this.peers.values()) {
      state.endpoints.delete(underlay)
      if (state.route?.underlay === underlay) state.route = undefined
    }
  }

  /** Sends the peer's traffic over `underlay` to `endpoint` (path selection decides this). */
  setPeerRoute(peer: PeerId, underlay: UnderlayId, endpoint: Endpoint): void {
    const state = this.peerState(peer)
    if (!this.underlays.has(underlay)) throw new DataplaneError('unknown-transport', `no underlay ${underlay}`)
    state.route = { underlay, endpoint }
    state.endpoints.set(underlay, endpoint)
  }

  clearPeerRoute(peer: PeerId): void {
    this.peerState(peer).route = undefined
  }

  peerRoute(peer: PeerId): PeerRoute | undefined {
    return this.peerState(peer).route
  }

  // ── the packet path ──────────────────────────────────────────────────────────

  /** Routes IP packets from the overlay: to peers by AllowedIPs, or back up if addressed to us. */
  processOutbound(packets: Uint8Array[], now: number): OutboundResult {
    const toUnderlay = new UnderlayBatcher()
    const loopback = new Map<OverlayId, OverlayBatch>()
    for (const packet of packets) {
      const destination = ipDestination(packet)
      if (!destination) {
        count(this.globalDrops, 'malformed-ip')
        continue
      }
      const local = this.localRoutes.lookup(destination)
      if (local !== undefined) {
        pushOverlay(loopback, local, packet)
        continue
      }
      const peer = this.allowedIps.lookup(destination)
      if (peer === undefined) {
        count(this.globalDrops, 'no-route')
        continue
      }
      const state = this.peers.get(peer)!
      const route = state.route
      if (!route) {
        count(state.drops, 'no-endpoint')
        continue
      }
      state.txPackets++
      state.txBytes += packet.length
      this.filter?.noteOutbound(packet)
      const messages = this.tunnel.send(peer, packet, now)
      if (messages.length > 0) toUnderlay.add(route, messages)
    }
    return { toUnderlay: toUnderlay.batches, loopback: [...loopback.values()] }
  }

  /**
   * Starts a WireGuard handshake with `peer` ahead of its first packet (see Tunnel.handshake): the
   * initiation goes to the peer's route; nothing when it has no route, a usable session, or a
   * handshake under way.
   */
  handshake(peer: PeerId, now: number): EventResult {
    const state = this.peerState(peer)
    const toUnderlay = new UnderlayBatcher()
    if (!state.route) return { toUnderlay: toUnderlay.batches }
    const messages = this.tunnel.handshake(peer, now)
    if (messages.length > 0) toUnderlay.add(state.route, messages)
    return { toUnderlay: toUnderlay.batches }
  }

  /**
   * Handles datagrams that arrived on `underlay` from `endpoint`. `source` identifies the sender
   * for cookie MAC2 (see `UnderlayTransport.endpointBytes`).
   */
  processInbound(datagrams: Uint8Array[], underlay: UnderlayId, endpoint: Endpoint, now: number, source?: Uint8Array): InboundResult {
    const result: InboundResult = { toOverlay: [], toUnderlay: [], disco: [] }
    if (!this.underlays.has(underlay)) {
      this.globalDrops['unknown-underlay'] = (this.globalDrops['unknown-underlay'] ?? 0) + datagrams.length
      return result
    }
    const toOverlay = new Map<OverlayId, OverlayBatch>()
    const replies: Uint8Array[] = []
    for (const datagram of datagrams) {
      if (isDisco(datagram)) {
        result.disco.push({ underlay, endpoint, datagram })
        continue
      }
      this.noteHandshakeLoad(datagram, now)
      const received = this.tunnel.receive(datagram, now, source)
      for (const reply of received.replies) replies.push(reply)
      if (received.peer === undefined || received.dropped) continue
      const state = this.peers.get(received.peer)
      if (!state) continue
      // Roaming: an authenticated datagram proves where the peer is now on this underlay.
      state.endpoints.set(underlay, endpoint)
      if (!state.route || state.route.underlay === underlay) state.route = { underlay, endpoint }
      for (const packet of received.packets) this.deliverInbound(received.peer, state, packet, toOverlay)
    }
    if (replies.length > 0) result.toUnderlay.push({ underlay, endpoint, datagrams: replies })
    result.toOverlay = [...toOverlay.values()]
    return result
  }

  private deliverInbound(peer: PeerId, state: PeerState, packet: Uint8Array, toOverlay: Map<OverlayId, OverlayBatch>): void {
    const source = ipSource(packet)
    const destination = ipDestination(packet)
    if (!source || !destination) {
      count(state.drops, 'malformed-ip')
      return
    }
    if (this.allowedIps.lookup(source) !== peer) {
      count(state.drops, 'source-not-allowed')
      return
    }
    const overlay = this.localRoutes.lookup(destination)
    if (overlay === undefined) {
      count(state.drops, 'no-overlay')
      return
    }
    if (this.filter) {
      const verdict = this.filter.checkInbound(packet)
      if (!verdict.accept) {
        count(state.drops, verdict.reason)
        this.onFilterDrop?.(peer, verdict.reason, verdict.summary)
        return
      }
    }
    state.rxPackets++
    state.rxBytes += packet.length
    pushOverlay(toOverlay, overlay, packet)
  }

  private noteHandshakeLoad(datagram: Uint8Array, now: number): void {
    const type = datagram[0]
    if (type !== HANDSHAKE_INITIATION && type !== HANDSHAKE_RESPONSE) return
    if (now - this.handshakeWindowStart >= 1000) {
      this.handshakeWindowStart = now
      this.handshakesInWindow = 0
    }
    this.handshakesInWindow++
    if (this.handshakesInWindow > this.handshakeLimit) this.underLoadUntil = now + UNDER_LOAD_HOLD_MS
    this.tunnel.underLoad = now < this.underLoadUntil
  }

  /** Runs due tunnel timers (handshake retries, rekeys, keepalives, expiry). */
  poll(now: number): EventResult {
    if (this.tunnel.underLoad && now >= this.underLoadUntil) this.tunnel.underLoad = false
    const toUnderlay = new UnderlayBatcher()
    for (const { peer, message } of this.tunnel.poll(now)) {
      const state = this.peers.get(peer)
      if (!state) continue
      if (state.route) toUnderlay.add(state.route, [message])
      else count(state.drops, 'no-endpoint')
    }
    return { toUnderlay: toUnderlay.batches }
  }

  /** The soonest instant at which `poll` has work, or undefined. */
  nextEvent(): number | undefined {
    const tunnelEvent = this.tunnel.nextEvent()
    if (this.tunnel.underLoad && (tunnelEvent === undefined || this.underLoadUntil < tunnelEvent)) return this.underLoadUntil
    return tunnelEvent
  }

  // ── counters ─────────────────────────────────────────────────────────────────

  stats(peer: PeerId): DataplanePeerStats {
    const state = this.peerState(peer)
    const tunnelStats = this.tunnel.stats(peer)
    const drops: DropCounts = { ...tunnelStats.drops }
    for (const [reason, n] of Object.entries(state.drops) as Array<[DataplaneDropReason, number]>) drops[reason] = (drops[reason] ?? 0) + n
    const stats: DataplanePeerStats = {
      txPackets: state.txPackets,
      txBytes: state.txBytes,
      rxPackets: state.rxPackets,
      rxBytes: state.rxBytes,
      drops,
    }
    if (tunnelStats.lastHandshake !== undefined) stats.lastHandshake = tunnelStats.lastHandshake
    if (state.route) stats.route = state.route
    return stats
  }

  /** Drops not attributable to a peer (unroutable, malformed, unauthenticated). */
  drops(): DropCounts {
    const drops: DropCounts = { ...this.tunnel.drops }
    for (const [reason, n] of Object.entries(this.globalDrops) as Array<[DataplaneDropReason, number]>) drops[reason] = (drops[reason] ?? 0) + n
    return drops
  }

  private peerState(peer: PeerId): PeerState {
    const state = this.peers.get(peer)
    if (!state) throw new DataplaneError('unknown-peer', `no peer ${peer}`)
    return state
  }
}

/** Groups datagrams per (underlay, endpoint); endpoints compare as Map keys do (identity or primitive value). */
class UnderlayBatcher {
  readonly batches: UnderlayBatch[] = []
  private readonly index = new Map<UnderlayId, Map<Endpoint, UnderlayBatch>>()

  add(route: PeerRoute, datagrams: Uint8Array[]): void {
    let byEndpoint = this.index.get(route.underlay)
    if (!byEndpoint) this.index.set(route.underlay, (byEndpoint = new Map()))
    let batch = byEndpoint.get(route.endpoint)
    if (!batch) {
      batch = { underlay: route.underlay, endpoint: route.endpoint, datagrams: [] }
      byEndpoint.set(route.endpoint, batch)
      this.batches.push(batch)
    }
    for (const datagram of datagrams) batch.datagrams.push(datagram)
  }
}

function pushOverlay(batches: Map<OverlayId, OverlayBatch>, overlay: OverlayId, packet: Uint8Array): void {
  let batch = batches.get(overlay)
  if (!batch) batches.set(overlay, (batch = { overlay, packets: [] }))
  batch.packets.push(packet)
}
