// The DERP relay core, sans-IO: connections feed it bytes with `now`; it forwards packets into
// per-client bounded queues and tells the drivers (via each client's hooks) when a client has
// output or must be closed. Drivers own sockets and timers; nothing here touches either.
import { formatNodeKey, publicKeyOf } from '../crypto/index.ts'
import { FrameReader } from '../underlay/derp/frame-reader.ts'
import {
  type DerpFrame,
  DerpFrameError,
  FRAME_HEADER_LENGTH,
  FrameType,
  KEY_LENGTH,
  MAGIC,
  MAX_PACKET_SIZE,
  PROTOCOL_VERSION,
  PeerGoneReason,
  decodeFrame,
  encodeFrame,
  writeHeader,
} from '../underlay/derp/frames.ts'
import { DerpLoginError, boxKey, openJson, parseClientInfo, sealJson, type ClientInfo, type ServerInfo } from '../underlay/derp/info.ts'
import { keyIdOf } from '../underlay/derp/key-id.ts'
import { TokenBucket } from '../underlay/derp/token-bucket.ts'
import { parseAddress } from '../wire/address.ts'
import { type Logger, silentLogger } from './log.ts'
import { RelayMetrics } from './metrics.ts'
import { SendQueue } from './send-queue.ts'

export interface RelayOptions {
  privateKey: Uint8Array
  /** Forwarded packets queued per client before dropping the oldest (Tailscale uses 32). */
  queuePackets?: number
  queueBytes?: number
  /** Per-client token bucket, announced in ServerInfo; packets over it are dropped. */
  rateLimit?: { bytesPerSecond: number; burstBytes: number }
  /** When set, a client is only registered once the driver reports the admission decision. */
  verifyClients?: boolean
  keepAliveMs?: number
  loginTimeoutMs?: number
  /**
   * Frames other than SendPacket (Ping, NotePreferred, Pong, unknown types) a client may send per
   * second, with a burst; past it the relay stops reading that client until the budget refills, so
   * its own TCP or WebSocket flow control slows it down (Tailscale's derper paces reads by frame
   * the same way, derp/derpserver/derpserver.go rateLimit). Default 50/s, burst 200.
   */
  controlFrameRate?: { perSecond: number; burst: number }
  /** Control frames (pongs, keepalives, PeerGone…) queued for a client that is not reading, before more are dropped (default 64). */
  maxControlFrames?: number
  /** A logged-in client heard from for none of this long is closed; at half of it the relay pings it (default 120 s). */
  idleTimeoutMs?: number
  /** Bytes of partly received frames held over all connections; the connection that would pass it is closed (default 64 MiB). */
  maxBufferedBytes?: number
  /** WireGuard handshake messages one client may relay to one destination per second, burst twice that (default 5; 0 turns the limit off). */
  handshakesPerSecond?: number
  /** Uniform [0, 1), for keepalive jitter. */
  random?: () => number
  log?: Logger
  metrics?: RelayMetrics
  /**
   * The region's mesh key (32 bytes): a client whose ClientInfo carries it is another relay of
   * the region and may watch connections, forward packets and close peers (derper's
   * `--mesh-psk-file`; tailscale.com/derp/derpserver isMeshPeer).
   */
  meshKey?: Uint8Array
}

/** Where packets for a key held by another relay of the region go: our mesh connection to that relay. */
export interface PacketForwarder {
  forwardPacket(source: Uint8Array, destination: Uint8Array, packet: Uint8Array): boolean
}

/** PeerPresent flags (tailscale.com/derp PeerPresentFlags). */
export const PeerPresentFlag = { Regular: 1, MeshPeer: 2, Prober: 4, NotIdeal: 8 } as const

export type RelayClientState = 'login' | 'admitting' | 'ready' | 'closed'

export class RelayClient {
  state: RelayClientState = 'login'
  key: Uint8Array | undefined
  keyId = ''
  info: ClientInfo | undefined
  preferred = false
  /** Logged in with the region's mesh key: another relay of the region. */
  canMesh = false
  closeReason: string | undefined
  readonly reader = new FrameReader(relayFrameLimit)
  readonly queue: SendQueue
  /** Budget for frames other than SendPacket (see RelayOptions.controlFrameRate). */
  controlBucket: TokenBucket | undefined
  /** Something was taken from controlBucket since it was last seen to hold a token: check before the next frame. */
  spentControl = false
  /** While set, the relay processes nothing more from this client before this time (the driver stops reading). */
  pausedUntil: number | undefined
  /** The last time any byte arrived from this client. */
  lastHeardAt: number
  keepAliveAt = Infinity
  /** Whether an idle probe (Ping) went out since the client was last heard from. */
  probed = false
  /** Bytes of this client's partial frame counted in the relay's total. */
  accountedBytes = 0
  /** Per destination key id: WireGuard handshake messages this client may still relay to it. */
  readonly handshakeBuckets = new Map<string, TokenBucket>()
  bucket: TokenBucket | undefined
  peerGoneLimit: TokenBucket | undefined
  serverInfoFrame: Uint8Array | undefined
  nextTimerAt: number
  lastActiveAt: number
  /** This client's entry in the key table while it is logged in. */
  keySet: KeySet | undefined
  /** The last destination this client sent to, and where it led, while the key table is unchanged. */
  readonly lastDestination = new Uint8Array(KEY_LENGTH)
  lastTarget: KeySet | undefined
  lastTargetVersion = -1
  /** Driver hook: the queue went from empty to non-empty. */
  onOutput: () => void = () => {}
  /** Driver hook: close the socket (after writing nothing more); `kind` is 'normal' or what went wrong. */
  onClose: (reason: string, kind: string) => void = () => {}
  /** Driver hook (verifyClients): decide, then call relay.completeAdmission. */
  onAdmission: (key: Uint8Array) => void = () => {}
  /** Driver hook: stop reading this client's socket, and call relay.resume at `until`. */
  onPause: (until: number) => void = () => {}

  constructor(
    readonly id: number,
    readonly remote: string,
    queuePackets: number,
    queueBytes: number,
    maxControlFrames: number,
    now: number,
    loginDeadline: number,
  ) {
    this.queue = new SendQueue(queuePackets, queueBytes, maxControlFrames)
    this.nextTimerAt = loginDeadline
    this.lastActiveAt = now
    this.lastHeardAt = now
  }

  /** Up to `maxBytes` of queued frames as one buffer (one message for WebSocket). */
  takeOutput(maxBytes = 64 * 1024): Uint8Array | undefined {
    return this.queue.take(maxBytes)
  }

  get name(): string {
    return this.key ? formatNodeKey(this.key) : `#${this.id}`
  }
}

interface KeySet {
  id: string
  clients: RelayClient[]
  /** The connection that receives: the most recently active of duplicates. */
  active: RelayClient
}

const DISCO_MAGIC = [0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac]
/**
 * Pongs queued for one client before further Pings go unanswered: derper keeps one pending pong
 * and ignores Pings while it is queued ("They're pinging too fast", handleFramePing).
 */
const MAX_PENDING_CONTROL_FOR_PONG = 4
/** Frames a relay client sends are small except packets: nothing else may make a connection hold more than a packet's worth. */
const MAX_OTHER_FRAME = KEY_LENGTH + MAX_PACKET_SIZE

/**
 * WireGuard handshake messages (initiation, response, cookie reply) one client may relay to one
 * destination per second, with a burst. A real peer sends at most one initiation per
 * REKEY_TIMEOUT (5 s) and wireguard-go caps its own at 50/s (HandshakeInitationRate); a member
 * flooding another node's key with MAC1-valid initiations is cut off here, before it costs the
 * victim anything, and what it sends past the limit draws on its control-frame budget.
 */
const DEFAULT_HANDSHAKES_PER_SECOND_PER_PAIR = 5
const MAX_HANDSHAKE_BUCKETS = 4096

function isWireGuardHandshake(bytes: Uint8Array, start: number, length: number): boolean {
  const type = bytes[start]!
  if (type < 1 || type > 3 || (bytes[start + 1]! | bytes[start + 2]! | bytes[start + 3]!) !== 0) return false
  // whitepaper §5.4.2–5.4.7: initiation 148, response 92, cookie reply 64 bytes
  return type === 1 ? length === 148 : type === 2 ? length === 92 : length === 64
}

function relayFrameLimit(type: number): number {
  return type === FrameType.ForwardPacket ? 2 * KEY_LENGTH + MAX_PACKET_SIZE : MAX_OTHER_FRAME
}

export class Relay {
  readonly publicKey: Uint8Array
  readonly metrics: RelayMetrics
  private readonly privateKey: Uint8Array
  private readonly keys = new Map<string, KeySet>()
  private readonly connections = new Set<RelayClient>()
  /** dst key id → ids of keys that sent to it (for PeerGone), and the reverse for cleanup. */
  private readonly sendersTo = new Map<string, Set<string>>()
  private readonly sentBy = new Map<string, Set<string>>()
  private nextId = 1
  /** Bumped whenever a key joins or leaves the table, invalidating every client's destination cache. */
  private keysVersion = 0
  /** Mesh peers that sent WatchConns: told of every key that arrives or leaves here. */
  private readonly watchers = new Set<RelayClient>()
  /** Keys held by other relays of the region, and the mesh connections that reach them (first wins). */
  private readonly forwarders = new Map<string, { key: Uint8Array; via: PacketForwarder[] }>()
  private readonly queuePackets: number
  private readonly queueBytes: number
  private readonly keepAliveMs: number
  private readonly loginTimeoutMs: number
  private readonly idleTimeoutMs: number
  private readonly maxControlFrames: number
  private readonly maxBufferedBytes: number
  private readonly controlFrameRate: { perSecond: number; burst: number }
  private readonly handshakesPerSecond: number
  private readonly random: () => number
  private readonly log: Logger
  /** Bytes of partial frames held by every connection's reader. */
  private bufferedBytes = 0

  constructor(private readonly options: RelayOptions) {
    this.privateKey = options.privateKey
    this.publicKey = publicKeyOf(options.privateKey)
    this.queuePackets = options.queuePackets ?? 1024
    this.queueBytes = options.queueBytes ?? 4 << 20
    this.keepAliveMs = options.keepAliveMs ?? 60_000
    this.loginTimeoutMs = options.loginTimeoutMs ?? 10_000
    this.idleTimeoutMs = options.idleTimeoutMs ?? 120_000
    this.maxControlFrames = options.maxControlFrames ?? 64
    this.maxBufferedBytes = options.maxBufferedBytes ?? 64 << 20
    this.controlFrameRate = options.controlFrameRate ?? { perSecond: 50, burst: 200 }
    this.handshakesPerSecond = options.handshakesPerSecond ?? DEFAULT_HANDSHAKES_PER_SECOND_PER_PAIR
    if (!(this.handshakesPerSecond >= 0)) throw new RangeError('handshakes per second must be 0 (off) or positive')
    if (!(this.controlFrameRate.perSecond > 0 && this.controlFrameRate.burst >= 1)) throw new RangeError('control frame rate and burst must be positive')
    if (!(this.idleTimeoutMs > 0)) throw new RangeError('idle timeout must be positive')
    this.random = options.random ?? Math.random
    this.log = options.log ?? silentLogger
    this.metrics = options.metrics ?? new RelayMetrics()
    if (options.rateLimit && !(options.rateLimit.bytesPerSecond > 0 && options.rateLimit.burstBytes > 0)) {
      throw new RangeError('rate limit bytesPerSecond and burstBytes must be positive')
    }
  }

  get clientCount(): number {
    return this.connections.size
  }

  /** A new connection; the ServerKey greeting is queued at once. */
  accept(now: number, remote: string): RelayClient {
    const client = new RelayClient(this.nextId++, remote, this.queuePackets, this.queueBytes, this.maxControlFrames, now, now + this.loginTimeoutMs)
    this.connections.add(client)
    this.metrics.connectionsAccepted++
    const greeting = new Uint8Array(FRAME_HEADER_LENGTH + MAGIC.length + KEY_LENGTH)
    writeHeader(greeting, 0, FrameType.ServerKey, MAGIC.length + KEY_LENGTH)
    greeting.set(MAGIC, FRAME_HEADER_LENGTH)
    greeting.set(this.publicKey, FRAME_HEADER_LENGTH + MAGIC.length)
    client.queue.pushControl(greeting)
    return client
  }

  /** Bytes from a client's stream. Protocol violations close that client only. */
  receive(client: RelayClient, bytes: Uint8Array, now: number): void {
    if (client.state === 'closed') return
    client.lastHeardAt = now
    client.probed = false
    client.reader.push(bytes)
    if (client.pausedUntil === undefined) this.process(client, now)
    this.account(client, now)
  }

  /** The driver's wake-up for a paused client: processes what it buffered once the budget allows. */
  resume(client: RelayClient, now: number): void {
    if (client.state === 'closed' || client.pausedUntil === undefined) return
    if (now < client.pausedUntil) {
      client.onPause(client.pausedUntil)
      return
    }
    client.pausedUntil = undefined
    // What waited unread while it was paused counts as heard, or a throttled client would look idle.
    if (client.reader.buffered > 0) client.lastHeardAt = now
    this.process(client, now)
    this.account(client, now)
  }

  get partialFrameBytes(): number {
    return this.bufferedBytes
  }

  /** Keeps the total of partial-frame bytes, closing the client that pushes it over the cap. */
  private account(client: RelayClient, now: number): void {
    const held = client.state === 'closed' ? 0 : client.reader.buffered
    this.bufferedBytes += held - client.accountedBytes
    client.accountedBytes = held
    if (this.bufferedBytes > this.maxBufferedBytes && held > 0) {
      this.close(client, `relay holds over ${this.maxBufferedBytes} bytes of unfinished frames`, now, 'memory_limit')
    }
  }

  /** A driver-detected violation (text message, write timeout, socket error). */
  close(client: RelayClient, reason: string, now: number, kind = 'protocol_error'): void {
    if (client.state === 'closed') return
    const wasReady = client.state === 'ready'
    client.state = 'closed'
    client.closeReason = reason
    client.queue.clear()
    this.bufferedBytes -= client.accountedBytes
    client.accountedBytes = 0
    this.connections.delete(client)
    this.metrics.closed(kind)
    if (wasReady) this.unregister(client, now)
    this.log(kind === 'normal' ? 'info' : 'warn', 'connection closed', { client: client.name, remote: client.remote, kind, reason })
    client.onClose(reason, kind)
  }

  completeAdmission(client: RelayClient, admitted: boolean, now: number): void {
    if (client.state !== 'admitting') return
    if (!admitted) {
      this.close(client, 'client not admitted', now, 'not_admitted')
      return
    }
    this.register(client, now)
    this.process(client, now)
  }

  /** Keepalives, idle probes and timeouts, and login deadlines that are due. */
  poll(now: number): void {
    for (const client of this.connections) {
      if (client.nextTimerAt > now) continue
      if (client.state === 'login' || client.state === 'admitting') {
        this.close(client, 'login timed out', now, 'login_timeout')
        continue
      }
      if (client.state !== 'ready') continue
      const silent = now - client.lastHeardAt
      if (silent >= this.idleTimeoutMs) {
        // Nothing at all for the whole timeout, not even a Pong to our probe: the client vanished
        // without a close (a FIN that never came), so its slot and key are freed.
        this.close(client, `idle timeout: nothing received for ${Math.round(silent)} ms`, now, 'idle_timeout')
        continue
      }
      if (silent >= this.idleTimeoutMs / 2 && !client.probed) {
        // Every DERP client answers a Ping with a Pong (derp.go: "Ping … the other side should reply with a Pong").
        client.probed = true
        this.pushControl(client, encodeFrame({ type: 'ping', data: new Uint8Array(8).map(() => Math.floor(this.random() * 256)) }))
      }
      if (client.keepAliveAt <= now) {
        this.pushControl(client, encodeFrame({ type: 'keep-alive' }))
        client.keepAliveAt = now + this.keepAliveInterval()
      }
      client.nextTimerAt = this.nextTimerFor(client)
    }
  }

  private nextTimerFor(client: RelayClient): number {
    const idleAt = client.lastHeardAt + (client.probed ? this.idleTimeoutMs : this.idleTimeoutMs / 2)
    return Math.min(client.keepAliveAt, idleAt)
  }

  /** Logged-in clients that went through admission (for the driver's periodic re-admission; mesh peers never do). */
  admittedClients(): RelayClient[] {
    return [...this.connections].filter((c) => c.state === 'ready' && !c.canMesh)
  }

  nextEvent(): number | undefined {
    let next: number | undefined
    for (const client of this.connections) if (next === undefined || client.nextTimerAt < next) next = client.nextTimerAt
    return next
  }

  /** Tells every client the relay is going away and when to come back (graceful shutdown). */
  announceRestart(reconnectInMs: number, tryForMs: number): void {
    const frame = encodeFrame({ type: 'restarting', reconnectInMs, tryForMs })
    for (const client of this.connections) if (client.state === 'ready') this.pushControl(client, frame)
  }

  /** Sends a Health problem to every client (empty clears it). */
  announceHealth(problem: string): void {
    const frame = encodeFrame({ type: 'health', problem })
    for (const client of this.connections) if (client.state === 'ready') this.pushControl(client, frame)
  }

  private keepAliveInterval(): number {
    return this.keepAliveMs + Math.floor(this.random() * (this.keepAliveMs / 12))
  }

  private process(client: RelayClient, now: number): void {
    try {
      const reader = client.reader
      while (client.state === 'login' || client.state === 'ready') {
        const bucket = client.controlBucket
        // Checked only after a spend, so a client sending nothing but packets pays nothing for it.
        if (client.spentControl && bucket !== undefined && bucket.available(now) < 1) {
          // Out of control-frame budget: read nothing more from it (packets included) until the
          // bucket refills; its bytes wait in the kernel and its sender is slowed by flow control.
          client.pausedUntil = now + Math.max(1, Math.ceil(((1 - bucket.available(now)) * 1000) / this.controlFrameRate.perSecond))
          client.onPause(client.pausedUntil)
          return
        }
        client.spentControl = false
        if (!reader.advance()) return
        if (reader.type === FrameType.SendPacket && client.state === 'ready') {
          this.forward(client, reader.bytes, reader.start, reader.length, now)
          continue
        }
        const payload = reader.bytes.subarray(reader.start, reader.start + reader.length)
        if (client.state === 'login') this.login(client, reader.type, payload, now)
        else {
          if (bucket !== undefined) {
            bucket.take(1, now)
            client.spentControl = true
          }
          this.handle(client, decodeFrame(reader.type, payload), now)
        }
      }
    } catch (error) {
      if (error instanceof DerpFrameError || error instanceof DerpLoginError) {
        this.close(client, error.message, now, error instanceof DerpLoginError ? 'login_failed' : 'protocol_error')
      } else {
        this.close(client, `internal error: ${(error as Error).message}`, now, 'internal_error')
        throw error
      }
    }
  }

  private login(client: RelayClient, type: number, payload: Uint8Array, now: number): void {
    if (type !== FrameType.ClientInfo) throw new DerpLoginError(`expected ClientInfo, got frame type 0x${type.toString(16)}`)
    const frame = decodeFrame(type, payload)
    if (frame.type !== 'client-info') throw new DerpLoginError('expected ClientInfo')
    let shared: Uint8Array
    try {
      shared = boxKey(this.privateKey, frame.clientKey)
    } catch (error) {
      throw new DerpLoginError(`ClientInfo key is unusable: ${(error as Error).message}`)
    }
    const info = parseClientInfo(openJson(shared, frame.sealed, 'ClientInfo'))
    if (info.meshKey !== undefined) {
      if (this.options.meshKey && meshKeyMatches(info.meshKey, this.options.meshKey)) client.canMesh = true
      else this.log('warn', 'client offered a mesh key that is not ours; it is an ordinary client', { remote: client.remote })
    }
    client.key = frame.clientKey.slice()
    client.keyId = keyIdOf(client.key)
    client.info = info
    const serverInfo: ServerInfo = { version: PROTOCOL_VERSION }
    // Mesh peers carry a whole region's traffic: derpserver exempts them from the per-client limit.
    if (this.options.rateLimit && !client.canMesh) {
      serverInfo.TokenBucketBytesPerSecond = this.options.rateLimit.bytesPerSecond
      serverInfo.TokenBucketBytesBurst = this.options.rateLimit.burstBytes
      client.bucket = new TokenBucket(this.options.rateLimit.bytesPerSecond, this.options.rateLimit.burstBytes, now)
    }
    client.peerGoneLimit = new TokenBucket(3, 3, now)
    // Mesh peers carry a whole relay's ForwardPackets and are exempt, as derper exempts them from its rate limits.
    if (!client.canMesh) client.controlBucket = new TokenBucket(this.controlFrameRate.perSecond, this.controlFrameRate.burst, now)
    client.serverInfoFrame = encodeFrame({ type: 'server-info', sealed: sealJson(shared, serverInfo) })
    // A mesh peer is a relay, not a node of the network: the admission list cannot know it.
    if (this.options.verifyClients && !client.canMesh) {
      client.state = 'admitting'
      client.onAdmission(client.key)
      return
    }
    this.register(client, now)
  }

  private register(client: RelayClient, now: number): void {
    client.state = 'ready'
    this.pushControl(client, client.serverInfoFrame!)
    client.serverInfoFrame = undefined
    client.keepAliveAt = now + this.keepAliveInterval()
    client.lastActiveAt = now
    client.nextTimerAt = this.nextTimerFor(client)
    this.keysVersion++
    const set = this.keys.get(client.keyId)
    if (set) {
      set.clients.push(client)
      set.active = client
      client.keySet = set
      this.log('info', 'duplicate key connected; newest connection receives', { client: client.name, connections: set.clients.length })
    } else {
      client.keySet = { id: client.keyId, clients: [client], active: client }
      this.keys.set(client.keyId, client.keySet)
      this.tellWatchers(client, true)
    }
    this.metrics.clients++
    this.log('info', 'client logged in', { client: client.name, remote: client.remote, canAckPings: client.info?.CanAckPings })
  }

  private unregister(client: RelayClient, _now: number): void {
    this.watchers.delete(client)
    this.metrics.clients--
    if (client.preferred) this.metrics.homeClients--
    this.keysVersion++
    client.keySet = undefined
    client.lastTarget = undefined
    const set = this.keys.get(client.keyId)
    if (!set) return
    set.clients = set.clients.filter((c) => c !== client)
    if (set.clients.length > 0) {
      if (set.active === client) set.active = set.clients.reduce((a, b) => (b.lastActiveAt >= a.lastActiveAt ? b : a))
      return
    }
    this.keys.delete(client.keyId)
    this.tellWatchers(client, false)
    // Everyone who exchanged packets with this key learns it left: those it sent to (as
    // Tailscale's relay does) and those who sent to it.
    const senders = this.sendersTo.get(client.keyId) ?? new Set<string>()
    const targets = this.sentBy.get(client.keyId) ?? new Set<string>()
    this.sendersTo.delete(client.keyId)
    this.sentBy.delete(client.keyId)
    for (const sender of senders) this.sentBy.get(sender)?.delete(client.keyId)
    for (const target of targets) this.sendersTo.get(target)?.delete(client.keyId)
    const gone = encodeFrame({ type: 'peer-gone', key: client.key!, reason: PeerGoneReason.Disconnected })
    for (const peer of new Set([...senders, ...targets])) {
      const peerSet = this.keys.get(peer)
      if (peerSet) for (const c of peerSet.clients) this.pushControl(c, gone)
    }
  }

  private handle(client: RelayClient, frame: DerpFrame, now: number): void {
    switch (frame.type) {
      case 'send-packet':
        // SendPacket frames take the fast path in process(); none arrive here.
        return
      case 'note-preferred':
        if (frame.preferred !== client.preferred) this.metrics.homeClients += frame.preferred ? 1 : -1
        client.preferred = frame.preferred
        return
      case 'ping':
        // A client pinging faster than it reads gets no more pongs: they would only pile up.
        if (client.queue.controlFrames >= MAX_PENDING_CONTROL_FOR_PONG) this.metrics.controlDropped++
        else this.pushControl(client, encodeFrame({ type: 'pong', data: frame.data }))
        return
      case 'forward-packet':
      case 'watch-conns':
      case 'close-peer':
        // derpserver answers these from a client without the mesh key with "insufficient permissions" and drops it.
        if (!client.canMesh) throw new DerpFrameError(`${frame.type} is only for relay mesh peers (no valid mesh key)`)
        if (frame.type === 'watch-conns') this.addWatcher(client)
        else if (frame.type === 'close-peer') this.closePeer(client, frame.key, now)
        else this.deliverForwarded(frame.source, frame.destination, frame.packet)
        return
      default:
        // Keepalives, pongs, frames only a server sends, and unknown types are skipped.
        return
    }
  }

  /**
   * A SendPacket payload (destination key, packet) becomes a RecvPacket frame (source key, packet)
   * written straight into the destination's queue: one copy, and no per-packet key strings or map
   * lookups while a client keeps sending to the same destination.
   */
  private forward(client: RelayClient, bytes: Uint8Array, start: number, length: number, now: number): void {
    // decodeFrame throws the precise error for a malformed payload.
    if (length < KEY_LENGTH || length - KEY_LENGTH > MAX_PACKET_SIZE) decodeFrame(FrameType.SendPacket, bytes.subarray(start, start + length))
    client.lastActiveAt = now
    const own = client.keySet
    if (own && own.clients.length > 1) own.active = client
    if (client.bucket && !client.bucket.take(FRAME_HEADER_LENGTH + length, now)) {
      this.metrics.drop('rate_limited')
      return
    }
    const packetStart = start + KEY_LENGTH
    let targetSet = client.lastTargetVersion === this.keysVersion && sameKey(client.lastDestination, bytes, start) ? client.lastTarget : undefined
    if (!targetSet) {
      const destination = bytes.subarray(start, packetStart)
      const dstId = keyIdOf(destination)
      targetSet = this.keys.get(dstId)
      if (!targetSet) {
        // Held by another relay of the region: hand it to our mesh connection to that relay
        // (never for a packet that itself came through the mesh: see deliverForwarded).
        const remote = this.forwarders.get(dstId)
        if (remote) {
          this.noteSent(client.keyId, dstId)
          if (remote.via[0]!.forwardPacket(client.key!, destination, bytes.subarray(packetStart, start + length))) this.metrics.packetsMeshForwardedOut++
          else this.metrics.drop('mesh_unavailable')
          return
        }
        this.metrics.drop('unknown_dest')
        if (looksLikeDisco(bytes.subarray(packetStart, start + length)) && client.peerGoneLimit?.take(1, now)) {
          this.pushControl(client, encodeFrame({ type: 'peer-gone', key: destination, reason: PeerGoneReason.NotHere }))
        }
        return
      }
      this.noteSent(client.keyId, dstId)
      client.lastDestination.set(destination)
      client.lastTarget = targetSet
      client.lastTargetVersion = this.keysVersion
    }
    if (this.handshakesPerSecond > 0 && isWireGuardHandshake(bytes, packetStart, length - KEY_LENGTH) && !this.allowHandshake(client, targetSet.id, now)) return
    const target = targetSet.active
    const queue = target.queue
    const wasEmpty = queue.isEmpty
    const offset = queue.reserveData(FRAME_HEADER_LENGTH + length, client.id)
    this.metrics.drop('queue_full_oldest', queue.evicted)
    if (offset < 0) {
      this.metrics.drop(queue.refusedOverShare ? 'queue_full_over_share' : 'queue_full_newest')
      return
    }
    const slab = queue.slab
    writeHeader(slab, offset, FrameType.RecvPacket, length)
    slab.set(client.key!, offset + FRAME_HEADER_LENGTH)
    slab.set(bytes.subarray(packetStart, start + length), offset + FRAME_HEADER_LENGTH + KEY_LENGTH)
    this.metrics.packetsForwarded++
    this.metrics.bytesForwarded += length - KEY_LENGTH
    if (wasEmpty) target.onOutput()
  }

  private allowHandshake(client: RelayClient, dstId: string, now: number): boolean {
    let bucket = client.handshakeBuckets.get(dstId)
    if (!bucket) {
      if (client.handshakeBuckets.size >= MAX_HANDSHAKE_BUCKETS) client.handshakeBuckets.clear()
      bucket = new TokenBucket(this.handshakesPerSecond, 2 * this.handshakesPerSecond, now)
      client.handshakeBuckets.set(dstId, bucket)
    }
    if (bucket.take(1, now)) return true
    this.metrics.drop('handshake_rate_limited')
    client.controlBucket?.take(1, now)
    client.spentControl = client.controlBucket !== undefined
    return false
  }

  /** A mesh connection of ours now reaches `key` (a client of another relay of the region). */
  addPacketForwarder(key: Uint8Array, via: PacketForwarder): void {
    const id = keyIdOf(key)
    const entry = this.forwarders.get(id)
    if (entry) {
      if (!entry.via.includes(via)) entry.via.push(via)
      return
    }
    this.forwarders.set(id, { key: key.slice(), via: [via] })
  }

  /** `key` left the relay behind `via`; when no other path remains, its local correspondents get PeerGone. */
  removePacketForwarder(key: Uint8Array, via: PacketForwarder): void {
    const id = keyIdOf(key)
    const entry = this.forwarders.get(id)
    if (!entry) return
    entry.via = entry.via.filter((f) => f !== via)
    if (entry.via.length > 0) return
    this.forwarders.delete(id)
    if (this.keys.has(id)) return
    const gone = encodeFrame({ type: 'peer-gone', key: entry.key, reason: PeerGoneReason.Disconnected })
    for (const sender of this.sendersTo.get(id) ?? []) for (const c of this.keys.get(sender)?.clients ?? []) this.pushControl(c, gone)
    this.sendersTo.delete(id)
  }

  /** A mesh connection went down: every key it reached is unreachable through it. */
  removeForwarder(via: PacketForwarder): void {
    for (const entry of [...this.forwarders.values()]) if (entry.via.includes(via)) this.removePacketForwarder(entry.key, via)
  }

  /** Keys reachable through the mesh (for tests and /metrics). */
  get meshKeyCount(): number {
    return this.forwarders.size
  }

  private addWatcher(client: RelayClient): void {
    if (this.watchers.has(client)) return
    this.watchers.add(client)
    for (const set of this.keys.values()) if (set.active !== client) this.pushControl(client, this.presentFrame(set.active))
  }

  private tellWatchers(about: RelayClient, present: boolean): void {
    if (this.watchers.size === 0) return
    const frame = present ? this.presentFrame(about) : encodeFrame({ type: 'peer-gone', key: about.key!, reason: PeerGoneReason.Disconnected })
    for (const watcher of this.watchers) if (watcher !== about) this.pushControl(watcher, frame)
  }

  private presentFrame(client: RelayClient): Uint8Array {
    let flags = client.info?.IsProber ? PeerPresentFlag.Prober : 0
    if (client.canMesh) flags |= PeerPresentFlag.MeshPeer
    return encodeFrame({ type: 'peer-present', key: client.key!, ...remoteEndpoint(client.remote), flags: flags || PeerPresentFlag.Regular })
  }

  /** ClosePeer from a mesh peer: the client moved to another relay, drop every connection it has here. */
  private closePeer(from: RelayClient, key: Uint8Array, now: number): void {
    const set = this.keys.get(keyIdOf(key))
    if (!set) return
    for (const c of [...set.clients]) this.close(c, `closed by mesh peer ${from.name}`, now, 'closed_by_mesh')
  }

  /** ForwardPacket from a mesh peer: delivered to a client of ours, never forwarded again (no loops). */
  private deliverForwarded(source: Uint8Array, destination: Uint8Array, packet: Uint8Array): void {
    const set = this.keys.get(keyIdOf(destination))
    if (!set) {
      this.metrics.drop('unknown_dest_on_forward')
      return
    }
    const target = set.active
    const frame = encodeFrame({ type: 'recv-packet', source, packet })
    const queue = target.queue
    const wasEmpty = queue.isEmpty
    const offset = queue.reserveData(frame.length)
    this.metrics.drop('queue_full_oldest', queue.evicted)
    if (offset < 0) {
      this.metrics.drop('queue_full_newest')
      return
    }
    queue.slab.set(frame, offset)
    this.metrics.packetsMeshForwardedIn++
    this.metrics.bytesForwarded += packet.length
    if (wasEmpty) target.onOutput()
  }

  private noteSent(srcId: string, dstId: string): void {
    let senders = this.sendersTo.get(dstId)
    if (!senders) this.sendersTo.set(dstId, (senders = new Set()))
    if (senders.has(srcId)) return
    senders.add(srcId)
    let targets = this.sentBy.get(srcId)
    if (!targets) this.sentBy.set(srcId, (targets = new Set()))
    targets.add(dstId)
  }

  private pushControl(client: RelayClient, frame: Uint8Array): void {
    if (client.state === 'closed') return
    const wasEmpty = client.queue.isEmpty
    if (!client.queue.pushControl(frame)) {
      this.metrics.controlDropped++
      return
    }
    if (wasEmpty) client.onOutput()
  }
}

/** Constant-time comparison of a ClientInfo mesh key (hex text) with ours. */
function meshKeyMatches(offered: string, ours: Uint8Array): boolean {
  if (!/^[0-9a-fA-F]{64}$/.test(offered)) return false
  let diff = 0
  for (let i = 0; i < 32; i++) diff |= parseInt(offered.slice(2 * i, 2 * i + 2), 16) ^ ours[i]!
  return diff === 0
}

/** The client's address as PeerPresent carries it: 16 bytes (IPv4 mapped into IPv6) and a port. */
function remoteEndpoint(remote: string): { ip: Uint8Array; port: number } {
  const colon = remote.lastIndexOf(':')
  const ip = new Uint8Array(16)
  const port = Number(remote.slice(colon + 1))
  try {
    const address = parseAddress(remote.slice(0, colon).replace(/^\[|\]$/g, ''))
    if (address.length === 4) {
      ip[10] = 0xff
      ip[11] = 0xff
      ip.set(address, 12)
    } else {
      ip.set(address)
    }
  } catch {
    // Unknown address (a test transport): zeros, as derper sends for a missing one.
  }
  return { ip, port: Number.isInteger(port) && port >= 0 && port <= 65535 ? port : 0 }
}

function sameKey(key: Uint8Array, bytes: Uint8Array, start: number): boolean {
  for (let i = 0; i < KEY_LENGTH; i++) if (key[i] !== bytes[start + i]) return false
  return true
}

function looksLikeDisco(packet: Uint8Array): boolean {
  if (packet.length < DISCO_MAGIC.length + 32 + 24) return false
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (packet[i] !== DISCO_MAGIC[i]) return false
  return true
}
