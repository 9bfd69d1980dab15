// One connection's worth of the coordination client, sans-IO: it answers the challenge with a
// proof made from the node private key (which never leaves this object's owner, the worker),
// keeps the peer map, and says when to ping and when the server has gone quiet.
import { boxKey, boxSeal, fromBase64, randomBytes, toBase64, type KeyPair } from '../crypto/index.ts'
import { ControlPlaneError } from './control-plane.ts'
import {
  type IceServer,
  type RelayMapEntry,
  CLOSE_CODE_BASE,
  PING_INTERVAL_MS,
  PROTOCOL_VERSION,
  ProtocolError,
  SILENCE_TIMEOUT_MS,
  discoKeyText,
  nodeKeyText,
  parseServerMessage,
  type ClientMessage,
  type HelloMessage,
  type HomeRelay,
  type NetworkInfo,
  type PeerEntry,
  type Proof,
} from './protocol.ts'

/** The server must answer a ping (or say anything) within this long, or the connection is dead. */
export const PONG_TIMEOUT_MS = 10_000
/** From socket open to welcome. */
export const WELCOME_TIMEOUT_MS = 15_000

/**
 * Statuses after which reconnecting cannot help: the key or request is wrong (400, 401, 403, 404)
 * or another connection of this node took over (409, e.g. the same key in a second tab).
 */
const FATAL_STATUSES = new Set([400, 401, 403, 404, 409, 410])

/** A ControlPlaneError whose `fatal` follows from the coordination status. */
export class CoordinationClientError extends ControlPlaneError {
  override name = 'CoordinationClientError'
  constructor(status: number, message: string) {
    super(status, message, FATAL_STATUSES.has(status))
  }
}

/** The error for a WebSocket close code and reason (4000 + status for the server's refusals). */
export function errorFromClose(code: number, reason: string): CoordinationClientError {
  if (code >= CLOSE_CODE_BASE && code < CLOSE_CODE_BASE + 1000) {
    return new CoordinationClientError(code - CLOSE_CODE_BASE, reason || `closed with code ${code}`)
  }
  return new CoordinationClientError(0, `connection closed (code ${code}${reason ? `: ${reason}` : ''})`)
}

export interface SessionConfig {
  nodeKeyPair: KeyPair
  discoPublicKey: Uint8Array
  hostname: string
  authKey?: string | undefined
  homeRelay?: HomeRelay | null | undefined
  /** Set when rotating keys: the node's previous key pair proves the node is the same. */
  previousNodeKeyPair?: KeyPair | undefined
}

export type SessionOutput =
  | { kind: 'send'; message: ClientMessage }
  | { kind: 'welcome'; self: PeerEntry; network: NetworkInfo; peers: PeerEntry[]; iceServers?: IceServer[]; relayMap?: RelayMapEntry }
  | { kind: 'peers'; upsert: PeerEntry[]; remove: string[] }
  | { kind: 'self'; self: PeerEntry }
  /** The server refused one request but keeps the session (e.g. 429 too many updates). */
  | { kind: 'server-error'; error: CoordinationClientError }
  /** The server refused us or stopped answering; the driver closes the socket. */
  | { kind: 'failed'; error: CoordinationClientError }

/** `loading`: welcomed, receiving the rest of the initial peer map (`welcome.more` chunks). */
export type SessionPhase = 'challenge' | 'loading' | 'ready' | 'failed'

function proofFor(privateKey: Uint8Array, serverKey: Uint8Array, challenge: Uint8Array): Proof {
  const nonce = randomBytes(24)
  return { nonce: toBase64(nonce), box: toBase64(boxSeal(boxKey(privateKey, serverKey), nonce, challenge)) }
}

export class CoordinationSession {
  phase: SessionPhase = 'challenge'
  private readonly config: SessionConfig
  private readonly openedAt: number
  private lastHeard: number
  private lastPingSent: number
  private pingId = 0
  private awaitingPong = false
  /** While loading: the welcome being completed and how many chunks are still to come. */
  private loading: { self: PeerEntry; network: NetworkInfo; peers: PeerEntry[]; more: number; iceServers: IceServer[] | undefined; relayMap: RelayMapEntry | undefined } | undefined

  constructor(config: SessionConfig, now: number) {
    this.config = config
    this.openedAt = now
    this.lastHeard = now
    this.lastPingSent = now
  }

  receive(text: string | Uint8Array, now: number): SessionOutput[] {
    if (this.phase === 'failed') return []
    this.lastHeard = now
    let message
    try {
      message = parseServerMessage(text)
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error
      return this.fail(new CoordinationClientError(0, `server sent a malformed message: ${error.message}`))
    }
    if (message.type === 'error') {
      const error = new CoordinationClientError(message.status, message.error)
      return message.closing || this.phase === 'challenge' ? this.fail(error) : [{ kind: 'server-error', error }]
    }
    if (this.phase === 'challenge') {
      if (message.type === 'challenge') return [{ kind: 'send', message: this.hello(fromBase64(message.serverKey), fromBase64(message.challenge)) }]
      if (message.type === 'welcome') {
        this.lastPingSent = now
        this.phase = 'loading'
        this.loading = { self: message.self, network: message.network, peers: message.peers, more: message.more, iceServers: message.iceServers, relayMap: message.relayMap }
        return this.loaded()
      }
      return this.fail(new CoordinationClientError(0, `server sent ${message.type} before welcome`))
    }
    if (this.phase === 'loading') {
      // The server queues every chunk of the initial map right after the welcome, before any change.
      if (message.type === 'keepalive' || message.type === 'pong') return []
      if (message.type !== 'peers' || message.remove.length > 0) return this.fail(new CoordinationClientError(0, `server sent ${message.type} while sending the initial peer map`))
      const loading = this.loading!
      for (const peer of message.upsert) loading.peers.push(peer)
      loading.more--
      return this.loaded()
    }
    switch (message.type) {
      case 'peers':
        return [{ kind: 'peers', upsert: message.upsert, remove: message.remove }]
      case 'self':
        return [{ kind: 'self', self: message.self }]
      case 'pong':
        if (message.id === this.pingId) this.awaitingPong = false
        return []
      case 'keepalive':
        return []
      default:
        return this.fail(new CoordinationClientError(0, `server sent an unexpected ${message.type}`))
    }
  }

  /** The initial map is complete once every announced chunk has arrived. */
  private loaded(): SessionOutput[] {
    const loading = this.loading!
    if (loading.more > 0) return []
    this.loading = undefined
    this.phase = 'ready'
    const welcome: SessionOutput = { kind: 'welcome', self: loading.self, network: loading.network, peers: loading.peers }
    if (loading.iceServers !== undefined) welcome.iceServers = loading.iceServers
    if (loading.relayMap !== undefined) welcome.relayMap = loading.relayMap
    return [welcome]
  }

  /** Reports a new home relay; sent now if the session is up, and in every later hello. */
  setHomeRelay(homeRelay: HomeRelay | null): SessionOutput[] {
    this.config.homeRelay = homeRelay
    return this.phase === 'ready' || this.phase === 'loading' ? [{ kind: 'send', message: { type: 'update', homeRelay } }] : []
  }

  setDiscoKey(discoPublicKey: Uint8Array): SessionOutput[] {
    this.config.discoPublicKey = discoPublicKey
    return this.phase === 'ready' || this.phase === 'loading' ? [{ kind: 'send', message: { type: 'update', discoKey: discoKeyText(discoPublicKey) } }] : []
  }

  poll(now: number): SessionOutput[] {
    if (this.phase === 'failed') return []
    if (this.phase === 'challenge') {
      if (now >= this.openedAt + WELCOME_TIMEOUT_MS) return this.fail(new CoordinationClientError(0, 'server did not welcome us in time'))
      return []
    }
    if (this.phase === 'loading') {
      if (now >= this.lastHeard + SILENCE_TIMEOUT_MS) return this.fail(new CoordinationClientError(0, 'server stopped sending the initial peer map'))
      return []
    }
    if (this.awaitingPong && now >= this.lastPingSent + PONG_TIMEOUT_MS) {
      return this.fail(new CoordinationClientError(0, 'server stopped answering pings'))
    }
    if (now >= this.lastHeard + SILENCE_TIMEOUT_MS) return this.fail(new CoordinationClientError(0, 'server sent nothing (not even a keepalive) for too long'))
    // On our own schedule, however busy the server is: the server times out a client it has not
    // heard from, and a stream of peer changes from it says nothing about whether it hears us.
    if (!this.awaitingPong && now >= this.lastPingSent + PING_INTERVAL_MS) {
      this.awaitingPong = true
      this.lastPingSent = now
      return [{ kind: 'send', message: { type: 'ping', id: ++this.pingId } }]
    }
    return []
  }

  nextEvent(): number | undefined {
    if (this.phase === 'failed') return undefined
    if (this.phase === 'challenge') return this.openedAt + WELCOME_TIMEOUT_MS
    const silence = this.lastHeard + SILENCE_TIMEOUT_MS
    if (this.phase === 'loading') return silence
    return Math.min(silence, this.awaitingPong ? this.lastPingSent + PONG_TIMEOUT_MS : this.lastPingSent + PING_INTERVAL_MS)
  }

  private fail(error: CoordinationClientError): SessionOutput[] {
    this.phase = 'failed'
    return [{ kind: 'failed', error }]
  }

  private hello(serverKey: Uint8Array, challenge: Uint8Array): HelloMessage {
    const { nodeKeyPair, discoPublicKey, hostname, authKey, homeRelay, previousNodeKeyPair } = this.config
    const hello: HelloMessage = {
      type: 'hello',
      version: PROTOCOL_VERSION,
      nodeKey: nodeKeyText(nodeKeyPair.publicKey),
      discoKey: discoKeyText(discoPublicKey),
      hostname,
      proof: proofFor(nodeKeyPair.privateKey, serverKey, challenge),
    }
    if (authKey !== undefined) hello.authKey = authKey
    if (homeRelay !== undefined) hello.homeRelay = homeRelay
    if (previousNodeKeyPair !== undefined) {
      hello.previousNodeKey = nodeKeyText(previousNodeKeyPair.publicKey)
      hello.previousProof = proofFor(previousNodeKeyPair.privateKey, serverKey, challenge)
    }
    return hello
  }
}
