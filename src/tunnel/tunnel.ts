// The WireGuard device: one local static key, many peers, an index table routing received
// messages to sessions and handshakes. Sans-IO: every call takes `now` and returns what to send.

import { equalBytes, randomBytes, toHex } from '../crypto/index.ts'
import { CookieChecker } from './cookie.ts'
import { HandshakeRateLimiter } from './ratelimiter.ts'
import { authenticateInitiation, consumeResponse, localIdentity, openInitiation, remoteIdentity, type LocalIdentity } from './handshake.ts'
import {
  COOKIE_REPLY_LENGTH,
  INITIATION_LENGTH,
  INITIATION_SENDER,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  MessageFormatError,
  messageType,
  readU32,
  RESPONSE_LENGTH,
  RESPONSE_RECEIVER,
  RESPONSE_SENDER,
  TRANSPORT_MIN_LENGTH,
  TRANSPORT_RECEIVER,
} from './messages.ts'
import { Peer, type TunnelContext } from './peer.ts'
import type { Session } from './session.ts'
import { Tai64nClock } from './timestamp.ts'
import { earliest } from './timers.ts'
import {
  countDrop,
  MessageDropped,
  UnknownPeerError,
  type DropCounts,
  type DropReason,
  type PeerId,
  type PeerOptions,
  type PeerStats,
  type ReceiveResult,
  type TunnelOptions,
} from './types.ts'

const DEFAULT_QUEUE_LIMIT = 128
// Local copies for the per-packet path (imported bindings are getter calls under ESM→CJS interop).
const TRANSPORT_MIN = TRANSPORT_MIN_LENGTH
const RECEIVER_OFFSET = TRANSPORT_RECEIVER

interface IndexEntry {
  peer: Peer
  /** Undefined while the index names a pending initiation of ours. */
  session: Session | undefined
}

export class Tunnel {
  readonly publicKey: Uint8Array
  /** Whether the tunnel is under load (then initiations/responses without a valid MAC2 get cookie replies). The driver sets it. */
  underLoad = false
  /** Drops not attributable to a peer. */
  readonly drops: DropCounts = {}

  private readonly local: LocalIdentity
  private readonly peers = new Map<PeerId, Peer>()
  private readonly peersByKey = new Map<string, Peer>()
  private readonly indices = new Map<number, IndexEntry>()
  private readonly checker: CookieChecker
  private readonly limiter = new HandshakeRateLimiter()
  private readonly context: TunnelContext
  private nextPeerId = 1

  constructor(options: TunnelOptions) {
    const random = options.random ?? randomBytes
    const queueLimit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT
    if (!Number.isInteger(queueLimit) || queueLimit < 1) throw new RangeError(`queueLimit must be a positive integer, got ${queueLimit}`)
    const wallClockOffset = options.wallClockOffset
    if (wallClockOffset !== undefined && !Number.isFinite(wallClockOffset)) {
      throw new RangeError(`wallClockOffset must be a finite number of ms, got ${wallClockOffset}`)
    }
    this.local = localIdentity(options.privateKey)
    this.publicKey = this.local.publicKey.slice()
    this.checker = new CookieChecker(this.local.publicKey, random)
    const indices = this.indices
    this.context = {
      local: this.local,
      random,
      clock: new Tai64nClock(wallClockOffset),
      queueLimit,
      freshIndex() {
        for (;;) {
          const index = readU32(random(4), 0)
          if (!indices.has(index)) return index
        }
      },
      bindIndex(index, peer, session) {
        indices.set(index, { peer, session })
      },
      releaseIndex(index) {
        indices.delete(index)
      },
    }
  }

  addPeer(options: PeerOptions): PeerId {
    const { publicKey, presharedKey, persistentKeepalive = 0 } = options
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new RangeError('peer public key must be a 32-byte Uint8Array')
    if (equalBytes(publicKey, this.local.publicKey)) throw new RangeError('a tunnel cannot add its own public key as a peer')
    const keyHex = toHex(publicKey)
    if (this.peersByKey.has(keyHex)) throw new RangeError(`peer ${keyHex.slice(0, 16)}… is already in this tunnel`)
    if (!Number.isFinite(persistentKeepalive) || persistentKeepalive < 0 || persistentKeepalive > 65535) {
      throw new RangeError(`persistentKeepalive must be 0..65535 seconds, got ${persistentKeepalive}`)
    }
    const remote = remoteIdentity(this.local, publicKey, presharedKey)
    const id = this.nextPeerId++
    const peer = new Peer(id, remote, persistentKeepalive * 1000, this.context)
    this.peers.set(id, peer)
    this.peersByKey.set(keyHex, peer)
    return id
  }

  removePeer(peer: PeerId): void {
    const found = this.peers.get(peer)
    if (found === undefined) return
    found.destroy()
    this.peers.delete(peer)
    this.peersByKey.delete(found.keyHex)
  }

  peerByKey(publicKey: Uint8Array): PeerId | undefined {
    return this.peersByKey.get(toHex(publicKey))?.id
  }

  /** Encrypts an IP packet for `peer`. Returns the WireGuard messages to send to the peer's endpoint now. */
  send(peer: PeerId, packet: Uint8Array, now: number): Uint8Array[] {
    return this.peer(peer).send(packet, now)
  }

  /**
   * Starts a handshake with `peer` now unless it has a session that can send or one is under way,
   * so the first packet does not wait for it. Returns the initiation to send (or nothing).
   */
  handshake(peer: PeerId, now: number): Uint8Array[] {
    const out: Uint8Array[] = []
    this.peer(peer).prepare(now, out)
    return out
  }

  /** Handles one received WireGuard datagram. `source` identifies where it came from and keys cookie MAC2. */
  receive(datagram: Uint8Array, now: number, source?: Uint8Array): ReceiveResult {
    // Transport data first and without a call: it is nearly every datagram.
    if (datagram.length >= TRANSPORT_MIN && datagram[0] === 4 && (datagram[1]! | datagram[2]! | datagram[3]!) === 0) {
      return this.receiveTransport(datagram, now)
    }
    const type = messageType(datagram)
    if (type === MESSAGE_TRANSPORT) return this.drop('malformed')
    if (type === undefined) return this.drop(datagram.length < 4 ? 'malformed' : 'unknown-type')
    try {
      if (type === MESSAGE_INITIATION) return this.receiveInitiation(datagram, now, source)
      if (type === MESSAGE_RESPONSE) return this.receiveResponse(datagram, now, source)
      if (type === MESSAGE_COOKIE_REPLY) return this.receiveCookieReply(datagram, now)
    } catch (error) {
      if (error instanceof MessageFormatError) return this.drop('malformed')
      throw error
    }
    return this.drop('unknown-type')
  }

  private receiveTransport(datagram: Uint8Array, now: number): ReceiveResult {
    const i = RECEIVER_OFFSET
    const entry = this.indices.get((datagram[i]! | (datagram[i + 1]! << 8) | (datagram[i + 2]! << 16) | (datagram[i + 3]! << 24)) >>> 0)
    if (entry === undefined || entry.session === undefined) return this.drop('unknown-index')
    return entry.peer.receiveTransport(entry.session, datagram, now)
  }

  private receiveInitiation(datagram: Uint8Array, now: number, source: Uint8Array | undefined): ReceiveResult {
    if (datagram.length !== INITIATION_LENGTH) return this.drop('malformed')
    const underLoad = this.admit(datagram, now, source, readU32(datagram, INITIATION_SENDER))
    if (underLoad) return underLoad
    let claim
    try {
      claim = openInitiation(this.local, datagram)
    } catch (error) {
      if (error instanceof MessageDropped) return this.drop(error.reason)
      throw error
    }
    const peer = this.peersByKey.get(toHex(claim.remoteStatic))
    if (peer === undefined) return this.drop('unknown-peer')
    try {
      const consumed = authenticateInitiation(claim, peer.remote)
      const response = peer.respond(consumed, datagram.length, now)
      return { peer: peer.id, packets: [], replies: [response] }
    } catch (error) {
      if (error instanceof MessageDropped) return this.dropFor(peer, error.reason)
      throw error
    }
  }

  private receiveResponse(datagram: Uint8Array, now: number, source: Uint8Array | undefined): ReceiveResult {
    if (datagram.length !== RESPONSE_LENGTH) return this.drop('malformed')
    const underLoad = this.admit(datagram, now, source, readU32(datagram, RESPONSE_SENDER))
    if (underLoad) return underLoad
    const receiver = readU32(datagram, RESPONSE_RECEIVER)
    const entry = this.indices.get(receiver)
    const peer = entry?.peer
    if (peer === undefined || entry!.session !== undefined || peer.initiation?.localIndex !== receiver) return this.drop('unknown-index')
    try {
      const { keys, remoteIndex } = consumeResponse(this.local, peer.remote, peer.initiation, datagram)
      return { peer: peer.id, packets: [], replies: peer.completeHandshake(keys, remoteIndex, datagram.length, now) }
    } catch (error) {
      if (error instanceof MessageDropped) return this.dropFor(peer, error.reason)
      throw error
    }
  }

  private receiveCookieReply(datagram: Uint8Array, now: number): ReceiveResult {
    if (datagram.length !== COOKIE_REPLY_LENGTH) return this.drop('malformed')
    const peer = this.indices.get(readU32(datagram, 4))?.peer
    if (peer === undefined) return this.drop('unknown-index')
    if (!peer.cookies.consumeReply(datagram, now)) return this.dropFor(peer, 'decrypt-failed')
    // No `peer`: anyone who saw our MAC1 can make a valid reply, so it must not move the endpoint.
    return { packets: [], replies: [] }
  }

  /**
   * MAC1 always; under load also a per-source rate limit (covering the cookie replies as well as
   * the handshakes that carry MAC2) and MAC2, answering a missing or stale one with a cookie reply.
   */
  private admit(datagram: Uint8Array, now: number, source: Uint8Array | undefined, senderIndex: number): ReceiveResult | undefined {
    if (!this.checker.checkMac1(datagram)) return this.drop('bad-mac1')
    if (!this.underLoad) return undefined
    if (!this.limiter.allow(source === undefined ? '' : sourceKey(source), now)) return this.drop('rate-limited')
    if (this.checker.checkMac2(datagram, source, now)) return undefined
    countDrop(this.drops, 'bad-mac2')
    return { packets: [], replies: [this.checker.createReply(datagram, senderIndex, source, now)], dropped: 'bad-mac2' }
  }

  private drop(reason: DropReason): ReceiveResult {
    countDrop(this.drops, reason)
    return { packets: [], replies: [], dropped: reason }
  }

  private dropFor(peer: Peer, reason: DropReason): ReceiveResult {
    peer.countDrop(reason)
    return { packets: [], replies: [], dropped: reason }
  }

  /** Runs due timers: handshake retries, rekeys, keepalives (passive and persistent), expiry. */
  poll(now: number): Array<{ peer: PeerId; message: Uint8Array }> {
    const out: Array<{ peer: PeerId; message: Uint8Array }> = []
    const messages: Uint8Array[] = []
    for (const peer of this.peers.values()) {
      peer.poll(now, messages)
      for (const message of messages) out.push({ peer: peer.id, message })
      messages.length = 0
    }
    return out
  }

  /** Soonest deadline over all peers, or undefined when nothing is scheduled. */
  nextEvent(): number | undefined {
    let soonest: number | undefined
    for (const peer of this.peers.values()) soonest = earliest(soonest, peer.nextEvent())
    return soonest
  }

  stats(peer: PeerId): PeerStats {
    return this.peer(peer).stats()
  }

  private peer(id: PeerId): Peer {
    const peer = this.peers.get(id)
    if (peer === undefined) throw new UnknownPeerError(id)
    return peer
  }
}

/** A Map key for an endpoint's bytes (an address and port, or a DERP node key), without hex work. */
function sourceKey(source: Uint8Array): string {
  return String.fromCharCode.apply(null, source as unknown as number[])
}

/** Test hook: the internal state of one peer (sessions, queue), for scenarios that cannot be reached by traffic alone. */
export function peerInternalsForTesting(tunnel: Tunnel, peer: PeerId): Peer {
  return tunnel['peer'](peer)
}
