import { randomBytes } from '../crypto/index.ts'
import {
  ACK as imported_ACK,
  FIN as imported_FIN,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV6_DEST_UNREACHABLE,
  PROTO_ICMP as imported_PROTO_ICMP,
  PROTO_ICMPV6 as imported_PROTO_ICMPV6,
  PROTO_TCP as imported_PROTO_TCP,
  PROTO_UDP as imported_PROTO_UDP,
  RST as imported_RST,
  SYN as imported_SYN,
  WireError,
  addressEquals as imported_addressEquals,
  buildEcho,
  buildIcmpError,
  buildIp,
  buildIpTcp as imported_buildIpTcp,
  buildIpUdp as imported_buildIpUdp,
  formatAddress,
  parseAddress,
  parseEcho,
  parseIcmp,
  ipDestination,
  ipSource,
  ipVersion,
  parseIp as imported_parseIp,
  parseTcp as imported_parseTcp,
  parseUdp as imported_parseUdp,
  type IpAddress,
  type TcpSegment,
} from '../wire/index.ts'
import { ConnectionTable } from './connection-table.ts'
import { PingError, PingTracker } from './icmp.ts'
import { DEFAULT_KEEPALIVE, DEFAULT_TCP_CONFIG, type KeepAliveConfig, type TcpConfig } from './tcp/config.ts'
import { TcpConnection, type TcpHost } from './tcp/connection.ts'
import { TcpError } from './tcp/errors.ts'
import { IsnGenerator } from './tcp/isn.ts'
import { TcpListener } from './tcp/listener.ts'
import { UdpEndpoint, type UdpHost } from './udp.ts'

// Module-local copies of the imports the per-packet path calls: under Node's ESM→CJS interop
// (tsx, vitest) every use of an imported binding is a getter call, ~10 % of a 1420-byte profile.
const ACK = imported_ACK
const FIN = imported_FIN
const PROTO_ICMP = imported_PROTO_ICMP
const PROTO_ICMPV6 = imported_PROTO_ICMPV6
const PROTO_TCP = imported_PROTO_TCP
const PROTO_UDP = imported_PROTO_UDP
const RST = imported_RST
const SYN = imported_SYN
const addressEquals = imported_addressEquals
const buildIpTcp = imported_buildIpTcp
const buildIpUdp = imported_buildIpUdp
const parseIp = imported_parseIp
const parseTcp = imported_parseTcp
const parseUdp = imported_parseUdp

// The sans-IO IP layer: packets in via `receive`, packets out via `takeOutgoing`, time only
// through the `now` arguments, and `nextEvent()` to say when `poll` is next due.

export const DEFAULT_MTU = 1420
const IPV4_HEADER = 20
const IPV6_HEADER = 40
const TCP_HEADER = 20
const UDP_HEADER = 8
const EPHEMERAL_LOW = 49152
const EPHEMERAL_COUNT = 65536 - EPHEMERAL_LOW
const DEFAULT_BACKLOG = 128
const ICMP_ERRORS_PER_SECOND = 50

export interface StackOptions {
  /** The stack's own overlay addresses (one IPv4 and/or one or more IPv6). */
  addresses: Array<string | IpAddress>
  /** Tunnel MTU: the largest IP packet the stack sends. */
  mtu?: number
  tcp?: Partial<TcpConfig>
  /** Keys ISNs, timestamp offsets and port choice; random unless a test wants determinism. */
  secret?: Uint8Array
}

export interface ConnectOptions {
  address: string | IpAddress
  port: number
  localPort?: number
  noDelay?: boolean
  keepAlive?: Partial<KeepAliveConfig> | boolean
}

export interface ListenOptions {
  port: number
  backlog?: number
  /** Restrict to one of the stack's addresses. */
  address?: string | IpAddress
}

export interface StackStats {
  packetsIn: number
  packetsOut: number
  malformed: number
  notForUs: number
  unsupported: number
  resetsSent: number
  backlogDrops: number
  /** UDP datagrams for a port nobody bound (answered with ICMP port unreachable, rate-limited). */
  udpNoPort: number
}

export class Stack implements TcpHost, UdpHost {
  readonly addresses: IpAddress[]
  readonly mtu: number
  readonly tcpConfig: TcpConfig
  readonly stats: StackStats = { packetsIn: 0, packetsOut: 0, malformed: 0, notForUs: 0, unsupported: 0, resetsSent: 0, backlogDrops: 0, udpNoPort: 0 }
  private outbox: Uint8Array[] = []
  private readonly connections = new ConnectionTable<TcpConnection>()
  private readonly listeners = new Map<number, TcpListener>()
  private readonly udpEndpoints = new Map<number, UdpEndpoint>()
  private readonly dirty = new Set<TcpConnection>()
  private readonly owners = new Map<TcpConnection, TcpListener>()
  private readonly pings: PingTracker
  private readonly isn: IsnGenerator
  private portState: number
  private ipId = 0
  private icmpErrorWindowStart = -Infinity
  private icmpErrorsInWindow = 0

  constructor(options: StackOptions) {
    if (options.addresses.length === 0) throw new TcpError('bad-argument', 'a stack needs at least one address')
    this.addresses = options.addresses.map((a) => (typeof a === 'string' ? parseAddress(a) : a))
    this.mtu = options.mtu ?? DEFAULT_MTU
    if (!Number.isInteger(this.mtu) || this.mtu < 1280 - 40 || this.mtu > 65535) {
      throw new TcpError('bad-argument', `MTU ${options.mtu} is outside 1240..65535`)
    }
    this.tcpConfig = { ...DEFAULT_TCP_CONFIG, ...options.tcp }
    checkTcpConfig(this.tcpConfig)
    const secret = options.secret ?? randomBytes(32)
    this.isn = new IsnGenerator(secret)
    const seed = new DataView(secret.buffer, secret.byteOffset, secret.byteLength)
    this.portState = seed.getUint32(0) || 1
    this.pings = new PingTracker(seed.getUint16(4))
  }

  // ---------------------------------------------------------------- sans-IO surface

  /**
   * Processes one inbound IP packet. Malformed or foreign packets are counted and dropped.
   * `owned`: the caller hands the packet over and never touches its bytes again (packets that
   * arrived in a transferred buffer, or that another stack's `takeOutgoing` gave away), so TCP
   * keeps views of its payload instead of copying it; otherwise the packet is only read here.
   */
  receive(packet: Uint8Array, now: number, owned = false): void {
    this.stats.packetsIn++
    try {
      const ip = parseIp(packet)
      if (!this.isLocal(ip.dst)) {
        this.stats.notForUs++
        return
      }
      switch (ip.protocol) {
        case PROTO_TCP:
          this.receiveTcp(ip.src, ip.dst, parseTcp(ip.payload, ip.src, ip.dst), now, owned)
          break
        case PROTO_UDP:
          this.receiveUdp(ip.src, ip.dst, ip.payload, packet, now)
          break
        case PROTO_ICMP:
        case PROTO_ICMPV6:
          if ((ip.protocol === PROTO_ICMP) !== (ip.version === 4)) {
            this.stats.unsupported++
            break
          }
          this.receiveIcmp(ip.version, ip.src, ip.dst, ip.payload, now)
          break
        default:
          this.stats.unsupported++
      }
    } catch (error) {
      if (!(error instanceof WireError)) throw error
      this.stats.malformed++
    }
  }

  /** Runs due timers and flushes connections the application touched. */
  poll(now: number): void {
    this.pings.poll(now)
    for (const connection of this.connections.values()) {
      const due = connection.nextEvent()
      if (this.dirty.has(connection) || (due !== undefined && due <= now)) connection.poll(now)
      // Also forgets connections the application aborted since the last poll.
      this.settle(connection)
    }
    this.dirty.clear()
  }

  /** Packets produced since the last call, oldest first. */
  takeOutgoing(): Uint8Array[] {
    const out = this.outbox
    this.outbox = []
    return out
  }

  get hasOutgoing(): boolean {
    return this.outbox.length > 0
  }

  /** When `poll` must next run: 0 when something is already due, undefined when idle. */
  nextEvent(): number | undefined {
    if (this.dirty.size > 0) return 0
    let next = this.pings.nextEvent()
    for (const connection of this.connections.values()) {
      const t = connection.nextEvent()
      if (t !== undefined && (next === undefined || t < next)) next = t
    }
    return next
  }

  get connectionCount(): number {
    return this.connections.size
  }

  // ---------------------------------------------------------------- TCP

  connect(options: ConnectOptions, now: number): TcpConnection {
    const remote = this.parseTarget(options.address)
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 0xffff) {
      throw new TcpError('bad-argument', `bad TCP port ${options.port}`)
    }
    const local = this.sourceFor(remote)
    const localPort = options.localPort ?? this.ephemeralPort((port) => this.connections.has(local, port, remote, options.port))
    const existing = this.connections.get(local, localPort, remote, options.port)
    if (existing) {
      // A 4-tuple in TIME_WAIT may be reused: the clock-driven ISN moves past the old sequence space.
      if (existing.state !== 'TIME_WAIT') {
        throw new TcpError('address-in-use', `${formatAddress(local)}:${localPort} is already connected to ${formatAddress(remote)}:${options.port}`)
      }
      this.connections.delete(existing)
    }
    const config = this.configFor(options)
    const { isn, timestampOffset } = this.isn.generate(local, localPort, remote, options.port, now)
    const endpoints = { localAddress: local, localPort, remoteAddress: remote, remotePort: options.port }
    const connection = new TcpConnection(this, endpoints, config, this.mssFor(remote), isn, timestampOffset, now, false)
    this.connections.add(connection)
    connection.open(now)
    return connection
  }

  listen(options: ListenOptions): TcpListener {
    const { port } = options
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new TcpError('bad-argument', `bad TCP port ${port}`)
    if (this.listeners.has(port)) throw new TcpError('address-in-use', `TCP port ${port} is already listening`)
    const backlog = options.backlog ?? DEFAULT_BACKLOG
    if (!Number.isInteger(backlog) || backlog < 1) throw new TcpError('bad-argument', `backlog must be a positive integer, not ${backlog}`)
    const address = options.address === undefined ? undefined : this.parseTarget(options.address)
    if (address && !this.isLocal(address)) throw new TcpError('bad-argument', `${formatAddress(address)} is not an address of this stack`)
    const listener = new TcpListener(port, backlog, address, (l) => this.listeners.delete(l.port))
    this.listeners.set(port, listener)
    return listener
  }

  emit(connection: TcpConnection, segment: TcpSegment): void {
    const id = this.nextIpId()
    this.push(buildIpTcp({ src: connection.localAddress, dst: connection.remoteAddress, id }, segment), id)
  }

  markDirty(connection: TcpConnection): void {
    this.dirty.add(connection)
  }

  private receiveTcp(src: IpAddress, dst: IpAddress, seg: TcpSegment, now: number, owned: boolean): void {
    let connection = this.connections.get(dst, seg.dstPort, src, seg.srcPort)
    if (connection && connection.acceptsNewSyn(seg)) {
      this.connections.delete(connection)
      connection = undefined
    }
    if (connection) {
      connection.receive(seg, now, owned)
      this.settle(connection)
      return
    }
    const listener = this.listeners.get(seg.dstPort)
    if (listener && (!listener.address || addressEquals(listener.address, dst)) && (seg.flags & (SYN | ACK | RST)) === SYN) {
      if (!listener.hasRoom) {
        this.stats.backlogDrops++
        return
      }
      this.acceptSyn(listener, src, dst, seg, now)
      return
    }
    this.resetClosed(src, dst, seg)
  }

  private acceptSyn(listener: TcpListener, src: IpAddress, dst: IpAddress, seg: TcpSegment, now: number): void {
    const { isn, timestampOffset } = this.isn.generate(dst, seg.dstPort, src, seg.srcPort, now)
    // Copies: `src`/`dst` view the inbound packet, whose buffer the caller may reuse, and the
    // connection keeps them (they are its demultiplexing key).
    const endpoints = { localAddress: dst.slice(), localPort: seg.dstPort, remoteAddress: src.slice(), remotePort: seg.srcPort }
    const connection = new TcpConnection(this, endpoints, this.tcpConfig, this.mssFor(src), isn, timestampOffset, now, true)
    connection.events = {
      established: () => listener.promote(connection),
      closed: () => listener.forget(connection),
    }
    this.connections.add(connection)
    this.owners.set(connection, listener)
    listener.adopt(connection)
    connection.acceptSyn(seg, now)
  }

  /** RFC 9293 §3.10.7.1: a segment for no connection gets a RST (unless it is one). */
  private resetClosed(src: IpAddress, dst: IpAddress, seg: TcpSegment): void {
    if (seg.flags & RST) return
    this.stats.resetsSent++
    const length = seg.payload.length + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0)
    const reply: TcpSegment =
      seg.flags & ACK
        ? { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: RST, window: 0, urgent: 0, options: {}, payload: new Uint8Array(0) }
        : {
            srcPort: seg.dstPort,
            dstPort: seg.srcPort,
            seq: 0,
            ack: (seg.seq + length) >>> 0,
            flags: RST | ACK,
            window: 0,
            urgent: 0,
            options: {},
            payload: new Uint8Array(0),
          }
    const id = this.nextIpId()
    this.push(buildIpTcp({ src: dst, dst: src, id }, reply), id)
  }

  /** Forgets a connection once it is fully closed. */
  private settle(connection: TcpConnection): void {
    if (!connection.isDead) return
    this.connections.delete(connection)
    this.dirty.delete(connection)
    const owner = this.owners.get(connection)
    if (owner) {
      owner.forget(connection)
      this.owners.delete(connection)
    }
  }

  /** The application accepted `connection` from its listener: it no longer counts against the backlog. */
  disown(connection: TcpConnection): void {
    this.owners.delete(connection)
  }

  // ---------------------------------------------------------------- UDP

  bindUdp(port?: number): UdpEndpoint {
    let chosen: number
    if (port === undefined || port === 0) {
      chosen = this.ephemeralPort((p) => this.udpEndpoints.has(p))
    } else {
      if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new TcpError('bad-argument', `bad UDP port ${port}`)
      if (this.udpEndpoints.has(port)) throw new TcpError('address-in-use', `UDP port ${port} is already bound`)
      chosen = port
    }
    const endpoint = new UdpEndpoint(this, chosen, { v4: this.mtu - IPV4_HEADER - UDP_HEADER, v6: this.mtu - IPV6_HEADER - UDP_HEADER })
    this.udpEndpoints.set(chosen, endpoint)
    return endpoint
  }

  sendUdp(endpoint: UdpEndpoint, data: Uint8Array, remoteAddress: IpAddress, remotePort: number): void {
    const local = this.sourceFor(remoteAddress)
    const id = this.nextIpId()
    this.push(buildIpUdp({ src: local, dst: remoteAddress, id }, { srcPort: endpoint.port, dstPort: remotePort, payload: data }), id)
  }

  releaseUdp(endpoint: UdpEndpoint): void {
    if (this.udpEndpoints.get(endpoint.port) === endpoint) this.udpEndpoints.delete(endpoint.port)
  }

  private receiveUdp(src: IpAddress, dst: IpAddress, payload: Uint8Array, packet: Uint8Array, now: number): void {
    const datagram = parseUdp(payload, src, dst)
    const endpoint = this.udpEndpoints.get(datagram.dstPort)
    if (!endpoint) {
      this.stats.udpNoPort++
      // Port unreachable, as a host answers (RFC 1122 §4.1.3.1), rate-limited (RFC 1812 §4.3.2.8).
      if (now - this.icmpErrorWindowStart >= 1000) {
        this.icmpErrorWindowStart = now
        this.icmpErrorsInWindow = 0
      }
      if (++this.icmpErrorsInWindow > ICMP_ERRORS_PER_SECOND) return
      const version = src.length === 4 ? 4 : 6
      const error = buildIcmpError({ type: version === 4 ? ICMPV4_DEST_UNREACHABLE : ICMPV6_DEST_UNREACHABLE, code: version === 4 ? 3 : 4, original: packet }, version, dst, src)
      this.output(dst, src, version === 4 ? PROTO_ICMP : PROTO_ICMPV6, error)
      return
    }
    endpoint.deliver({ data: datagram.payload.slice(), remoteAddress: src.slice(), remotePort: datagram.srcPort })
  }

  // ---------------------------------------------------------------- ICMP

  /** Sends an echo request; `done` gets the round-trip time in ms or a PingError. */
  ping(address: string | IpAddress, now: number, timeoutMs: number, done: (result: number | PingError) => void): void {
    let remote: IpAddress
    try {
      remote = this.parseTarget(address)
    } catch (error) {
      done(new PingError('bad-address', (error as Error).message))
      return
    }
    const local = this.sourceFor(remote)
    const seq = this.pings.start(remote, now, timeoutMs, done)
    const data = new Uint8Array(56)
    const version = remote.length === 4 ? 4 : 6
    const message = buildEcho({ kind: 'request', id: this.pings.id, seq, data }, version, local, remote)
    this.output(local, remote, version === 4 ? PROTO_ICMP : PROTO_ICMPV6, message)
  }

  private receiveIcmp(version: 4 | 6, src: IpAddress, dst: IpAddress, message: Uint8Array, now: number): void {
    const echo = parseEcho(message, version, src, dst)
    if (!echo) {
      const { type, code, body } = parseIcmp(message, version, src, dst)
      if (type === (version === 4 ? ICMPV4_DEST_UNREACHABLE : ICMPV6_DEST_UNREACHABLE)) this.receiveUnreachable(version, code, body.subarray(4))
      return
    }
    if (echo.kind === 'request') {
      const reply = buildEcho({ kind: 'reply', id: echo.id, seq: echo.seq, data: echo.data }, version, dst, src)
      this.output(dst, src, version === 4 ? PROTO_ICMP : PROTO_ICMPV6, reply)
    } else {
      this.pings.reply(src, echo.id, echo.seq, now)
    }
  }

  /**
   * A destination-unreachable error quoting one of our TCP segments. Only a connection still
   * opening gives up on it (as Linux does); an established one treats it as soft (RFC 5461).
   */
  private receiveUnreachable(version: 4 | 6, code: number, original: Uint8Array): void {
    const local = ipSource(original)
    const remote = ipDestination(original)
    if (!local || !remote || ipVersion(original) !== version) return
    const protocol = version === 4 ? original[9] : original[6]
    const headerLength = version === 4 ? (original[0]! & 0x0f) * 4 : 40
    if (protocol !== PROTO_TCP || original.length < headerLength + 8) return
    const view = new DataView(original.buffer, original.byteOffset + headerLength, 8)
    const connection = this.connections.get(local, view.getUint16(0), remote, view.getUint16(2))
    if (!connection) return
    const reason =
      version === 4
        ? code === 0
          ? 'network unreachable'
          : code === 1
            ? 'host unreachable'
            : code === 3
              ? 'port unreachable'
              : code === 4
                ? undefined
                : 'destination unreachable (prohibited)'
        : code === 0
          ? 'network unreachable'
          : code === 3
            ? 'host unreachable'
            : code === 4
              ? 'port unreachable'
              : 'destination unreachable (prohibited)'
    if (reason === undefined) return // fragmentation needed: the MSS clamp already keeps segments within the tunnel MTU
    connection.unreachable(view.getUint32(4), reason)
    this.settle(connection)
  }

  // ---------------------------------------------------------------- helpers

  private output(src: IpAddress, dst: IpAddress, protocol: number, payload: Uint8Array): void {
    const id = this.nextIpId()
    this.push(buildIp({ src, dst, protocol, payload, id }), id)
  }

  private nextIpId(): number {
    return (this.ipId + 1) & 0xffff
  }

  /** Queues a packet built with IPv4 id `id`; the id is used up only once the build succeeded. */
  private push(packet: Uint8Array, id: number): void {
    this.ipId = id
    this.outbox.push(packet)
    this.stats.packetsOut++
  }

  private isLocal(address: IpAddress): boolean {
    for (const a of this.addresses) if (addressEquals(a, address)) return true
    return false
  }

  private parseTarget(address: string | IpAddress): IpAddress {
    if (typeof address !== 'string') return address
    try {
      return parseAddress(address)
    } catch (error) {
      throw new TcpError('bad-argument', `"${address}" is not an IP address (${(error as Error).message})`)
    }
  }

  private sourceFor(remote: IpAddress): IpAddress {
    const local = this.addresses.find((a) => a.length === remote.length)
    if (!local) throw new TcpError('bad-argument', `this stack has no IPv${remote.length === 4 ? 4 : 6} address to reach ${formatAddress(remote)}`)
    return local
  }

  private mssFor(remote: IpAddress): number {
    return this.mtu - (remote.length === 4 ? IPV4_HEADER : IPV6_HEADER) - TCP_HEADER
  }

  private configFor(options: ConnectOptions): TcpConfig {
    const config = { ...this.tcpConfig }
    if (options.noDelay !== undefined) config.noDelay = options.noDelay
    if (options.keepAlive === true) config.keepAlive = config.keepAlive ?? DEFAULT_KEEPALIVE
    else if (options.keepAlive === false) config.keepAlive = undefined
    else if (options.keepAlive) config.keepAlive = { ...DEFAULT_KEEPALIVE, ...config.keepAlive, ...options.keepAlive }
    return config
  }

  private ephemeralPort(taken: (port: number) => boolean): number {
    for (let attempt = 0; attempt < EPHEMERAL_COUNT; attempt++) {
      // xorshift32: cheap, seeded from the stack secret, so simulations are reproducible.
      let x = this.portState
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      this.portState = x >>> 0
      const port = EPHEMERAL_LOW + (this.portState % EPHEMERAL_COUNT)
      if (!taken(port)) return port
    }
    throw new TcpError('address-in-use', 'no free ephemeral port')
  }
}

function checkTcpConfig(config: TcpConfig): void {
  const range = (name: string, value: number, min: number, max: number): void => {
    if (!Number.isFinite(value) || value < min || value > max) throw new TcpError('bad-argument', `tcp.${name} must be within ${min}..${max}, not ${value}`)
  }
  range('sendBufferSize', config.sendBufferSize, 4096, 1 << 30)
  range('receiveBufferSize', config.receiveBufferSize, 4096, 1 << 30)
  range('maxReceiveWindow', config.maxReceiveWindow, 4096, 1 << 30)
  range('maxSendBuffer', config.maxSendBuffer, 4096, 1 << 30)
  range('delayedAckMs', config.delayedAckMs, 0, 500) // RFC 9293 §3.8.6.3: under 0.5 s
  range('timeWaitMs', config.timeWaitMs, 0, 240_000)
  range('synRetries', config.synRetries, 0, 20)
  range('maxRetransmissions', config.maxRetransmissions, 1, 30)
  range('minRtoMs', config.minRtoMs, 1, 60_000)
  if (config.keepAlive) {
    range('keepAlive.idleMs', config.keepAlive.idleMs, 1, 2 ** 31)
    range('keepAlive.intervalMs', config.keepAlive.intervalMs, 1, 2 ** 31)
    range('keepAlive.count', config.keepAlive.count, 1, 1000)
  }
}

export { PingError }
