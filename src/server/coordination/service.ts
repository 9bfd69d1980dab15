// The coordination logic, sans-IO: the driver (http.ts) reports connections opening, messages
// arriving and connections closing, each with `now` (epoch ms, because last-seen times are
// stored and shown), and sends/closes whatever the returned outputs say. Nothing here touches
// a socket or a timer; `nextEvent()` says when `poll(now)` must run for timeouts. The store is
// async (SQLite or PostgreSQL), so the steps that touch it return promises; the driver runs one
// step at a time. With a shared store (several relays on one PostgreSQL) the driver also passes
// on the store's change reports (`storeChanged`), so changes made through other relays reach
// this relay's sessions.
import { webSocketUrl } from '../../underlay/derp/dialer.ts'
import { boxKey, boxOpen, equalBytes, formatKey, fromBase64, generateKeyPair, publicKeyOf, randomBytes, toBase64, toHex, WeakKeyError, type KeyPair } from '../../crypto/index.ts'
import {
  CHALLENGE_LENGTH,
  CLOSE_CODE_BASE,
  HANDSHAKE_TIMEOUT_MS,
  MAX_CLIENT_MESSAGE_BYTES,
  MAX_HOSTNAME_LENGTH,
  MAX_PRE_HELLO_BYTES,
  NODE_UPDATE_BURST,
  NODE_UPDATE_INTERVAL_MS,
  PEERS_PER_MESSAGE,
  PING_INTERVAL_MS,
  PROTOCOL_VERSION,
  SOURCE_UPDATE_BURST,
  SOURCE_UPDATE_INTERVAL_MS,
  ProtocolError,
  SILENCE_TIMEOUT_MS,
  keyBytes,
  parseClientMessage,
  type HelloMessage,
  type HomeRelay,
  type RelayMapEntry,
  type NetworkInfo,
  type PeerEntry,
  type Proof,
  type ServerMessage,
  type UpdateMessage,
} from '../../control/protocol.ts'
import { IPV4_PREFIX, allocateIpv4, generateUlaPrefix, ipv6For } from './allocator.ts'
import { authKeyRefusal, createAuthKey, hashAuthKey, type AuthKeyOptions } from './authkey.ts'
import { KeyedLimiter } from './limiter.ts'
import { StoreConflictError, StoreUnavailableError, type CoordinationStore, type NodeRecord, type StoreChange, type StoreQueries } from './store.ts'

export type ConnectionId = number

export type Output = { kind: 'send'; connection: ConnectionId; message: ServerMessage } | { kind: 'close'; connection: ConnectionId; code: number; reason: string }

export type LogLevel = 'info' | 'warn' | 'error'
export type Log = (level: LogLevel, message: string) => void

export interface CoordinationServiceOptions {
  store: CoordinationStore
  random?: (length: number) => Uint8Array
  log?: Log
  handshakeTimeoutMs?: number
  silenceTimeoutMs?: number
  /** How often every session gets a `keepalive` (default PING_INTERVAL_MS). */
  keepaliveIntervalMs?: number
  /**
   * The relays nodes may name as their home relay (the operator's relay map). A `homeRelay`
   * whose URL is not in it is not stored or passed on: otherwise one member could make every
   * other node dial any URL it likes. Default: empty (no home relay is passed on; nodes then
   * use their own relay for every peer). See `setRelayMap`.
   */
  relayMap?: readonly HomeRelay[]
  /** Remove nodes that have been offline this long (default: never). */
  nodeExpiryMs?: number
  /** Update limits (defaults in protocol.ts); tests make them small. */
  limits?: { nodeBurst?: number; nodeIntervalMs?: number; sourceBurst?: number; sourceIntervalMs?: number }
}

/** A request the service refuses; becomes an `error` message and, before authentication, a close. */
export class CoordinationError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.name = 'CoordinationError'
    this.status = status
  }
}

interface Connection {
  id: ConnectionId
  challenge: Uint8Array
  /** Set once the hello is accepted. */
  nodeId: number | undefined
  openedAt: number
  lastHeard: number
  /** Where the connection comes from (the remote address), for per-source limits; undefined when unknown. */
  source: string | undefined
  /** Updates that arrived past the limits, merged (latest value wins), applied when the limits allow. */
  pending: UpdateMessage | undefined
  /** When the pending update may go (re-checked then: the source's budget is shared). */
  pendingAt: number
}

/** How often the service looks for nodes removed by another process (`burrow relay nodes remove`) and prunes limiters. */
export const MAINTENANCE_INTERVAL_MS = 2_000
/** How many times a write refused by a unique constraint (a race with another relay) is retried with fresh reads. */
export const CONFLICT_ATTEMPTS = 5
/** How often a relay on a shared store records which nodes hold a session on it (`markAlive`). */
export const PRESENCE_INTERVAL_MS = 30_000
/** How often offline nodes are checked against the inactivity expiry. */
const EXPIRY_CHECK_INTERVAL_MS = 60_000

/**
 * A relay URL in the form used to compare it with the relay map: ws(s) as http(s) (a node
 * names its relay by the URL it dials), default ports and a trailing slash dropped. Undefined
 * when it is not an absolute http(s)/ws(s) URL.
 */
export function relayUrlKey(url: string): string | undefined {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return undefined
  }
  const scheme = parsed.protocol === 'ws:' ? 'http:' : parsed.protocol === 'wss:' ? 'https:' : parsed.protocol
  if (scheme !== 'http:' && scheme !== 'https:') return undefined
  const defaultPort = scheme === 'http:' ? '80' : '443'
  const port = parsed.port === '' || parsed.port === defaultPort ? '' : `:${parsed.port}`
  return `${scheme}//${parsed.hostname}${port}${parsed.pathname.replace(/\/+$/, '')}${parsed.search}`
}

const SERVER_KEY_META = 'server_private_key'
const IPV6_PREFIX_META = 'ipv6_prefix'

/** WebSocket close reasons are limited to 123 UTF-8 bytes. */
function closeReason(text: string): string {
  const bytes = new TextEncoder().encode(text)
  if (bytes.length <= 123) return text
  return new TextDecoder().decode(bytes.subarray(0, 120)).replace(/\uFFFD$/, '') + '…'
}

/** DNS-label form of a requested hostname: lowercase letters, digits and inner hyphens. */
export function sanitizeHostname(requested: string): string {
  const label = requested
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_HOSTNAME_LENGTH)
    .replace(/-+$/, '')
  return label === '' ? 'node' : label
}

/**
 * Names a node may not have: every node resolves them to something else already (the loopback,
 * the relay itself, autodiscovery hosts that browsers and OSes look up on their own), so another
 * member's `fetch('http://localhost:…')` could otherwise reach that peer.
 */
export const RESERVED_HOSTNAMES: ReadonlySet<string> = new Set(['localhost', 'localdomain', 'local', 'ip6-localhost', 'ip6-loopback', 'broadcasthost', 'relay', 'wpad', 'isatap'])

/** Throws a 400 naming the hostname when its DNS-label form is reserved. */
export function checkHostname(requested: string): void {
  const label = sanitizeHostname(requested)
  if (RESERVED_HOSTNAMES.has(label)) {
    throw new CoordinationError(400, `hostname ${JSON.stringify(label)} is reserved (it already means something else on every node); choose another`)
  }
}

export class CoordinationService {
  readonly serverPublicKey: Uint8Array
  readonly network: NetworkInfo
  private readonly serverPrivateKey: Uint8Array
  private readonly store: CoordinationStore
  private readonly random: (length: number) => Uint8Array
  private readonly log: Log
  private readonly handshakeTimeoutMs: number
  private readonly silenceTimeoutMs: number
  private readonly connections = new Map<ConnectionId, Connection>()
  /** node id → its one authenticated connection; a node is online while it has one. */
  private readonly online = new Map<number, ConnectionId>()
  /** Every registered node by id, written through after each committed store change; welcomes read it instead of SQLite. */
  private readonly registered = new Map<number, NodeRecord>()
  private readonly keepaliveIntervalMs: number
  private readonly nodeExpiryMs: number | undefined
  private readonly nodeLimiter: KeyedLimiter<number>
  private readonly sourceLimiter: KeyedLimiter<string>
  /** Relay map by relayUrlKey. */
  private relayMap = new Map<string, HomeRelay>()
  /** The operator's relay regions, handed to every node in its welcome; undefined: none configured. */
  private regionMap: RelayMapEntry | undefined
  /** Stored home-relay URL → what members are told (the map's entry, or null); bounded by the distinct URLs stored. */
  private readonly relayShown = new Map<string, HomeRelay | null>()
  private nextKeepaliveAt: number | undefined
  private nextMaintenanceAt: number | undefined
  private nextExpiryCheckAt = 0
  private nextPresenceAt = 0
  /** This relay process in the store's presence records (shared stores). */
  private readonly relayId: string
  /** Nodes with a session on another relay of a shared store (they show as online here too). */
  private remoteOnline = new Set<number>()
  private remoteLoaded = false
  private storeVersion: number

  /** Loads (creating on first start) the server key and network prefix from the store, and every registered node. */
  static async create(options: CoordinationServiceOptions): Promise<CoordinationService> {
    const store = options.store
    const random = options.random ?? randomBytes
    const privateText = await store.getOrCreateMeta(SERVER_KEY_META, () => formatKey(generateKeyPair().privateKey))
    const ipv6Prefix = await store.getOrCreateMeta(IPV6_PREFIX_META, () => generateUlaPrefix(random))
    // Every node is offline at start-up, so ephemeral ones left by the previous process are gone.
    // Not on a shared store: there other relays may hold those nodes' sessions right now.
    if (!store.shared) {
      await store.transaction(async (tx) => {
        for (const node of await tx.allNodes()) if (node.ephemeral) await tx.deleteNode(node.id)
      })
    }
    const nodes = await store.allNodes()
    const version = await store.externalVersion()
    return new CoordinationService(options, privateText, ipv6Prefix, nodes, version)
  }

  private constructor(options: CoordinationServiceOptions, privateText: string, ipv6Prefix: string, nodes: NodeRecord[], storeVersion: number) {
    this.store = options.store
    this.random = options.random ?? randomBytes
    this.log = options.log ?? (() => {})
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS
    this.silenceTimeoutMs = options.silenceTimeoutMs ?? SILENCE_TIMEOUT_MS
    this.keepaliveIntervalMs = options.keepaliveIntervalMs ?? PING_INTERVAL_MS
    this.nodeExpiryMs = options.nodeExpiryMs
    const limits = options.limits ?? {}
    this.nodeLimiter = new KeyedLimiter(limits.nodeBurst ?? NODE_UPDATE_BURST, limits.nodeIntervalMs ?? NODE_UPDATE_INTERVAL_MS)
    this.sourceLimiter = new KeyedLimiter(limits.sourceBurst ?? SOURCE_UPDATE_BURST, limits.sourceIntervalMs ?? SOURCE_UPDATE_INTERVAL_MS)
    this.setRelayMap(options.relayMap ?? [])
    // With an expiry, the first poll (whenever the driver runs it) checks for expired nodes.
    if (this.nodeExpiryMs !== undefined) this.nextMaintenanceAt = 0
    this.relayId = toHex(this.random(8))
    this.serverPrivateKey = fromBase64(privateText)
    this.serverPublicKey = publicKeyOf(this.serverPrivateKey)
    this.network = { ipv4Prefix: IPV4_PREFIX, ipv6Prefix }
    for (const node of nodes) this.registered.set(node.id, node)
    this.storeVersion = storeVersion
  }

  /** Replaces the relay map (see `relayMap`); entries a node names from now on are checked against it. */
  setRelayMap(relays: readonly HomeRelay[]): void {
    const map = new Map<string, HomeRelay>()
    for (const relay of relays) {
      const key = relayUrlKey(relay.url)
      if (key === undefined) throw new TypeError(`relay map entry ${JSON.stringify(relay.url)} is not an http(s) or ws(s) URL`)
      map.set(key, relay.region === undefined ? { url: relay.url } : { url: relay.url, region: relay.region })
    }
    this.relayMap = map
    this.relayShown.clear()
  }

  /**
   * Replaces the relay map with the operator's regions (`burrow relay --relay-map FILE`, already
   * validated by parseRelayMap): every relay of every region may be a node's home relay (named by
   * its DERP URL), and each welcome from now on carries the regions.
   */
  setRegionMap(map: RelayMapEntry): void {
    const relays: HomeRelay[] = []
    for (const region of map.regions) for (const node of region.nodes) relays.push({ url: webSocketUrl(node.url), region: String(region.id) })
    this.setRelayMap(relays)
    this.regionMap = map
  }

  relays(): HomeRelay[] {
    return [...this.relayMap.values()]
  }

  /** The relay map's entry for `relay`, or null when it names a relay the operator did not configure. */
  private mapRelay(relay: HomeRelay | null): HomeRelay | null {
    if (relay === null) return null
    const key = relayUrlKey(relay.url)
    return (key === undefined ? undefined : this.relayMap.get(key)) ?? null
  }

  get serverKeyPair(): KeyPair {
    return { privateKey: this.serverPrivateKey, publicKey: this.serverPublicKey }
  }

  /**
   * For the DERP server's `--verify-clients` admit hook. Asks the store; while the store is
   * unavailable it answers from the nodes this relay knows, so DERP keeps admitting them.
   */
  async isRegistered(nodeKey: Uint8Array | string): Promise<boolean> {
    const text = typeof nodeKey === 'string' ? nodeKey : `nodekey:${toHex(nodeKey)}`
    try {
      return (await this.store.nodeByKey(text)) !== undefined
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error
      for (const node of this.registered.values()) if (node.nodeKey === text) return true
      return false
    }
  }

  async createAuthKey(options: AuthKeyOptions, now: number): Promise<string> {
    return (await createAuthKey(this.store, options, now, this.random)).key
  }

  /** Every registered node as members see it. */
  nodes(): PeerEntry[] {
    return [...this.registered.values()].map((node) => this.entry(node))
  }

  /**
   * Removes a registered node (by id or node key): its session, if any, is closed with 410 and
   * every other node is told it is gone. Returns the outputs for the driver; none if unknown.
   */
  async removeNode(which: number | string): Promise<Output[]> {
    const node = typeof which === 'number' ? await this.store.nodeById(which) : await this.store.nodeByKey(which)
    if (node !== undefined) await this.store.deleteNode(node.id)
    const known = node ?? (typeof which === 'number' ? this.registered.get(which) : undefined)
    if (known === undefined) return []
    return this.forget(known, 'this node was removed by the operator')
  }

  /** Drops a node that is gone from the store: closes its session (410) and pushes its removal. */
  private forget(node: NodeRecord, why: string): Output[] {
    const out: Output[] = []
    this.registered.delete(node.id)
    this.remoteOnline.delete(node.id)
    const connectionId = this.online.get(node.id)
    if (connectionId !== undefined) {
      this.online.delete(node.id)
      const connection = this.connections.get(connectionId)
      if (connection !== undefined) {
        connection.nodeId = undefined
        this.connections.delete(connectionId)
        out.push({ kind: 'send', connection: connectionId, message: { type: 'error', status: 410, error: why, closing: true } })
        out.push({ kind: 'close', connection: connectionId, code: CLOSE_CODE_BASE + 410, reason: closeReason(why) })
      }
    }
    this.log('info', `coordination: ${node.hostname} (${node.nodeKey.slice(0, 16)}…) removed: ${why}`)
    out.push(...this.broadcastPeers(node.id, [], [node.nodeKey]))
    return out
  }

  /** Picks up changes made by another process on the same store (`burrow relay nodes remove`, another relay). */
  private async reconcile(): Promise<Output[]> {
    const version = await this.store.externalVersion()
    if (version === this.storeVersion) return []
    this.storeVersion = version
    return this.adopt(await this.store.allNodes(), undefined)
  }

  /**
   * The store reports changes other writers made (another relay on the same PostgreSQL): reads
   * those nodes (or, after a lost subscription, all of them) and pushes what differs from what
   * this relay knows. Our own writes come back too and change nothing.
   */
  async storeChanged(change: StoreChange, now: number): Promise<Output[]> {
    const remote = await this.onlineElsewhere(now)
    if (change.kind === 'resync') {
      this.storeVersion = await this.store.externalVersion()
      return this.adopt(await this.store.allNodes(), undefined, remote)
    }
    const found: NodeRecord[] = []
    for (const id of change.ids) {
      const node = await this.store.nodeById(id)
      if (node !== undefined) found.push(node)
    }
    return this.adopt(found, change.ids, remote)
  }

  /** Nodes another relay of a shared store has a session for (recently marked alive); none otherwise. */
  private async onlineElsewhere(now: number): Promise<Set<number> | undefined> {
    if (!this.store.shared) return undefined
    return new Set(await this.store.aliveSince(now - 2 * PRESENCE_INTERVAL_MS, this.relayId))
  }

  /**
   * Brings the registered nodes (all, or those with `ids`) in line with `stored` (and, on a
   * shared store, with `remote`, who is online on other relays) and tells every online node what changed.
   */
  private adopt(stored: readonly NodeRecord[], ids: readonly number[] | undefined, remote?: Set<number>): Output[] {
    const byId = new Map(stored.map((node) => [node.id, node]))
    const out: Output[] = []
    const candidates = ids ?? [...new Set([...this.registered.keys(), ...byId.keys(), ...this.remoteOnline])]
    for (const id of candidates) {
      const node = byId.get(id)
      const known = this.registered.get(id)
      const wasRemote = this.remoteOnline.has(id)
      const isRemote = remote === undefined ? wasRemote : remote.has(id)
      if (isRemote) this.remoteOnline.add(id)
      else this.remoteOnline.delete(id)
      if (node === undefined) {
        this.remoteOnline.delete(id)
        if (known !== undefined) out.push(...this.forget(known, 'this node was removed by the operator'))
        continue
      }
      if (known !== undefined && sameNode(known, node) && wasRemote === isRemote) continue
      this.registered.set(id, node)
      const self = this.entry(node)
      const connection = this.online.get(id)
      if (connection !== undefined) out.push({ kind: 'send', connection, message: { type: 'self', self } })
      out.push(...this.broadcastPeers(id, [self], known !== undefined && known.nodeKey !== node.nodeKey ? [known.nodeKey] : []))
    }
    return out
  }

  /** Removes nodes offline for longer than the inactivity expiry. */
  private async expire(now: number): Promise<Output[]> {
    if (this.nodeExpiryMs === undefined) return []
    // On a shared store a node may be online on another relay: its relay marks it alive.
    const elsewhere = new Set(this.store.shared ? await this.store.aliveSince(now - 2 * PRESENCE_INTERVAL_MS) : [])
    const out: Output[] = []
    for (const node of [...this.registered.values()]) {
      if (this.online.has(node.id) || elsewhere.has(node.id) || node.lastSeen === null || now - node.lastSeen < this.nodeExpiryMs) continue
      await this.store.deleteNode(node.id)
      out.push(...this.forget(node, `offline for longer than the node expiry (${this.nodeExpiryMs} ms)`))
    }
    return out
  }

  connectionCount(): number {
    return this.connections.size
  }

  // ---- events from the driver ----

  /** `source`: the remote address, for the per-source update limit. */
  open(id: ConnectionId, now: number, source?: string): Output[] {
    if (this.connections.has(id)) throw new RangeError(`connection ${id} is already open`)
    const challenge = this.random(CHALLENGE_LENGTH)
    this.connections.set(id, { id, challenge, nodeId: undefined, openedAt: now, lastHeard: now, source, pending: undefined, pendingAt: 0 })
    return [
      {
        kind: 'send',
        connection: id,
        message: { type: 'challenge', version: PROTOCOL_VERSION, serverKey: toBase64(this.serverPublicKey), challenge: toBase64(challenge) },
      },
    ]
  }

  async receive(id: ConnectionId, data: string | Uint8Array, now: number): Promise<Output[]> {
    const connection = this.connections.get(id)
    if (connection === undefined) return []
    connection.lastHeard = now
    try {
      // Before hello the sender is anonymous: it gets only a small message parsed.
      const message = parseClientMessage(data, connection.nodeId === undefined ? MAX_PRE_HELLO_BYTES : MAX_CLIENT_MESSAGE_BYTES)
      if (connection.nodeId === undefined) {
        if (message.type !== 'hello') throw new CoordinationError(400, `expected a hello message first, got ${message.type}`)
        return await this.hello(connection, message, now)
      }
      switch (message.type) {
        case 'hello':
          throw new CoordinationError(400, 'hello was already accepted on this connection')
        case 'update':
          return await this.receiveUpdate(connection, connection.nodeId, message, now)
        case 'ping':
          return [{ kind: 'send', connection: id, message: { type: 'pong', id: message.id } }]
      }
    } catch (error) {
      return await this.refuse(connection, error, now)
    }
  }

  /** The driver saw the socket close (by the peer or after our own close output). */
  closed(id: ConnectionId, now: number): Promise<Output[]> {
    return this.drop(id, now)
  }

  async poll(now: number): Promise<Output[]> {
    const out: Output[] = []
    if (this.nextMaintenanceAt !== undefined && now >= this.nextMaintenanceAt) {
      this.nextMaintenanceAt = this.online.size > 0 || this.nodeExpiryMs !== undefined ? now + MAINTENANCE_INTERVAL_MS : undefined
      try {
        if (this.store.shared && this.online.size > 0 && now >= this.nextPresenceAt) {
          this.nextPresenceAt = now + PRESENCE_INTERVAL_MS
          await this.store.markAlive(this.relayId, [...this.online.keys()], now)
          // A relay that died leaves its presence to go stale: its nodes turn offline here.
          const remote = (await this.onlineElsewhere(now))!
          const flipped = [...new Set([...remote, ...this.remoteOnline])].filter((id) => remote.has(id) !== this.remoteOnline.has(id) && this.registered.has(id))
          if (flipped.length > 0)
            out.push(
              ...this.adopt(
                flipped.map((id) => this.registered.get(id)!),
                flipped,
                remote,
              ),
            )
        }
        out.push(...(await this.reconcile()))
        if (now >= this.nextExpiryCheckAt) {
          this.nextExpiryCheckAt = now + EXPIRY_CHECK_INTERVAL_MS
          out.push(...(await this.expire(now)))
        }
      } catch (error) {
        // The database is away: keepalives and timeouts below must still run; maintenance retries next time.
        if (!(error instanceof StoreUnavailableError)) throw error
        this.log('warn', `coordination: maintenance skipped: ${error.message}`)
      }
      this.nodeLimiter.prune(now)
      this.sourceLimiter.prune(now)
    }
    if (this.nextKeepaliveAt !== undefined && now >= this.nextKeepaliveAt) {
      this.nextKeepaliveAt = this.online.size > 0 ? now + this.keepaliveIntervalMs : undefined
      for (const connection of this.online.values()) out.push({ kind: 'send', connection, message: { type: 'keepalive' } })
    }
    for (const connection of [...this.connections.values()]) {
      if (connection.pending === undefined || connection.nodeId === undefined || now < connection.pendingAt) continue
      connection.pendingAt = this.updateReadyAt(connection, now)
      if (connection.pendingAt <= now) {
        const pending = connection.pending
        connection.pending = undefined
        try {
          out.push(...(await this.applyUpdate(connection, connection.nodeId, pending, now)))
        } catch (error) {
          out.push(...(await this.refuse(connection, error, now)))
        }
      }
    }
    for (const connection of [...this.connections.values()]) {
      if (connection.nodeId === undefined && now >= connection.openedAt + this.handshakeTimeoutMs) {
        out.push(...(await this.fail(connection, 408, 'no valid hello within the handshake timeout', now)))
      } else if (connection.nodeId !== undefined && now >= connection.lastHeard + this.silenceTimeoutMs) {
        out.push(...(await this.fail(connection, 408, 'connection was silent for too long (no ping)', now)))
      }
    }
    return out
  }

  nextEvent(): number | undefined {
    let next: number | undefined
    const consider = (deadline: number | undefined): void => {
      if (deadline !== undefined && (next === undefined || deadline < next)) next = deadline
    }
    for (const c of this.connections.values()) {
      consider(c.nodeId === undefined ? c.openedAt + this.handshakeTimeoutMs : c.lastHeard + this.silenceTimeoutMs)
      if (c.pending !== undefined) consider(c.pendingAt)
    }
    if (this.online.size > 0 || this.nodeExpiryMs !== undefined) consider(this.nextMaintenanceAt)
    consider(this.nextKeepaliveAt)
    return next
  }

  // ---- handling ----

  private async refuse(connection: Connection, error: unknown, now: number): Promise<Output[]> {
    let status = 500
    let text = 'internal error'
    if (error instanceof CoordinationError) {
      status = error.status
      text = error.message
    } else if (error instanceof ProtocolError) {
      status = 400
      text = error.message
    } else if (error instanceof StoreUnavailableError) {
      // Not the node's fault, and nothing was written: it retries with backoff.
      status = 503
      text = 'the coordination database is unavailable; try again later'
      this.log('warn', `coordination: connection ${connection.id}: ${error.message}`)
    } else if (error instanceof StoreConflictError) {
      status = 503
      text = 'too many concurrent changes to the same names or addresses; try again'
      this.log('warn', `coordination: connection ${connection.id}: gave up after ${CONFLICT_ATTEMPTS} conflicting attempts: ${error.message}`)
    } else {
      this.log('error', `coordination: connection ${connection.id}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
    }
    // An authenticated node that sends one bad message (or too many updates) keeps its session; it changed nothing.
    if (connection.nodeId !== undefined && (status === 400 || status === 429)) {
      return [{ kind: 'send', connection: connection.id, message: { type: 'error', status, error: text, closing: false } }]
    }
    return await this.fail(connection, status, text, now)
  }

  private async fail(connection: Connection, status: number, text: string, now: number): Promise<Output[]> {
    this.log('warn', `coordination: closing connection ${connection.id}: ${status} ${text}`)
    return [
      { kind: 'send', connection: connection.id, message: { type: 'error', status, error: text, closing: true } },
      { kind: 'close', connection: connection.id, code: CLOSE_CODE_BASE + status, reason: closeReason(text) },
      ...(await this.drop(connection.id, now)),
    ]
  }

  private verifyProof(nodeKey: string, proof: Proof, challenge: Uint8Array, field: string): void {
    let key: Uint8Array
    try {
      key = boxKey(this.serverPrivateKey, keyBytes(nodeKey))
    } catch (error) {
      if (error instanceof WeakKeyError) throw new CoordinationError(403, `${field}: node key is a low-order point`)
      throw error
    }
    const opened = boxOpen(key, fromBase64(proof.nonce), fromBase64(proof.box))
    if (opened === undefined || !equalBytes(opened, challenge)) {
      throw new CoordinationError(403, `${field} does not prove possession of the node private key`)
    }
  }

  private async hello(connection: Connection, hello: HelloMessage, now: number): Promise<Output[]> {
    this.verifyProof(hello.nodeKey, hello.proof, connection.challenge, 'proof')
    checkHostname(hello.hostname)
    // A node removed by another process must not be in the map this welcome sends.
    const reconciled = await this.reconcile()
    if (hello.previousNodeKey !== undefined) {
      if (hello.previousNodeKey === hello.nodeKey) throw new CoordinationError(400, 'previousNodeKey is the same as nodeKey')
      this.verifyProof(hello.previousNodeKey, hello.previousProof!, connection.challenge, 'previousProof')
    }

    const out: Output[] = [...reconciled]
    // Who is online on the other relays, before this relay's first welcome (later, changes and maintenance keep it current).
    if (this.store.shared && !this.remoteLoaded) {
      this.remoteOnline = (await this.onlineElsewhere(now))!
      this.remoteLoaded = true
    }
    const removedKeys: string[] = []
    const node = await this.retryConflicts(async (tx) => {
      const node = await this.helloWrite(tx, hello, removedKeys, now)
      // In the same transaction, so the change other relays are told about already shows it online.
      if (this.store.shared) await tx.markAlive(this.relayId, [node.id], now)
      return node
    })
    this.registered.set(node.id, node)

    // A node has one session: a newer connection (or the same node under its new key) replaces the older.
    const previous = this.online.get(node.id)
    if (previous !== undefined && previous !== connection.id) {
      const old = this.connections.get(previous)
      if (old !== undefined) {
        old.nodeId = undefined
        this.connections.delete(previous)
        const text = 'replaced by a newer connection from the same node'
        out.push({ kind: 'send', connection: previous, message: { type: 'error', status: 409, error: text, closing: true } })
        out.push({ kind: 'close', connection: previous, code: CLOSE_CODE_BASE + 409, reason: text })
      }
    }
    connection.nodeId = node.id
    this.online.set(node.id, connection.id)
    if (this.nextKeepaliveAt === undefined) this.nextKeepaliveAt = now + this.keepaliveIntervalMs
    if (this.nextMaintenanceAt === undefined) this.nextMaintenanceAt = now + MAINTENANCE_INTERVAL_MS

    // The map goes out in chunks of PEERS_PER_MESSAGE, all queued here, so no delta can come between them.
    const self = this.entry(node)
    const peers: PeerEntry[] = []
    for (const n of this.registered.values()) if (n.id !== node.id) peers.push(this.entry(n))
    const more = Math.max(0, Math.ceil(peers.length / PEERS_PER_MESSAGE) - 1)
    out.push({
      kind: 'send',
      connection: connection.id,
      message: { type: 'welcome', self, network: this.network, peers: peers.slice(0, PEERS_PER_MESSAGE), more, ...(this.regionMap ? { relayMap: this.regionMap } : {}) },
    })
    for (let i = 1; i <= more; i++) {
      out.push({ kind: 'send', connection: connection.id, message: { type: 'peers', upsert: peers.slice(i * PEERS_PER_MESSAGE, (i + 1) * PEERS_PER_MESSAGE), remove: [] } })
    }
    out.push(...this.broadcastPeers(node.id, [self], removedKeys))
    this.log('info', `coordination: ${node.hostname} (${node.nodeKey.slice(0, 16)}…) online at ${node.ipv4}`)
    return out
  }

  /** The store side of a hello: the node found (by key or previous key) and updated, or registered. */
  private async helloWrite(tx: StoreQueries, hello: HelloMessage, removedKeys: string[], now: number): Promise<NodeRecord> {
    removedKeys.length = 0
    let node = await tx.nodeByKey(hello.nodeKey)

    if (node !== undefined && hello.previousNodeKey !== undefined) {
      // Reconnecting after a finished rotation is fine; merging two live nodes is not.
      const previous = await tx.nodeByKey(hello.previousNodeKey)
      if (previous !== undefined && previous.id !== node.id) {
        throw new CoordinationError(409, 'nodeKey is already registered to another node; cannot rotate previousNodeKey onto it')
      }
    }
    if (node === undefined && hello.previousNodeKey !== undefined) {
      node = await tx.nodeByKey(hello.previousNodeKey)
      if (node === undefined) throw new CoordinationError(404, 'previousNodeKey is not registered')
      removedKeys.push(node.nodeKey)
      node.nodeKey = hello.nodeKey
    }
    if (node === undefined) return this.register(tx, hello, now)
    node.discoKey = hello.discoKey
    if (hello.hostname !== node.requestedHostname) {
      node.requestedHostname = hello.hostname
      node.hostname = await this.uniqueHostname(tx, hello.hostname, node.id)
    }
    if (hello.homeRelay !== undefined) node.homeRelay = this.acceptedRelay(hello.homeRelay)
    node.lastSeen = now
    await tx.updateNode(node)
    return node
  }

  /**
   * Runs `fn` in a transaction, again (with fresh reads) when a unique constraint refused its
   * write: another relay took that hostname or address in the same instant. Gives up after
   * CONFLICT_ATTEMPTS (the StoreConflictError becomes a 503 the node retries).
   */
  private async retryConflicts<T>(fn: (tx: StoreQueries) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.transaction(fn)
      } catch (error) {
        if (!(error instanceof StoreConflictError) || attempt >= CONFLICT_ATTEMPTS) throw error
      }
    }
  }

  private async register(tx: StoreQueries, hello: HelloMessage, now: number): Promise<NodeRecord> {
    if (hello.authKey === undefined) throw new CoordinationError(401, 'authKey is required to register a new node key')
    const authKey = await tx.findAuthKey(hashAuthKey(hello.authKey))
    const refusal = authKeyRefusal(authKey, now)
    if (refusal !== undefined || authKey === undefined) throw new CoordinationError(401, refusal ?? 'authKey is unknown or already used')
    // Spent atomically (two relays racing for one single-use key: one wins). A reusable key
    // already used needs no write, so registrations with it do not queue on its row.
    if (!authKey.reusable || authKey.usedAt === null) {
      if (!(await tx.claimAuthKey(authKey.id, now))) throw new CoordinationError(401, 'authKey is unknown or already used')
    }
    // The allocator asks synchronously and the store is async: its first pick (the key's own
    // slot, usually free) is checked in the store; only when that is taken does the search go on
    // past the addresses this relay knows, each pick again checked in the store (another relay
    // may have taken it a moment ago). The unique constraint catches a pick taken between that
    // read and our insert (the caller retries).
    const nodeKey = keyBytes(hello.nodeKey)
    let ipv4 = allocateIpv4(nodeKey, () => false)
    if (await tx.ipv4Taken(ipv4)) {
      const taken = new Set<string>([ipv4])
      for (const node of this.registered.values()) taken.add(node.ipv4)
      ipv4 = allocateIpv4(nodeKey, (address) => taken.has(address))
      while (await tx.ipv4Taken(ipv4)) {
        taken.add(ipv4)
        ipv4 = allocateIpv4(nodeKey, (address) => taken.has(address))
      }
    }
    const node = await tx.insertNode({
      nodeKey: hello.nodeKey,
      discoKey: hello.discoKey,
      hostname: await this.uniqueHostname(tx, hello.hostname, undefined),
      requestedHostname: hello.hostname,
      ipv4,
      ipv6: ipv6For(this.network.ipv6Prefix, ipv4),
      ephemeral: authKey.ephemeral,
      authKeyId: authKey.id,
      createdAt: now,
      lastSeen: now,
      homeRelay: this.acceptedRelay(hello.homeRelay ?? null),
    })
    return node
  }

  /** The sanitised name, or the first of name-2, name-3, … that no other node holds. */
  private async uniqueHostname(tx: StoreQueries, requested: string, selfId: number | undefined): Promise<string> {
    const base = sanitizeHostname(requested)
    for (let n = 1; ; n++) {
      const suffix = n === 1 ? '' : `-${n}`
      const candidate = base.slice(0, MAX_HOSTNAME_LENGTH - suffix.length).replace(/-+$/, '') + suffix
      const owner = await tx.hostnameOwner(candidate)
      if (owner === undefined || owner === selfId) return candidate
    }
  }

  /** The relay-map entry a hello names, or null (logged) when it names no configured relay. */
  private acceptedRelay(relay: HomeRelay | null): HomeRelay | null {
    const mapped = this.mapRelay(relay)
    if (relay !== null && mapped === null) this.log('warn', `coordination: ignoring homeRelay ${JSON.stringify(relay.url.slice(0, 200))}: not in the relay map`)
    return mapped
  }

  /** When both this node's and this source's update budgets have a token (`now` when they do now). */
  private updateReadyAt(connection: Connection, now: number): number {
    const nodeReady = connection.nodeId === undefined ? now : this.nodeLimiter.readyAt(connection.nodeId, now)
    const sourceReady = connection.source === undefined ? now : this.sourceLimiter.readyAt(connection.source, now)
    return Math.max(nodeReady, sourceReady)
  }

  /**
   * Every update is pushed to every online node, so each node, and each source address, gets a
   * token bucket. An update past the limit is not refused (that would lose a real change) but
   * merged into the connection's pending update, which `poll` applies once both have a token.
   */
  private async receiveUpdate(connection: Connection, nodeId: number, update: UpdateMessage, now: number): Promise<Output[]> {
    if (update.hostname !== undefined) checkHostname(update.hostname)
    if (update.homeRelay !== undefined && update.homeRelay !== null && this.mapRelay(update.homeRelay) === null) {
      throw new CoordinationError(
        400,
        `homeRelay.url ${JSON.stringify(update.homeRelay.url.slice(0, 200))} is not a relay of this network (not in the relay map); the update was ignored`,
      )
    }
    if (connection.pending === undefined && this.updateReadyAt(connection, now) <= now) return this.applyUpdate(connection, nodeId, update, now)
    if (connection.pending === undefined) connection.pendingAt = this.updateReadyAt(connection, now)
    connection.pending = { ...connection.pending, ...update, type: 'update' }
    return []
  }

  private async applyUpdate(connection: Connection, nodeId: number, update: UpdateMessage, now: number): Promise<Output[]> {
    this.nodeLimiter.take(nodeId, now)
    if (connection.source !== undefined) this.sourceLimiter.take(connection.source, now)
    const node = await this.retryConflicts(async (tx) => {
      const node = await tx.nodeById(nodeId)
      if (node === undefined) throw new CoordinationError(410, 'this node was removed')
      let changed = false
      const homeRelay = update.homeRelay === undefined ? undefined : this.mapRelay(update.homeRelay)
      if (homeRelay !== undefined && !sameRelay(homeRelay, node.homeRelay)) {
        node.homeRelay = homeRelay
        changed = true
      }
      if (update.discoKey !== undefined && update.discoKey !== node.discoKey) {
        node.discoKey = update.discoKey
        changed = true
      }
      if (update.hostname !== undefined && update.hostname !== node.requestedHostname) {
        node.requestedHostname = update.hostname
        node.hostname = await this.uniqueHostname(tx, update.hostname, node.id)
        changed = true
      }
      if (changed) await tx.updateNode(node)
      return changed ? node : undefined
    })
    if (node === undefined) return []
    this.registered.set(node.id, node)
    const self = this.entry(node)
    return [{ kind: 'send', connection: connection.id, message: { type: 'self', self } }, ...this.broadcastPeers(node.id, [self], [])]
  }

  /** Forgets a connection; if it was a node's session, the node goes offline (or away, if ephemeral). */
  private async drop(id: ConnectionId, now: number): Promise<Output[]> {
    const connection = this.connections.get(id)
    if (connection === undefined) return []
    this.connections.delete(id)
    const nodeId = connection.nodeId
    if (nodeId === undefined || this.online.get(nodeId) !== id) return []
    this.online.delete(nodeId)
    let node: NodeRecord | undefined
    try {
      node = await this.store.transaction(async (tx) => {
        const node = await tx.nodeById(nodeId)
        if (node === undefined) return undefined
        if (this.store.shared) await tx.markGone(this.relayId, node.id)
        if (node.ephemeral) await tx.deleteNode(node.id)
        else {
          node.lastSeen = now
          await tx.updateNode(node)
        }
        return node
      })
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error
      // The database is away: the others still learn the node went offline; its last-seen time is not recorded.
      this.log('warn', `coordination: could not record that node ${nodeId} went offline: ${error.message}`)
      const known = this.registered.get(nodeId)
      node = known === undefined || known.ephemeral ? known : { ...known, lastSeen: now }
    }
    if (node === undefined) return []
    if (node.ephemeral) {
      this.registered.delete(node.id)
      this.log('info', `coordination: ephemeral ${node.hostname} left`)
      return this.broadcastPeers(node.id, [], [node.nodeKey])
    }
    this.registered.set(node.id, node)
    this.log('info', `coordination: ${node.hostname} offline`)
    return this.broadcastPeers(node.id, [this.entry(node)], [])
  }

  /**
   * One change, pushed to every online node but `exceptNodeId`, in messages of at most
   * PEERS_PER_MESSAGE entries. Each recipient gets the same message objects, so the driver
   * serialises each once.
   */
  private broadcastPeers(exceptNodeId: number, upsert: PeerEntry[], remove: string[]): Output[] {
    const messages: ServerMessage[] = []
    for (let i = 0; i < Math.max(upsert.length, remove.length); i += PEERS_PER_MESSAGE) {
      messages.push({ type: 'peers', upsert: upsert.slice(i, i + PEERS_PER_MESSAGE), remove: remove.slice(i, i + PEERS_PER_MESSAGE) })
    }
    const out: Output[] = []
    for (const [nodeId, connection] of this.online) {
      if (nodeId !== exceptNodeId) for (const message of messages) out.push({ kind: 'send', connection, message })
    }
    return out
  }

  /** A stored home relay as members see it: re-checked against the current map (it may have changed since). */
  private shownRelay(relay: HomeRelay | null): HomeRelay | null {
    if (relay === null) return null
    let shown = this.relayShown.get(relay.url)
    if (shown === undefined && !this.relayShown.has(relay.url)) {
      shown = this.mapRelay(relay)
      this.relayShown.set(relay.url, shown)
    }
    return shown ?? null
  }

  private entry(node: NodeRecord): PeerEntry {
    return {
      id: node.id,
      nodeKey: node.nodeKey,
      discoKey: node.discoKey,
      hostname: node.hostname,
      addresses: [node.ipv4, node.ipv6],
      online: this.online.has(node.id) || this.remoteOnline.has(node.id),
      homeRelay: this.shownRelay(node.homeRelay),
      lastSeen: node.lastSeen,
      ephemeral: node.ephemeral,
    }
  }
}

/** Same stored fields (a change another relay made shows up as a difference). */
function sameNode(a: NodeRecord, b: NodeRecord): boolean {
  return (
    a.nodeKey === b.nodeKey &&
    a.discoKey === b.discoKey &&
    a.hostname === b.hostname &&
    a.requestedHostname === b.requestedHostname &&
    a.ipv4 === b.ipv4 &&
    a.ipv6 === b.ipv6 &&
    a.ephemeral === b.ephemeral &&
    a.lastSeen === b.lastSeen &&
    sameRelay(a.homeRelay, b.homeRelay)
  )
}

function sameRelay(a: HomeRelay | null, b: HomeRelay | null): boolean {
  if (a === null || b === null) return a === b
  return a.url === b.url && a.region === b.region
}
