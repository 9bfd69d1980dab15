// The coordination protocol, shared by the relay (src/server/coordination) and the client.
// One WebSocket at /control carrying JSON text messages; see src/server/coordination/PROTOCOL.md.
import { fromBase64, fromHex, toHex } from '../crypto/index.ts'

export const PROTOCOL_VERSION = 1
export const CONTROL_PATH = '/control'
/** Largest message either side accepts; a full peer map of a few hundred nodes fits easily. */
export const MAX_MESSAGE_BYTES = 1 << 20
export const CHALLENGE_LENGTH = 32
export const MAX_HOSTNAME_LENGTH = 63
export const MAX_AUTH_KEY_LENGTH = 200
export const MAX_URL_LENGTH = 2048
/** An online node may change its entry this many times per UPDATE_WINDOW_MS; more are refused with 429. */
export const MAX_UPDATES_PER_WINDOW = 10
export const UPDATE_WINDOW_MS = 1000
/** Client sends `ping` this often; the server drops connections silent for SILENCE_TIMEOUT_MS. */
export const PING_INTERVAL_MS = 20_000
export const SILENCE_TIMEOUT_MS = 60_000
export const HANDSHAKE_TIMEOUT_MS = 10_000

/** WebSocket close codes: 4000 + the HTTP-like status, so the browser can read the status from `CloseEvent.code`. */
export const CLOSE_CODE_BASE = 4000

export interface HomeRelay {
  url: string
  region?: string
}

/** One node of the network as every member sees it. Keys are `nodekey:`/`discokey:` + 64 hex. */
export interface PeerEntry {
  id: number
  nodeKey: string
  discoKey: string
  hostname: string
  /** [IPv4, IPv6] overlay addresses in text form. */
  addresses: [string, string]
  online: boolean
  homeRelay: HomeRelay | null
  /** Epoch ms of the last connect, disconnect or message; null if never connected. */
  lastSeen: number | null
  ephemeral: boolean
}

export interface NetworkInfo {
  ipv4Prefix: string
  ipv6Prefix: string
}

export interface Proof {
  /** base64 of the 24-byte box nonce */
  nonce: string
  /** base64 of NaCl box(challenge) from the node private key to the server key */
  box: string
}

// ---- server → client ----

export interface ChallengeMessage {
  type: 'challenge'
  version: number
  /** base64 X25519 public key of the coordination server */
  serverKey: string
  /** base64, CHALLENGE_LENGTH random bytes */
  challenge: string
}

export interface WelcomeMessage {
  type: 'welcome'
  self: PeerEntry
  network: NetworkInfo
  peers: PeerEntry[]
}

export interface PeersMessage {
  type: 'peers'
  /** Entries that joined or changed, whole. */
  upsert: PeerEntry[]
  /** Node keys that left (a key change removes the old key and upserts the new one in one message). */
  remove: string[]
}

/** Our own entry changed (hostname, addresses never change, home relay as echoed by the server). */
export interface SelfMessage {
  type: 'self'
  self: PeerEntry
}

export interface PongMessage {
  type: 'pong'
  id: number
}

export interface ErrorMessage {
  type: 'error'
  /** HTTP-like status: 400 malformed, 401 auth key, 403 proof, 408 timeout, 409 replaced, 429 too many updates, 500 server. */
  status: number
  error: string
  /** True when the server closes the connection right after; false when the session goes on (the request was ignored). */
  closing: boolean
}

export type ServerMessage = ChallengeMessage | WelcomeMessage | PeersMessage | SelfMessage | PongMessage | ErrorMessage

// ---- client → server ----

export interface HelloMessage {
  type: 'hello'
  version: number
  nodeKey: string
  discoKey: string
  hostname: string
  /** Needed only the first time a node key registers. */
  authKey?: string
  proof: Proof
  /** Key rotation: the node's previous key and a proof made with the previous private key. */
  previousNodeKey?: string
  previousProof?: Proof
  homeRelay?: HomeRelay | null
}

export interface UpdateMessage {
  type: 'update'
  homeRelay?: HomeRelay | null
  discoKey?: string
  hostname?: string
}

export interface PingMessage {
  type: 'ping'
  id: number
}

export type ClientMessage = HelloMessage | UpdateMessage | PingMessage

// ---- validation ----

/** A message that does not follow the protocol; `field` names the offending field. */
export class ProtocolError extends Error {
  readonly field: string
  constructor(field: string, message: string) {
    super(message)
    this.name = 'ProtocolError'
    this.field = field
  }
}

type Json = Record<string, unknown>

function parseObject(text: string | Uint8Array): Json {
  if (typeof text !== 'string') throw new ProtocolError('message', 'message must be JSON text, got a binary frame')
  if (text.length > MAX_MESSAGE_BYTES) throw new ProtocolError('message', `message is larger than ${MAX_MESSAGE_BYTES} bytes`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new ProtocolError('message', 'message is not valid JSON')
  }
  return object(value, 'message')
}

function object(value: unknown, field: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError(field, `${field} must be an object`)
  return value as Json
}

function string(o: Json, field: string, path: string, maxLength: number): string {
  const value = o[field]
  if (typeof value !== 'string') throw new ProtocolError(path, `${path} must be a string`)
  if (value.length > maxLength) throw new ProtocolError(path, `${path} is longer than ${maxLength} characters`)
  return value
}

function optional<T>(o: Json, field: string, read: () => T): T | undefined {
  return o[field] === undefined ? undefined : read()
}

function integer(o: Json, field: string, path: string): number {
  const value = o[field]
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new ProtocolError(path, `${path} must be an integer`)
  return value
}

function boolean(o: Json, field: string, path: string): boolean {
  const value = o[field]
  if (typeof value !== 'boolean') throw new ProtocolError(path, `${path} must be true or false`)
  return value
}

function bytes(o: Json, field: string, path: string, length: number | [number, number]): string {
  const text = string(o, field, path, 4096)
  let decoded: Uint8Array
  try {
    decoded = fromBase64(text)
  } catch {
    throw new ProtocolError(path, `${path} must be base64`)
  }
  const [min, max] = typeof length === 'number' ? [length, length] : length
  if (decoded.length < min || decoded.length > max) {
    throw new ProtocolError(path, `${path} must be ${min === max ? min : `${min}–${max}`} bytes, got ${decoded.length}`)
  }
  return text
}

const KEY_PATTERN = /^[0-9a-f]{64}$/

function prefixedKey(o: Json, field: string, path: string, prefix: 'nodekey' | 'discokey'): string {
  const text = string(o, field, path, 200)
  if (!text.startsWith(`${prefix}:`) || !KEY_PATTERN.test(text.slice(prefix.length + 1))) {
    throw new ProtocolError(path, `${path} must be ${prefix}: followed by 64 lowercase hex digits`)
  }
  return text
}

function hostname(o: Json, field: string, path: string): string {
  const text = string(o, field, path, 256)
  // eslint-disable-next-line no-control-regex -- matching control characters is the point: a hostname must not contain them
  if (/[\u0000-\u001f\u007f]/.test(text)) throw new ProtocolError(path, `${path} must not contain control characters`)
  return text
}

function homeRelay(o: Json, field: string, path: string): HomeRelay | null {
  if (o[field] === null) return null
  const relay = object(o[field], path)
  const url = string(relay, 'url', `${path}.url`, MAX_URL_LENGTH)
  if (!/^(wss?|https?):\/\/[^\s]+$/.test(url)) throw new ProtocolError(`${path}.url`, `${path}.url must be an http(s) or ws(s) URL`)
  const region = optional(relay, 'region', () => string(relay, 'region', `${path}.region`, 100))
  return region === undefined ? { url } : { url, region }
}

function proof(o: Json, field: string, path: string): Proof {
  const p = object(o[field], path)
  return {
    nonce: bytes(p, 'nonce', `${path}.nonce`, 24),
    box: bytes(p, 'box', `${path}.box`, CHALLENGE_LENGTH + 16),
  }
}

function version(o: Json): number {
  const v = integer(o, 'version', 'version')
  if (v !== PROTOCOL_VERSION) throw new ProtocolError('version', `version ${v} is not supported (this side speaks ${PROTOCOL_VERSION})`)
  return v
}

function messageType(o: Json): string {
  return string(o, 'type', 'type', 40)
}

export function parseClientMessage(text: string | Uint8Array): ClientMessage {
  const o = parseObject(text)
  const type = messageType(o)
  switch (type) {
    case 'hello': {
      const hello: HelloMessage = {
        type,
        version: version(o),
        nodeKey: prefixedKey(o, 'nodeKey', 'nodeKey', 'nodekey'),
        discoKey: prefixedKey(o, 'discoKey', 'discoKey', 'discokey'),
        hostname: hostname(o, 'hostname', 'hostname'),
        proof: proof(o, 'proof', 'proof'),
      }
      const authKey = optional(o, 'authKey', () => string(o, 'authKey', 'authKey', MAX_AUTH_KEY_LENGTH))
      if (authKey !== undefined) hello.authKey = authKey
      const previousNodeKey = optional(o, 'previousNodeKey', () => prefixedKey(o, 'previousNodeKey', 'previousNodeKey', 'nodekey'))
      if (previousNodeKey !== undefined) {
        hello.previousNodeKey = previousNodeKey
        hello.previousProof = proof(o, 'previousProof', 'previousProof')
      }
      const relay = optional(o, 'homeRelay', () => homeRelay(o, 'homeRelay', 'homeRelay'))
      if (relay !== undefined) hello.homeRelay = relay
      return hello
    }
    case 'update': {
      const update: UpdateMessage = { type }
      const relay = optional(o, 'homeRelay', () => homeRelay(o, 'homeRelay', 'homeRelay'))
      if (relay !== undefined) update.homeRelay = relay
      const discoKey = optional(o, 'discoKey', () => prefixedKey(o, 'discoKey', 'discoKey', 'discokey'))
      if (discoKey !== undefined) update.discoKey = discoKey
      const name = optional(o, 'hostname', () => hostname(o, 'hostname', 'hostname'))
      if (name !== undefined) update.hostname = name
      return update
    }
    case 'ping':
      return { type, id: integer(o, 'id', 'id') }
    default:
      throw new ProtocolError('type', `type ${JSON.stringify(type)} is not a client message`)
  }
}

function peerEntry(value: unknown, path: string): PeerEntry {
  const o = object(value, path)
  const addresses = o['addresses']
  if (!Array.isArray(addresses) || addresses.length !== 2 || !addresses.every((a) => typeof a === 'string' && a.length <= 64)) {
    throw new ProtocolError(`${path}.addresses`, `${path}.addresses must be [ipv4, ipv6] strings`)
  }
  const lastSeen = o['lastSeen'] === null ? null : integer(o, 'lastSeen', `${path}.lastSeen`)
  return {
    id: integer(o, 'id', `${path}.id`),
    nodeKey: prefixedKey(o, 'nodeKey', `${path}.nodeKey`, 'nodekey'),
    discoKey: prefixedKey(o, 'discoKey', `${path}.discoKey`, 'discokey'),
    hostname: hostname(o, 'hostname', `${path}.hostname`),
    addresses: [addresses[0] as string, addresses[1] as string],
    online: boolean(o, 'online', `${path}.online`),
    homeRelay: homeRelay(o, 'homeRelay', `${path}.homeRelay`),
    lastSeen,
    ephemeral: boolean(o, 'ephemeral', `${path}.ephemeral`),
  }
}

function peerList(o: Json, field: string): PeerEntry[] {
  const list = o[field]
  if (!Array.isArray(list)) throw new ProtocolError(field, `${field} must be an array`)
  return list.map((entry, i) => peerEntry(entry, `${field}[${i}]`))
}

export function parseServerMessage(text: string | Uint8Array): ServerMessage {
  const o = parseObject(text)
  const type = messageType(o)
  switch (type) {
    case 'challenge':
      return {
        type,
        version: version(o),
        serverKey: bytes(o, 'serverKey', 'serverKey', 32),
        challenge: bytes(o, 'challenge', 'challenge', CHALLENGE_LENGTH),
      }
    case 'welcome': {
      const network = object(o['network'], 'network')
      return {
        type,
        self: peerEntry(o['self'], 'self'),
        network: { ipv4Prefix: string(network, 'ipv4Prefix', 'network.ipv4Prefix', 64), ipv6Prefix: string(network, 'ipv6Prefix', 'network.ipv6Prefix', 64) },
        peers: peerList(o, 'peers'),
      }
    }
    case 'peers': {
      const remove = o['remove']
      if (!Array.isArray(remove)) throw new ProtocolError('remove', 'remove must be an array')
      return {
        type,
        upsert: peerList(o, 'upsert'),
        remove: remove.map((_, i) => prefixedKey(remove as unknown as Json, String(i), `remove[${i}]`, 'nodekey')),
      }
    }
    case 'self':
      return { type, self: peerEntry(o['self'], 'self') }
    case 'pong':
      return { type, id: integer(o, 'id', 'id') }
    case 'error':
      return { type, status: integer(o, 'status', 'status'), error: string(o, 'error', 'error', 2000), closing: boolean(o, 'closing', 'closing') }
    default:
      throw new ProtocolError('type', `type ${JSON.stringify(type)} is not a server message`)
  }
}

// ---- key text helpers ----

export function nodeKeyText(key: Uint8Array): string {
  return `nodekey:${toHex(key)}`
}

export function discoKeyText(key: Uint8Array): string {
  return `discokey:${toHex(key)}`
}

/** Bytes of a `nodekey:`/`discokey:` string that has already passed validation. */
export function keyBytes(text: string): Uint8Array {
  return fromHex(text.slice(text.indexOf(':') + 1))
}
