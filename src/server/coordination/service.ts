// The coordination logic, sans-IO: the driver (http.ts) reports connections opening, messages
// arriving and connections closing, each with `now` (epoch ms, because last-seen times are
// stored and shown), and sends/closes whatever the returned outputs say. Nothing here touches
// a socket or a timer; `nextEvent()` says when `poll(now)` must run for timeouts.
import {
  boxKey,
  boxOpen,
  equalBytes,
  formatKey,
  fromBase64,
  generateKeyPair,
  publicKeyOf,
  randomBytes,
  toBase64,
  toHex,
  WeakKeyError,
  type KeyPair,
} from '../../crypto/index.ts'
import {
  CHALLENGE_LENGTH,
  CLOSE_CODE_BASE,
  HANDSHAKE_TIMEOUT_MS,
  MAX_HOSTNAME_LENGTH,
  MAX_UPDATES_PER_WINDOW,
  UPDATE_WINDOW_MS,
  PROTOCOL_VERSION,
  ProtocolError,
  SILENCE_TIMEOUT_MS,
  keyBytes,
  parseClientMessage,
  type HelloMessage,
  type HomeRelay,
  type NetworkInfo,
  type PeerEntry,
  type Proof,
  type ServerMessage,
  type UpdateMessage,
} from '../../control/protocol.ts'
import { IPV4_PREFIX, allocateIpv4, generateUlaPrefix, ipv6For } from './allocator.ts'
import { createAuthKey, hashAuthKey, type AuthKeyOptions } from './authkey.ts'
import type { CoordinationStore, NodeRecord } from './store.ts'

export type ConnectionId = number

export type Output =
  | { kind: 'send'; connection: ConnectionId; message: ServerMessage }
  | { kind: 'close'; connection: ConnectionId; code: number; reason: string }

export type LogLevel = 'info' | 'warn' | 'error'
export type Log = (level: LogLevel, message: string) => void

export interface CoordinationServiceOptions {
  store: CoordinationStore
  random?: (length: number) => Uint8Array
  log?: Log
  handshakeTimeoutMs?: number
  silenceTimeoutMs?: number
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
  /** Start of the current rate-limit window for updates, and how many were accepted in it. */
  updateWindowStart: number
  updatesInWindow: number
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

  constructor(options: CoordinationServiceOptions) {
    this.store = options.store
    this.random = options.random ?? randomBytes
    this.log = options.log ?? (() => {})
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS
    this.silenceTimeoutMs = options.silenceTimeoutMs ?? SILENCE_TIMEOUT_MS
    const privateText = this.store.getOrCreateMeta(SERVER_KEY_META, () => formatKey(generateKeyPair().privateKey))
    this.serverPrivateKey = fromBase64(privateText)
    this.serverPublicKey = publicKeyOf(this.serverPrivateKey)
    const ipv6Prefix = this.store.getOrCreateMeta(IPV6_PREFIX_META, () => generateUlaPrefix(this.random))
    this.network = { ipv4Prefix: IPV4_PREFIX, ipv6Prefix }
    // Every node is offline at start-up, so ephemeral ones left by the previous process are gone.
    this.store.transaction(() => {
      for (const node of this.store.allNodes()) if (node.ephemeral) this.store.deleteNode(node.id)
    })
    for (const node of this.store.allNodes()) this.registered.set(node.id, node)
  }

  get serverKeyPair(): KeyPair {
    return { privateKey: this.serverPrivateKey, publicKey: this.serverPublicKey }
  }

  /** For the DERP server's `--verify-clients` admit hook. */
  isRegistered(nodeKey: Uint8Array | string): boolean {
    const text = typeof nodeKey === 'string' ? nodeKey : `nodekey:${toHex(nodeKey)}`
    return this.store.nodeByKey(text) !== undefined
  }

  createAuthKey(options: AuthKeyOptions, now: number): string {
    return createAuthKey(this.store, options, now, this.random).key
  }

  /** Every registered node as members see it. */
  nodes(): PeerEntry[] {
    return [...this.registered.values()].map((node) => this.entry(node))
  }

  connectionCount(): number {
    return this.connections.size
  }

  // ---- events from the driver ----

  open(id: ConnectionId, now: number): Output[] {
    if (this.connections.has(id)) throw new RangeError(`connection ${id} is already open`)
    const challenge = this.random(CHALLENGE_LENGTH)
    this.connections.set(id, { id, challenge, nodeId: undefined, openedAt: now, lastHeard: now, updateWindowStart: now, updatesInWindow: 0 })
    return [
      {
        kind: 'send',
        connection: id,
        message: { type: 'challenge', version: PROTOCOL_VERSION, serverKey: toBase64(this.serverPublicKey), challenge: toBase64(challenge) },
      },
    ]
  }

  receive(id: ConnectionId, data: string | Uint8Array, now: number): Output[] {
    const connection = this.connections.get(id)
    if (connection === undefined) return []
    connection.lastHeard = now
    try {
      const message = parseClientMessage(data)
      if (connection.nodeId === undefined) {
        if (message.type !== 'hello') throw new CoordinationError(400, `expected a hello message first, got ${message.type}`)
        return this.hello(connection, message, now)
      }
      switch (message.type) {
        case 'hello':
          throw new CoordinationError(400, 'hello was already accepted on this connection')
        case 'update':
          this.countUpdate(connection, now)
          return this.update(connection, connection.nodeId, message)
        case 'ping':
          return [{ kind: 'send', connection: id, message: { type: 'pong', id: message.id } }]
      }
    } catch (error) {
      return this.refuse(connection, error, now)
    }
  }

  /** The driver saw the socket close (by the peer or after our own close output). */
  closed(id: ConnectionId, now: number): Output[] {
    return this.drop(id, now)
  }

  poll(now: number): Output[] {
    const out: Output[] = []
    for (const connection of [...this.connections.values()]) {
      if (connection.nodeId === undefined && now >= connection.openedAt + this.handshakeTimeoutMs) {
        out.push(...this.fail(connection, 408, 'no valid hello within the handshake timeout', now))
      } else if (connection.nodeId !== undefined && now >= connection.lastHeard + this.silenceTimeoutMs) {
        out.push(...this.fail(connection, 408, 'connection was silent for too long (no ping)', now))
      }
    }
    return out
  }

  nextEvent(): number | undefined {
    let next: number | undefined
    for (const c of this.connections.values()) {
      const deadline = c.nodeId === undefined ? c.openedAt + this.handshakeTimeoutMs : c.lastHeard + this.silenceTimeoutMs
      if (next === undefined || deadline < next) next = deadline
    }
    return next
  }

  // ---- handling ----

  private refuse(connection: Connection, error: unknown, now: number): Output[] {
    let status = 500
    let text = 'internal error'
    if (error instanceof CoordinationError) {
      status = error.status
      text = error.message
    } else if (error instanceof ProtocolError) {
      status = 400
      text = error.message
    } else {
      this.log('error', `coordination: connection ${connection.id}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
    }
    // An authenticated node that sends one bad message (or too many updates) keeps its session; it changed nothing.
    if (connection.nodeId !== undefined && (status === 400 || status === 429)) {
      return [{ kind: 'send', connection: connection.id, message: { type: 'error', status, error: text, closing: false } }]
    }
    return this.fail(connection, status, text, now)
  }

  private fail(connection: Connection, status: number, text: string, now: number): Output[] {
    this.log('warn', `coordination: closing connection ${connection.id}: ${status} ${text}`)
    return [
      { kind: 'send', connection: connection.id, message: { type: 'error', status, error: text, closing: true } },
      { kind: 'close', connection: connection.id, code: CLOSE_CODE_BASE + status, reason: closeReason(text) },
      ...this.drop(connection.id, now),
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

  private hello(connection: Connection, hello: HelloMessage, now: number): Output[] {
    this.verifyProof(hello.nodeKey, hello.proof, connection.challenge, 'proof')
    if (hello.previousNodeKey !== undefined) {
      if (hello.previousNodeKey === hello.nodeKey) throw new CoordinationError(400, 'previousNodeKey is the same as nodeKey')
      this.verifyProof(hello.previousNodeKey, hello.previousProof!, connection.challenge, 'previousProof')
    }

    const out: Output[] = []
    const removedKeys: string[] = []
    const node = this.store.transaction(() => {
      let node = this.store.nodeByKey(hello.nodeKey)
      if (node !== undefined && hello.previousNodeKey !== undefined) {
        // Reconnecting after a finished rotation is fine; merging two live nodes is not.
        const previous = this.store.nodeByKey(hello.previousNodeKey)
        if (previous !== undefined && previous.id !== node.id) {
          throw new CoordinationError(409, 'nodeKey is already registered to another node; cannot rotate previousNodeKey onto it')
        }
      }
      if (node === undefined && hello.previousNodeKey !== undefined) {
        node = this.store.nodeByKey(hello.previousNodeKey)
        if (node === undefined) throw new CoordinationError(404, 'previousNodeKey is not registered')
        removedKeys.push(node.nodeKey)
        node.nodeKey = hello.nodeKey
      }
      if (node === undefined) return this.register(hello, now)
      node.discoKey = hello.discoKey
      if (hello.hostname !== node.requestedHostname) {
        node.requestedHostname = hello.hostname
        node.hostname = this.uniqueHostname(hello.hostname, node.id)
      }
      if (hello.homeRelay !== undefined) node.homeRelay = hello.homeRelay
      node.lastSeen = now
      this.store.updateNode(node)
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

    const self = this.entry(node)
    const peers: PeerEntry[] = []
    for (const n of this.registered.values()) if (n.id !== node.id) peers.push(this.entry(n))
    out.push({ kind: 'send', connection: connection.id, message: { type: 'welcome', self, network: this.network, peers } })
    out.push(...this.broadcast(node.id, { type: 'peers', upsert: [self], remove: removedKeys }))
    this.log('info', `coordination: ${node.hostname} (${node.nodeKey.slice(0, 16)}…) online at ${node.ipv4}`)
    return out
  }

  private register(hello: HelloMessage, now: number): NodeRecord {
    if (hello.authKey === undefined) throw new CoordinationError(401, 'authKey is required to register a new node key')
    const authKey = this.store.findAuthKey(hashAuthKey(hello.authKey))
    if (authKey === undefined || (!authKey.reusable && authKey.usedAt !== null)) {
      throw new CoordinationError(401, 'authKey is unknown or already used')
    }
    const ipv4 = allocateIpv4(keyBytes(hello.nodeKey), (address) => this.store.ipv4Taken(address))
    const node = this.store.insertNode({
      nodeKey: hello.nodeKey,
      discoKey: hello.discoKey,
      hostname: this.uniqueHostname(hello.hostname, undefined),
      requestedHostname: hello.hostname,
      ipv4,
      ipv6: ipv6For(this.network.ipv6Prefix, ipv4),
      ephemeral: authKey.ephemeral,
      authKeyId: authKey.id,
      createdAt: now,
      lastSeen: now,
      homeRelay: hello.homeRelay ?? null,
    })
    this.store.markAuthKeyUsed(authKey.id, now)
    return node
  }

  /** The sanitised name, or the first of name-2, name-3, … that no other node holds. */
  private uniqueHostname(requested: string, selfId: number | undefined): string {
    const base = sanitizeHostname(requested)
    for (let n = 1; ; n++) {
      const suffix = n === 1 ? '' : `-${n}`
      const candidate = base.slice(0, MAX_HOSTNAME_LENGTH - suffix.length).replace(/-+$/, '') + suffix
      const owner = this.store.hostnameOwner(candidate)
      if (owner === undefined || owner === selfId) return candidate
    }
  }

  /** Every update is pushed to the whole network, so one node must not be able to flood it. */
  private countUpdate(connection: Connection, now: number): void {
    if (now >= connection.updateWindowStart + UPDATE_WINDOW_MS) {
      connection.updateWindowStart = now
      connection.updatesInWindow = 0
    }
    if (connection.updatesInWindow >= MAX_UPDATES_PER_WINDOW) {
      throw new CoordinationError(429, `too many updates: at most ${MAX_UPDATES_PER_WINDOW} per ${UPDATE_WINDOW_MS} ms; this one was ignored`)
    }
    connection.updatesInWindow++
  }

  private update(connection: Connection, nodeId: number, update: UpdateMessage): Output[] {
    const node = this.store.transaction(() => {
      const node = this.store.nodeById(nodeId)
      if (node === undefined) throw new CoordinationError(410, 'this node was removed')
      let changed = false
      if (update.homeRelay !== undefined && !sameRelay(update.homeRelay, node.homeRelay)) {
        node.homeRelay = update.homeRelay
        changed = true
      }
      if (update.discoKey !== undefined && update.discoKey !== node.discoKey) {
        node.discoKey = update.discoKey
        changed = true
      }
      if (update.hostname !== undefined && update.hostname !== node.requestedHostname) {
        node.requestedHostname = update.hostname
        node.hostname = this.uniqueHostname(update.hostname, node.id)
        changed = true
      }
      if (changed) this.store.updateNode(node)
      return changed ? node : undefined
    })
    if (node === undefined) return []
    this.registered.set(node.id, node)
    const self = this.entry(node)
    return [{ kind: 'send', connection: connection.id, message: { type: 'self', self } }, ...this.broadcast(node.id, { type: 'peers', upsert: [self], remove: [] })]
  }

  /** Forgets a connection; if it was a node's session, the node goes offline (or away, if ephemeral). */
  private drop(id: ConnectionId, now: number): Output[] {
    const connection = this.connections.get(id)
    if (connection === undefined) return []
    this.connections.delete(id)
    const nodeId = connection.nodeId
    if (nodeId === undefined || this.online.get(nodeId) !== id) return []
    this.online.delete(nodeId)
    const node = this.store.nodeById(nodeId)
    if (node === undefined) return []
    if (node.ephemeral) {
      this.store.deleteNode(node.id)
      this.registered.delete(node.id)
      this.log('info', `coordination: ephemeral ${node.hostname} left`)
      return this.broadcast(node.id, { type: 'peers', upsert: [], remove: [node.nodeKey] })
    }
    node.lastSeen = now
    this.store.updateNode(node)
    this.registered.set(node.id, node)
    this.log('info', `coordination: ${node.hostname} offline`)
    return this.broadcast(node.id, { type: 'peers', upsert: [this.entry(node)], remove: [] })
  }

  private broadcast(exceptNodeId: number, message: ServerMessage): Output[] {
    const out: Output[] = []
    for (const [nodeId, connection] of this.online) {
      if (nodeId !== exceptNodeId) out.push({ kind: 'send', connection, message })
    }
    return out
  }

  private entry(node: NodeRecord): PeerEntry {
    return {
      id: node.id,
      nodeKey: node.nodeKey,
      discoKey: node.discoKey,
      hostname: node.hostname,
      addresses: [node.ipv4, node.ipv6],
      online: this.online.has(node.id),
      homeRelay: node.homeRelay,
      lastSeen: node.lastSeen,
      ephemeral: node.ephemeral,
    }
  }
}

function sameRelay(a: HomeRelay | null, b: HomeRelay | null): boolean {
  if (a === null || b === null) return a === b
  return a.url === b.url && a.region === b.region
}
