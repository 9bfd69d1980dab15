// Plain-UDP direct paths between two Node peers, Tailscale magicsock style: each node binds one
// UDP socket, learns its server-reflexive endpoint from the relay's STUN server (RFC 8489 Binding),
// announces its endpoints to the peer in a disco CallMeMaybe over the relay (type 0x03, a list of
// 16-byte IP + 2-byte port, tailscale/disco/disco.go), and both sides send disco pings to every
// endpoint they heard of. A pong over UDP proves an endpoint; the shared path selector
// (src/underlay/disco/path-selector.ts) then trusts it, keeps it alive with heartbeats and gives it
// up when pongs stop, and this manager moves the peer's WireGuard route between the UDP socket and
// the relay accordingly. No SCTP/DTLS: WireGuard datagrams go straight onto the kernel's UDP.
//
// While the path is open but untrusted (pongs late), datagrams go on both UDP and the relay, as with
// WebRTC. A path without a pong for DEAD_AFTER_MS is closed; discovery (STUN, CallMeMaybe, probes to
// every candidate) then runs again with backoff, which is how a flushed NAT mapping recovers.
import os from 'node:os'
import { equalBytes, formatNodeKey, parseKey, randomBytes, toHex } from '../crypto/index.ts'
import { DeadlineTimer, systemClock, type DriverClock } from '../clock/clock.ts'
import type { DiscoDatagram } from '../dataplane/core.ts'
import type { UnderlayId, UnderlayTransport } from '../dataplane/transport.ts'
import { DiscoError } from '../underlay/disco/errors.ts'
import { DiscoKeyring } from '../underlay/disco/envelope.ts'
import { noteCounterActivity, relayMirrorCopies } from '../underlay/disco/peer-activity.ts'
import type { AddrPort, DiscoMessage } from '../underlay/disco/messages.ts'
import { PeerPathSelector, type PathSelectorOptions } from '../underlay/disco/path-selector.ts'
import { endpointBytes, formatEndpoint, UdpUnderlay, type UdpEndpoint } from '../underlay/udp/udp-underlay.ts'
import { formatAddress, parseAddress } from '../wire/address.ts'
import {
  Attr,
  decodeStunMessage,
  decodeXorMappedAddress,
  encodeStunMessage,
  looksLikeStun,
  MAGIC_COOKIE,
  METHOD_BINDING,
  StunError,
  TRANSACTION_ID_LENGTH,
} from '../server/stun/message.ts'
import type { UdpDirect, UdpDirectFactory, UdpDirectParams, UdpDirectPath } from '../agent/udp-direct-hook.ts'
import type { CandidateType } from '../underlay/webrtc/control-protocol.ts'

/** The socket the manager sends and receives on: a UdpUnderlay, or an in-memory one in tests. */
export type UdpSocketLike = UnderlayTransport<UdpEndpoint> & { readonly port: number }

export interface UdpDirectOptions extends UdpDirectParams {
  socket: UdpSocketLike | Promise<UdpSocketLike>
  clock?: DriverClock
  /** The addresses of this host to announce with our port (default: every non-loopback, non-link-local interface address). */
  localAddresses?: string[]
  selector?: PathSelectorOptions
  /** How often traffic counters are read while a peer is active (default 1 s) and while all are idle (default 5 s). */
  activityCheckMs?: number
  idleCheckMs?: number
}

/** UDP needs no setup: a discovery round that got no pong within this long counts as failed. */
const UDP_SELECTOR: PathSelectorOptions = { connectTimeoutMs: 5_000, retryInitialMs: 1_000, retryMaxMs: 10_000 }
/** An open path without any pong for this long is closed (trust lapsed 6.5 s after the last pong; two heartbeats more went unanswered). */
export const DEAD_AFTER_MS = 12_500
/** A CallMeMaybe answered with our own at most this often per peer (a peer that sends many gets one back per interval). */
const CALL_ME_MAYBE_MIN_INTERVAL_MS = 1_000
/** STUN is asked again at most this often (each discovery round asks). */
const STUN_MIN_INTERVAL_MS = 2_000
/** A probe without a pong after this long is forgotten. */
const PROBE_TIMEOUT_MS = 5_000

interface UdpPeer {
  nodeKey: Uint8Array
  name: string
  discoKey: Uint8Array
  relayUnderlay: UnderlayId
  selector: PeerPathSelector
  /** Endpoints heard of: from its CallMeMaybe and from the source of its pings. */
  candidates: Map<string, UdpEndpoint>
  /** The endpoint a pong proved, while the path is open. */
  best: UdpEndpoint | undefined
  lastPongAt: number
  probes: Map<string, { endpoint: UdpEndpoint; sentAt: number }>
  claimed: boolean
  /** How the peer saw us in the pong that proved the path: our own address (host) or a NAT mapping (srflx). */
  localType: CandidateType
  lastCallMeMaybeAt: number
  /** Where the core's route for it points now. */
  routed: string
  txPackets: number
  rxPackets: number
}

/** `AddrPort` of disco (IPv4 as `::ffff:a.b.c.d`) ↔ a UDP endpoint. */
export function toAddrPort(endpoint: UdpEndpoint): AddrPort {
  const address = parseAddress(endpoint.address)
  const ip = new Uint8Array(16)
  if (address.length === 4) {
    ip[10] = 0xff
    ip[11] = 0xff
    ip.set(address, 12)
  } else ip.set(address)
  return { ip, port: endpoint.port }
}

export function fromAddrPort(addr: AddrPort): UdpEndpoint | undefined {
  if (addr.port === 0 || addr.ip.every((b) => b === 0)) return undefined
  const mapped = addr.ip.subarray(0, 10).every((b) => b === 0) && addr.ip[10] === 0xff && addr.ip[11] === 0xff
  return { address: formatAddress(mapped ? addr.ip.slice(12) : addr.ip.slice()), port: addr.port }
}

/** `stun:host:port` URLs (RFC 7064; port 3478 by default) of the ICE servers; `stuns:` and TURN are not for us. */
export function stunEndpoints(servers: Array<{ urls: string | string[] }>): UdpEndpoint[] {
  const out: UdpEndpoint[] = []
  for (const server of servers) {
    for (const url of Array.isArray(server.urls) ? server.urls : [server.urls]) {
      const match = /^stun:(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?.*)?$/i.exec(url)
      if (!match) continue
      const port = match[2] ? Number(match[2]) : 3478
      if (port < 1 || port > 65535) continue
      out.push({ address: match[1]!.replace(/^\[|\]$/g, ''), port })
    }
  }
  return out
}

/** This host's addresses worth announcing: not loopback, not link-local (those need a scope). */
export function localInterfaceAddresses(): string[] {
  const out: string[] = []
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.internal) continue
      if (a.family === 'IPv6' && /^fe80:/i.test(a.address)) continue
      out.push(a.address)
    }
  }
  return out
}

/** The socket as the dataplane sees it: STUN answers are taken out before delivery, and sends may be mirrored to the relay. */
class DirectUdpTransport implements UnderlayTransport<UdpEndpoint> {
  constructor(
    private readonly inner: UdpSocketLike,
    private readonly onStun: (from: UdpEndpoint, datagram: Uint8Array) => boolean,
    private readonly mirror: (endpoint: UdpEndpoint, datagrams: Uint8Array[]) => void,
  ) {}
  start(deliver: (endpoint: UdpEndpoint, datagrams: Uint8Array[]) => void): void {
    this.inner.start((from, datagrams) => {
      const rest = datagrams.filter((d) => !(looksLikeStun(d) && this.onStun(from, d)))
      if (rest.length > 0) deliver(from, rest)
    })
  }
  send(endpoint: UdpEndpoint, datagrams: Uint8Array[]): void {
    this.mirror(endpoint, datagrams)
    this.inner.send(endpoint, datagrams)
  }
  stop(): void {
    this.inner.stop()
  }
  endpointBytes(endpoint: UdpEndpoint): Uint8Array {
    return this.inner.endpointBytes?.(endpoint) ?? endpointBytes(endpoint)
  }
}

export class UdpDirectManager implements UdpDirect {
  readonly keyring: DiscoKeyring
  readonly counters = {
    probesSent: 0,
    pingsSent: 0,
    pongsSent: 0,
    pongsMatched: 0,
    callMeMaybeSent: 0,
    callMeMaybeReceived: 0,
    stunSent: 0,
    stunAnswered: 0,
    discoRejected: 0,
    mirroredToRelay: 0,
    pathsClosed: 0,
  }
  private readonly clock: DriverClock
  private readonly peers = new Map<string, UdpPeer>()
  private readonly byDisco = new Map<string, UdpPeer>()
  /** Best endpoints → their peer, for mirroring. */
  private readonly byEndpoint = new Map<string, UdpPeer>()
  private socket: UdpSocketLike | undefined
  private underlay: UnderlayId | undefined
  private stunServers: UdpEndpoint[] = []
  private readonly stunPending = new Map<string, number>()
  private lastStunAt = -Infinity
  private readonly reflexive = new Map<string, UdpEndpoint>()
  private readonly localAddresses: string[]
  private readonly timer: DeadlineTimer
  private stopped = false

  constructor(private readonly options: UdpDirectOptions) {
    this.clock = options.clock ?? systemClock
    this.timer = new DeadlineTimer(this.clock, () => this.poll())
    this.keyring = new DiscoKeyring(options.discoPrivateKey)
    this.localAddresses = options.localAddresses ?? localInterfaceAddresses()
    Promise.resolve(options.socket).then(
      (socket) => this.attach(socket),
      (error: unknown) => options.context.reportError(error),
    )
  }

  /** The port we listen on (0 until the socket is bound). */
  get port(): number {
    return this.socket?.port ?? 0
  }

  /** Our endpoints as announced in CallMeMaybe: interface addresses with our port, then what STUN saw. */
  endpoints(): UdpEndpoint[] {
    if (!this.socket) return []
    const seen = new Map<string, UdpEndpoint>()
    for (const address of this.localAddresses) seen.set(formatEndpoint({ address, port: this.socket.port }), { address, port: this.socket.port })
    for (const [key, endpoint] of this.reflexive) seen.set(key, endpoint)
    return [...seen.values()]
  }

  setPeer(nodeKey: string, discoKey: string, relayUnderlay: UnderlayId): void {
    const key = parseKey(nodeKey)
    const disco = parseKey(discoKey)
    const id = toHex(key)
    const existing = this.peers.get(id)
    if (existing && equalBytes(existing.discoKey, disco)) {
      existing.relayUnderlay = relayUnderlay
      return
    }
    if (existing) this.removePeer(nodeKey)
    const now = this.clock.now()
    const peer: UdpPeer = {
      nodeKey: key,
      name: formatNodeKey(key),
      discoKey: disco,
      relayUnderlay,
      selector: new PeerPathSelector({ ...UDP_SELECTOR, ...this.options.selector }),
      candidates: new Map(),
      best: undefined,
      lastPongAt: -Infinity,
      probes: new Map(),
      claimed: false,
      localType: 'unknown',
      lastCallMeMaybeAt: -Infinity,
      routed: 'relay',
      txPackets: 0,
      rxPackets: 0,
    }
    this.peers.set(id, peer)
    this.byDisco.set(toHex(disco), peer)
    // As for WebRTC (NodeDirect): every online peer is probed anyway, so discovery starts now.
    peer.selector.noteActivity(now)
    this.poll()
  }

  removePeer(nodeKey: string): void {
    const id = toHex(parseKey(nodeKey))
    const peer = this.peers.get(id)
    if (!peer) return
    this.setBest(peer, undefined)
    if (peer.routed !== 'relay') this.route(peer, undefined)
    this.peers.delete(id)
    this.byDisco.delete(toHex(peer.discoKey))
    this.keyring.forget(peer.discoKey)
  }

  pathOf(nodeKey: string): UdpDirectPath | undefined {
    const peer = this.peers.get(toHex(parseKey(nodeKey)))
    if (!peer?.claimed) return undefined
    const status = peer.selector.status(this.clock.now())
    const direct = status.path === 'direct' && peer.best !== undefined
    if (!direct) return { path: 'relay', rttMs: null, endpoint: null, candidates: null }
    const endpoint = formatEndpoint(peer.best!)
    // ICE's words for the pair: our side from the proving pong. The peer's side only the peer knows
    // (CallMeMaybe does not say which of its endpoints are NAT mappings), so it stays unknown.
    return { path: 'direct', rttMs: status.rttMs ?? null, endpoint, candidates: { local: peer.localType, remote: 'unknown' } }
  }

  /** Selector state and candidates of one peer (tests, diagnostics). */
  peerInfo(nodeKey: string): { claimed: boolean; direct: string; path: string; best: string | null; candidates: string[]; failures: number } | undefined {
    const peer = this.peers.get(toHex(parseKey(nodeKey)))
    if (!peer) return undefined
    const status = peer.selector.status(this.clock.now())
    return {
      claimed: peer.claimed,
      direct: status.direct,
      path: status.path,
      best: peer.best ? formatEndpoint(peer.best) : null,
      candidates: [...peer.candidates.keys()],
      failures: status.failures,
    }
  }

  setIceServers(servers: Array<{ urls: string | string[] }>): void {
    this.stunServers = stunEndpoints(servers)
    this.lastStunAt = -Infinity
    this.askStun(this.clock.now())
  }

  debugInfo(): { counters: Record<string, number>; port: number; endpoints: string[] } {
    return { counters: { ...this.counters }, port: this.port, endpoints: this.endpoints().map(formatEndpoint) }
  }

  handleDisco(disco: DiscoDatagram): boolean {
    if (this.stopped) return false
    const overUdp = this.underlay !== undefined && disco.underlay === this.underlay
    let opened: { sender: Uint8Array; message: DiscoMessage }
    try {
      opened = this.keyring.open(disco.datagram)
    } catch (error) {
      if (!(error instanceof DiscoError)) throw error
      if (overUdp) this.counters.discoRejected++
      return overUdp
    }
    const peer = this.byDisco.get(toHex(opened.sender))
    if (!peer) {
      if (overUdp) this.counters.discoRejected++
      return overUdp
    }
    const now = this.clock.now()
    const message = opened.message
    if (!overUdp) {
      // Over the relay only CallMeMaybe is ours; pings, pongs and WebRTC signals there belong to WebRTC.
      if (message.type !== 'call-me-maybe') return false
      this.onCallMeMaybe(peer, message.endpoints, now)
      this.poll()
      return true
    }
    const from = { address: (disco.endpoint as UdpEndpoint).address, port: (disco.endpoint as UdpEndpoint).port }
    switch (message.type) {
      case 'ping':
        this.addCandidate(peer, from)
        this.counters.pongsSent++
        this.sendUdp(peer, from, { type: 'pong', txId: message.txId, source: toAddrPort(from) })
        // Its ping got through, so ours to the same endpoint likely will: try it now.
        if (peer.selector.status(now).direct !== 'open') this.probe(peer, from, now)
        break
      case 'pong':
        this.onPong(peer, from, message.txId, message.source, now)
        break
      case 'call-me-maybe':
        this.onCallMeMaybe(peer, message.endpoints, now)
        break
      case 'webrtc-signal':
        break
    }
    this.poll()
    return true
  }

  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.timer.clear()
    for (const peer of this.peers.values()) if (peer.routed !== 'relay') this.route(peer, undefined)
    if (this.underlay !== undefined) {
      try {
        this.options.context.driver.removeUnderlay(this.underlay)
      } catch {
        // The dataplane stopped first: its underlays are gone already.
      }
    } else this.socket?.stop()
  }

  /** Runs every selector that is due. Public for tests; the timer calls it. */
  poll(): void {
    if (this.stopped) return
    const now = this.clock.now()
    this.readActivity(now)
    for (const [id, sentAt] of this.stunPending) if (now - sentAt > PROBE_TIMEOUT_MS) this.stunPending.delete(id)
    for (const peer of this.peers.values()) {
      for (const [id, probe] of peer.probes) if (now - probe.sentAt > PROBE_TIMEOUT_MS) peer.probes.delete(id)
      if (peer.selector.status(now).direct === 'open' && now >= peer.lastPongAt + DEAD_AFTER_MS) {
        // The endpoint stopped answering (the NAT forgot the mapping, the peer moved): rediscover.
        this.counters.pathsClosed++
        peer.selector.directClosed(now)
        this.setBest(peer, undefined)
      }
      for (const action of peer.selector.poll(now)) {
        switch (action.type) {
          case 'connect-direct':
            this.discover(peer, now)
            break
          case 'ping':
            if (peer.best) {
              this.counters.pingsSent++
              this.sendUdp(peer, peer.best, { type: 'ping', txId: action.txId, nodeKey: this.ourNodeKey(), padding: 0 })
            }
            break
          case 'abandon-direct':
            peer.probes.clear()
            break
          case 'path-changed':
            if (peer.claimed) this.options.onPathChange(peer.name, action.path, action.rttMs ?? null)
            break
        }
      }
      const routes = peer.selector.routes(now)
      this.route(peer, routes.includes('direct') ? peer.best : undefined)
    }
    this.schedule(now)
  }

  // ── internals ──────────────────────────────────────────────────────────────

  private attach(socket: UdpSocketLike): void {
    if (this.stopped) {
      socket.stop()
      return
    }
    this.socket = socket
    const transport = new DirectUdpTransport(
      socket,
      (from, datagram) => this.onStun(from, datagram),
      (endpoint, datagrams) => this.mirror(endpoint, datagrams),
    )
    try {
      this.underlay = this.options.context.driver.addUnderlay(transport)
    } catch (error) {
      this.options.context.reportError(error)
      return
    }
    this.askStun(this.clock.now())
    // Peers set while the socket was opening start discovery now.
    for (const peer of this.peers.values()) if (peer.selector.status(this.clock.now()).direct === 'connecting') this.discover(peer, this.clock.now())
    this.poll()
  }

  private discover(peer: UdpPeer, now: number): void {
    if (!this.socket) return
    this.askStun(now)
    this.sendCallMeMaybe(peer, now)
    for (const endpoint of peer.candidates.values()) this.probe(peer, endpoint, now)
  }

  private onCallMeMaybe(peer: UdpPeer, endpoints: AddrPort[], now: number): void {
    this.counters.callMeMaybeReceived++
    peer.selector.noteActivity(now)
    const announced = endpoints.flatMap((addr) => fromAddrPort(addr) ?? [])
    // The path we use is not among the endpoints the peer has now: it restarted (same keys, a new
    // socket) or moved. Its old endpoint is dead; back to the relay at once instead of after the
    // pongs time out, and probe what it announced.
    if (peer.best && peer.selector.status(now).direct === 'open' && !announced.some((e) => sameEndpoint(e, peer.best!))) {
      this.counters.pathsClosed++
      peer.selector.directClosed(now)
      this.setBest(peer, undefined)
      this.route(peer, undefined)
    }
    for (const addr of endpoints) {
      const endpoint = fromAddrPort(addr)
      if (!endpoint) continue
      const added = this.addCandidate(peer, endpoint)
      if (added || peer.selector.status(now).direct !== 'open') this.probe(peer, endpoint, now)
    }
    // Answer with ours so that its pings find a hole in our NAT too (our probes just made one).
    if (now - peer.lastCallMeMaybeAt >= CALL_ME_MAYBE_MIN_INTERVAL_MS) this.sendCallMeMaybe(peer, now)
  }

  private onPong(peer: UdpPeer, from: UdpEndpoint, txId: Uint8Array, source: AddrPort, now: number): void {
    const id = toHex(txId)
    const probe = peer.probes.get(id)
    if (probe) {
      peer.probes.delete(id)
      // Where the peer saw us: one of our own addresses means no NAT on our side.
      const seen = fromAddrPort(source)
      peer.localType = seen && this.localAddresses.includes(seen.address) ? 'host' : 'srflx'
      // UDP works with this peer: WebRTC leaves it alone from now on.
      this.claim(peer)
      this.counters.pongsMatched++
      peer.lastPongAt = now
      const status = peer.selector.status(now)
      // The first endpoint to answer wins; a later one replaces it only once the path was lost.
      if (status.direct !== 'open' || !peer.best) {
        this.setBest(peer, from)
        peer.selector.directProven(now, now - probe.sentAt)
      } else if (peer.best && sameEndpoint(peer.best, from)) {
        peer.selector.directProven(now, now - probe.sentAt)
      }
      return
    }
    if (peer.best && sameEndpoint(peer.best, from) && peer.selector.handlePong(txId, now)) {
      this.counters.pongsMatched++
      peer.lastPongAt = now
    }
  }

  private probe(peer: UdpPeer, endpoint: UdpEndpoint, now: number): void {
    const txId = randomBytes(12)
    peer.probes.set(toHex(txId), { endpoint, sentAt: now })
    if (peer.probes.size > 32) peer.probes.delete(peer.probes.keys().next().value!)
    this.counters.probesSent++
    this.sendUdp(peer, endpoint, { type: 'ping', txId, nodeKey: this.ourNodeKey(), padding: 0 })
  }

  private sendCallMeMaybe(peer: UdpPeer, now: number): void {
    const endpoints = this.endpoints()
    if (endpoints.length === 0) return
    peer.lastCallMeMaybeAt = now
    this.counters.callMeMaybeSent++
    this.send(peer.relayUnderlay, peer.nodeKey, [this.keyring.seal(peer.discoKey, { type: 'call-me-maybe', endpoints: endpoints.map(toAddrPort) })])
  }

  private claim(peer: UdpPeer): void {
    if (peer.claimed) return
    peer.claimed = true
    this.options.claim(peer.name)
  }

  private addCandidate(peer: UdpPeer, endpoint: UdpEndpoint): boolean {
    const key = formatEndpoint(endpoint)
    if (peer.candidates.has(key)) return false
    if (peer.candidates.size >= 16) peer.candidates.delete(peer.candidates.keys().next().value!)
    peer.candidates.set(key, { address: endpoint.address, port: endpoint.port })
    return true
  }

  private setBest(peer: UdpPeer, endpoint: UdpEndpoint | undefined): void {
    if (peer.best) this.byEndpoint.delete(formatEndpoint(peer.best))
    peer.best = endpoint ? { address: endpoint.address, port: endpoint.port } : undefined
    if (peer.best) this.byEndpoint.set(formatEndpoint(peer.best), peer)
  }

  /** Points the core's route for the peer at `endpoint` on the UDP socket, or back at its relay. */
  private route(peer: UdpPeer, endpoint: UdpEndpoint | undefined): void {
    const target = endpoint && this.underlay !== undefined ? formatEndpoint(endpoint) : 'relay'
    if (peer.routed === target) return
    peer.routed = target
    try {
      this.options.context.driver.withCore((core) => {
        const id = core.peerByKey(peer.nodeKey)
        if (id === undefined) return
        if (endpoint && this.underlay !== undefined) core.setPeerRoute(id, this.underlay, peer.best!)
        else core.setPeerRoute(id, peer.relayUnderlay, peer.nodeKey)
      })
    } catch (error) {
      this.options.context.reportError(error)
    }
  }

  private mirror(endpoint: UdpEndpoint, datagrams: Uint8Array[]): void {
    const peer = this.byEndpoint.get(formatEndpoint(endpoint))
    if (!peer) return
    const copies = relayMirrorCopies(peer.selector, this.clock.now(), datagrams)
    if (copies.length === 0) return
    this.counters.mirroredToRelay += copies.length
    this.send(peer.relayUnderlay, peer.nodeKey, copies)
  }

  private askStun(now: number): void {
    if (!this.socket || this.stunServers.length === 0 || now - this.lastStunAt < STUN_MIN_INTERVAL_MS) return
    this.lastStunAt = now
    for (const server of this.stunServers) {
      // RFC 8489 §6.1: a Binding request with the magic cookie and a fresh 96-bit transaction id.
      const transactionId = randomBytes(TRANSACTION_ID_LENGTH)
      this.stunPending.set(toHex(transactionId), now)
      this.counters.stunSent++
      this.socket.send(server, [encodeStunMessage({ method: METHOD_BINDING, class: 'request', cookie: MAGIC_COOKIE, transactionId, attributes: [], fingerprint: true })])
    }
  }

  /** A STUN datagram on our socket: true when it answered one of our requests (it is then not WireGuard's). */
  private onStun(_from: UdpEndpoint, datagram: Uint8Array): boolean {
    let message
    try {
      message = decodeStunMessage(datagram)
    } catch (error) {
      if (error instanceof StunError) return false
      throw error
    }
    const id = toHex(message.transactionId)
    if (message.method !== METHOD_BINDING || message.class !== 'success' || !this.stunPending.delete(id)) return false
    const attribute = message.attributes.find((a) => a.type === Attr.XOR_MAPPED_ADDRESS)
    if (!attribute) return true
    let mapped
    try {
      mapped = decodeXorMappedAddress(attribute.value, message.transactionId)
    } catch {
      return true
    }
    this.counters.stunAnswered++
    const endpoint = { address: formatAddress(mapped.address), port: mapped.port }
    const key = formatEndpoint(endpoint)
    if (this.reflexive.has(key)) return true
    this.reflexive.set(key, endpoint)
    // A new public endpoint: tell the peers we are trying to reach.
    const now = this.clock.now()
    for (const peer of this.peers.values()) if (peer.selector.status(now).direct !== 'open') this.sendCallMeMaybe(peer, now)
    return true
  }

  private readActivity(now: number): void {
    this.options.context.driver.withCore((core) => noteCounterActivity(core, this.peers.values(), now))
  }

  private schedule(now: number): void {
    if (this.stopped) return
    let anyActive = false
    for (const peer of this.peers.values()) if (peer.selector.status(now).active) anyActive = true
    let at = now + (anyActive ? (this.options.activityCheckMs ?? 1000) : (this.options.idleCheckMs ?? 5000))
    for (const peer of this.peers.values()) {
      const next = peer.selector.nextEvent()
      if (next !== undefined && next < at) at = Math.max(next, now)
      if (peer.selector.status(now).direct === 'open' && peer.lastPongAt + DEAD_AFTER_MS < at) at = Math.max(peer.lastPongAt + DEAD_AFTER_MS, now)
    }
    this.timer.arm(at)
  }

  private ourNodeKey(): Uint8Array {
    return this.options.context.driver.withCore((core) => core.publicKey)
  }

  private sendUdp(peer: UdpPeer, endpoint: UdpEndpoint, message: DiscoMessage): void {
    if (this.underlay === undefined) return
    this.send(this.underlay, { address: endpoint.address, port: endpoint.port }, [this.keyring.seal(peer.discoKey, message)])
  }

  private send(underlay: UnderlayId, endpoint: unknown, datagrams: Uint8Array[]): void {
    try {
      this.options.context.driver.sendDirect(underlay, endpoint, datagrams)
    } catch (error) {
      this.options.context.reportError(error)
    }
  }
}

function sameEndpoint(a: UdpEndpoint, b: UdpEndpoint): boolean {
  return a.port === b.port && a.address === b.address
}

/** The factory `burrow/node` hands the node agent: each join opens its own UDP socket on `port` (0: any free one). */
export function udpDirectFactory(options: { port?: number } = {}): UdpDirectFactory {
  return (params) => new UdpDirectManager({ ...params, socket: UdpUnderlay.open({ port: options.port ?? 0 }) })
}
