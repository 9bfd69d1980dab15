// The coordination protocol, shared by the relay (src/server/coordination) and the client.
// One WebSocket at /control carrying JSON text messages; see src/server/coordination/PROTOCOL.md.
import { fromBase64, fromHex, toHex } from '../crypto/index.ts'

export const PROTOCOL_VERSION = 1
export const CONTROL_PATH = '/control'
/**
 * Largest server → client message. The peer map is streamed in chunks of at most
 * PEERS_PER_MESSAGE entries (each entry is bounded: hostname ≤ 63, home relay from the
 * operator's relay map), so no network of any size needs a larger one.
 */
export const MAX_MESSAGE_BYTES = 1 << 20
/**
 * Largest client → server message. A hello with an auth key, two proofs and a home relay is
 * under 3 KiB; anything bigger is refused by the WebSocket layer before it is buffered.
 */
export const MAX_CLIENT_MESSAGE_BYTES = 16 << 10
/** Largest message before `hello` is accepted: what an unauthenticated client may make the server parse. */
export const MAX_PRE_HELLO_BYTES = 8 << 10
/** Deepest JSON nesting either side parses (the deepest real message, a welcome with a relay map, has 6 levels). */
export const MAX_JSON_DEPTH = 8
/** Peer entries per `welcome`/`peers` message; a bigger map or change is split across messages. */
export const PEERS_PER_MESSAGE = 256
export const CHALLENGE_LENGTH = 32
export const MAX_HOSTNAME_LENGTH = 63
export const MAX_AUTH_KEY_LENGTH = 200
export const MAX_URL_LENGTH = 2048
/**
 * Each update is pushed to every online node, so each is paid for by the whole network. A node
 * may burst this many, then one per UPDATE_INTERVAL_MS; so may all nodes behind one source
 * address together (SOURCE_UPDATE_*), which caps what a member can do by adding identities.
 * Updates past the limit are merged and applied once the limit allows (the latest value wins).
 */
export const NODE_UPDATE_BURST = 10
export const NODE_UPDATE_INTERVAL_MS = 1000
export const SOURCE_UPDATE_BURST = 40
export const SOURCE_UPDATE_INTERVAL_MS = 250
/**
 * Each side sends a keepalive on its own schedule, whatever else it sends (the client a `ping`,
 * the server a `keepalive`), every PING_INTERVAL_MS, and drops a connection it heard nothing on
 * for SILENCE_TIMEOUT_MS: three keepalives fit in one timeout, so a busy or a quiet network alike
 * never trips it.
 */
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

/** A STUN or TURN server for WebRTC, in the shape of the browser's RTCIceServer. */
export interface IceServer {
  urls: string | string[]
  username?: string
  credential?: string
}

/** At most this many ICE servers in a welcome; each with at most MAX_ICE_URLS URLs. */
export const MAX_ICE_SERVERS = 16
export const MAX_ICE_URLS = 8

/** One relay of a region (tailcfg.DERPNode, reduced): `url` is its base or DERP URL, http(s) or ws(s). */
export interface RelayNodeEntry {
  name: string
  url: string
  /** Its STUN port (tailcfg.DERPNode.STUNPort: -1 or absent, none). */
  stunPort?: number
}

/** A relay region (tailcfg.DERPRegion, reduced): relays meshed with each other, interchangeable for a node. */
export interface RelayRegionEntry {
  /** 1 … MAX_RELAY_REGION_ID, unique in the map (tailcfg.DERPRegion.RegionID). */
  id: number
  code: string
  name: string
  /** In preference order; never empty. */
  nodes: RelayNodeEntry[]
  /** Do not pick as home (tailcfg.DERPRegion.Avoid); peers homed there are still reached. */
  avoid?: boolean
}

/** The operator's relay map (`burrow relay --relay-map FILE`), as the welcome hands it out. */
export interface RelayMapEntry {
  regions: RelayRegionEntry[]
}

export const MAX_RELAY_REGIONS = 64
export const MAX_RELAY_NODES = 16
export const MAX_RELAY_REGION_ID = 2 ** 31 - 1
/** Regions × relays × this stays well inside a welcome (MAX_MESSAGE_BYTES) next to a full chunk of peers. */
export const MAX_RELAY_URL_LENGTH = 512

export interface WelcomeMessage {
  type: 'welcome'
  self: PeerEntry
  network: NetworkInfo
  /** The first chunk of the peer map (at most PEERS_PER_MESSAGE entries). */
  peers: PeerEntry[]
  /** How many `peers` messages follow that complete the initial map (0 when it fit here). */
  more: number
  /** The relay's STUN server (and TURN servers, with credentials) for this node's WebRTC; absent from older relays. */
  iceServers?: IceServer[]
  /** The operator's relay regions; absent when none was configured (every relay URL is then a region of its own). */
  relayMap?: RelayMapEntry
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

/** Sent by the server every PING_INTERVAL_MS so the client can tell a live quiet server from a dead one. */
export interface KeepaliveMessage {
  type: 'keepalive'
}

export interface ErrorMessage {
  type: 'error'
  /** HTTP-like status: 400 malformed, 401 auth key, 403 proof, 408 timeout, 409 replaced, 410 removed, 500 server. */
  status: number
  error: string
  /** True when the server closes the connection right after; false when the session goes on (the request was ignored). */
  closing: boolean
}

export type ServerMessage = ChallengeMessage | WelcomeMessage | PeersMessage | SelfMessage | PongMessage | KeepaliveMessage | ErrorMessage

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

/**
 * Throws if `text` nests arrays/objects deeper than `maxDepth`. One pass over the characters,
 * skipping string contents, so it costs far less than the JSON.parse it protects.
 */
export function checkJsonDepth(text: string, maxDepth: number): void {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c)
        i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) throw new ProtocolError('message', `message nests deeper than ${maxDepth} levels`)
    } else if (c === 0x7d || c === 0x5d) depth--
  }
}

function parseObject(text: string | Uint8Array, maxBytes: number = MAX_MESSAGE_BYTES): Json {
  if (typeof text !== 'string') throw new ProtocolError('message', 'message must be JSON text, got a binary frame')
  // UTF-16 length ≤ UTF-8 length, so this bound is never stricter than the byte limit it stands for.
  if (text.length > maxBytes) throw new ProtocolError('message', `message is larger than ${maxBytes} bytes`)
  checkJsonDepth(text, MAX_JSON_DEPTH)
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

function count(o: Json, field: string): number {
  const value = integer(o, field, field)
  if (value < 0) throw new ProtocolError(field, `${field} must not be negative`)
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

const RELAY_URL = /^(wss?|https?):\/\/[^\s]+$/

/**
 * Validates a relay map (the welcome's `relayMap`, or an operator's `--relay-map` file); every
 * error names the offending field (`relayMap.regions[1].nodes[0].url`; `path` '' leaves the prefix off). Region ids are unique,
 * and so are relay URLs across the whole map (a URL names one relay of one region).
 */
export function parseRelayMap(value: unknown, path = 'relayMap'): RelayMapEntry {
  const map = object(value, path === '' ? 'the relay map' : path)
  const list = map['regions']
  const top = path === '' ? 'regions' : `${path}.regions`
  if (!Array.isArray(list) || list.length === 0) throw new ProtocolError(top, `${top} must be a non-empty array of regions`)
  if (list.length > MAX_RELAY_REGIONS) throw new ProtocolError(top, `${top} has more than ${MAX_RELAY_REGIONS} regions`)
  const ids = new Set<number>()
  const urls = new Map<string, string>()
  const regions = list.map((item, i): RelayRegionEntry => {
    const at = `${top}[${i}]`
    const o = object(item, at)
    const id = integer(o, 'id', `${at}.id`)
    if (id < 1 || id > MAX_RELAY_REGION_ID) throw new ProtocolError(`${at}.id`, `${at}.id must be 1–${MAX_RELAY_REGION_ID}, got ${id}`)
    if (ids.has(id)) throw new ProtocolError(`${at}.id`, `${at}.id ${id} is used by another region`)
    ids.add(id)
    const code = string(o, 'code', `${at}.code`, 32)
    if (!/^[A-Za-z0-9._-]+$/.test(code)) throw new ProtocolError(`${at}.code`, `${at}.code must be letters, digits, '.', '_' or '-' (like "fra" or "lab-1")`)
    const name = o['name'] === undefined ? code : hostname(o, 'name', `${at}.name`)
    const rawNodes = o['nodes']
    if (!Array.isArray(rawNodes) || rawNodes.length === 0) throw new ProtocolError(`${at}.nodes`, `${at}.nodes must be a non-empty array of relays`)
    if (rawNodes.length > MAX_RELAY_NODES) throw new ProtocolError(`${at}.nodes`, `${at}.nodes has more than ${MAX_RELAY_NODES} relays`)
    const nodes = rawNodes.map((raw, j): RelayNodeEntry => {
      const nat = `${at}.nodes[${j}]`
      const n = object(raw, nat)
      const url = string(n, 'url', `${nat}.url`, MAX_RELAY_URL_LENGTH)
      let parsed: URL | undefined
      try {
        parsed = RELAY_URL.test(url) ? new URL(url) : undefined
      } catch {
        parsed = undefined
      }
      if (parsed === undefined)
        throw new ProtocolError(
          `${nat}.url`,
          `${nat}.url must be an http(s) or ws(s) URL like "https://relay.example" or "wss://relay.example/derp", got ${JSON.stringify(url.slice(0, 200))}`,
        )
      const same = `${parsed.protocol.replace(/^ws/, 'http')}//${parsed.host}${parsed.pathname.replace(/\/derp\/?$|\/+$/, '')}`
      const other = urls.get(same)
      if (other !== undefined) throw new ProtocolError(`${nat}.url`, `${nat}.url names the same relay as ${other}`)
      urls.set(same, `${nat}.url`)
      const node: RelayNodeEntry = { name: n['name'] === undefined ? `${code}${j + 1}` : hostname(n, 'name', `${nat}.name`), url }
      const stun = optional(n, 'stunPort', () => integer(n, 'stunPort', `${nat}.stunPort`))
      if (stun !== undefined) {
        if (stun < -1 || stun > 65535) throw new ProtocolError(`${nat}.stunPort`, `${nat}.stunPort must be a UDP port 0–65535, or -1 for none`)
        node.stunPort = stun
      }
      return node
    })
    const region: RelayRegionEntry = { id, code, name, nodes }
    const avoid = optional(o, 'avoid', () => boolean(o, 'avoid', `${at}.avoid`))
    if (avoid === true) region.avoid = true
    return region
  })
  return { regions }
}

const ICE_URL = /^(stuns?|turns?):[^\s]+$/

function iceServers(o: Json, field: string): IceServer[] {
  const list = o[field]
  if (!Array.isArray(list)) throw new ProtocolError(field, `${field} must be an array`)
  if (list.length > MAX_ICE_SERVERS) throw new ProtocolError(field, `${field} has more than ${MAX_ICE_SERVERS} entries`)
  return list.map((value, i) => {
    const path = `${field}[${i}]`
    const entry = object(value, path)
    const raw = entry['urls']
    const urls = typeof raw === 'string' ? [raw] : raw
    if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_ICE_URLS) {
      throw new ProtocolError(`${path}.urls`, `${path}.urls must be a URL or 1–${MAX_ICE_URLS} URLs`)
    }
    urls.forEach((url, j) => {
      if (typeof url !== 'string' || url.length > MAX_URL_LENGTH || !ICE_URL.test(url)) {
        throw new ProtocolError(`${path}.urls`, `${path}.urls[${j}] must be a stun:, stuns:, turn: or turns: URL`)
      }
    })
    const server: IceServer = { urls: raw as string | string[] }
    const username = optional(entry, 'username', () => string(entry, 'username', `${path}.username`, 512))
    const credential = optional(entry, 'credential', () => string(entry, 'credential', `${path}.credential`, 512))
    if (username !== undefined) server.username = username
    if (credential !== undefined) server.credential = credential
    return server
  })
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

/** `maxBytes`: MAX_CLIENT_MESSAGE_BYTES, or MAX_PRE_HELLO_BYTES before the sender is authenticated. */
export function parseClientMessage(text: string | Uint8Array, maxBytes: number = MAX_CLIENT_MESSAGE_BYTES): ClientMessage {
  const o = parseObject(text, maxBytes)
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
      const welcome: WelcomeMessage = {
        type,
        self: peerEntry(o['self'], 'self'),
        network: { ipv4Prefix: string(network, 'ipv4Prefix', 'network.ipv4Prefix', 64), ipv6Prefix: string(network, 'ipv6Prefix', 'network.ipv6Prefix', 64) },
        peers: peerList(o, 'peers'),
        more: o['more'] === undefined ? 0 : count(o, 'more'),
      }
      const ice = optional(o, 'iceServers', () => iceServers(o, 'iceServers'))
      if (ice !== undefined) welcome.iceServers = ice
      const relayMap = optional(o, 'relayMap', () => parseRelayMap(o['relayMap']))
      if (relayMap !== undefined) welcome.relayMap = relayMap
      return welcome
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
    case 'keepalive':
      return { type }
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
