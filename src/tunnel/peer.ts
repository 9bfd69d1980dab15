// One remote peer: its sessions (current / previous / next), the handshake it is running, the
// packets waiting for that handshake, and the timers of whitepaper §6 that act on it.

import { toHex } from '../crypto/index.ts'
import { CookieJar } from './cookie.ts'
import {
  createInitiation,
  createResponse,
  ephemeralKeyPair,
  zeroInitiatorState,
  type ConsumedInitiation,
  type InitiatorState,
  type LocalIdentity,
  type RemoteIdentity,
  type TransportKeys,
} from './handshake.ts'
import { Session } from './session.ts'
import type { Tai64nClock } from './timestamp.ts'
import { isAfter } from './timestamp.ts'
import { KEEPALIVE_TIMEOUT, NEW_HANDSHAKE_AFTER_SILENCE, REKEY_ATTEMPT_TIME, REKEY_ON_RECEIVE_AGE, REKEY_TIMEOUT, earliest, rekeyJitter } from './timers.ts'
import { countDrop, MessageDropped, type DropCounts, type DropReason, type PeerId, type PeerStats, type ReceiveResult } from './types.ts'

const KEEPALIVE = new Uint8Array(0)
// Local copies for the per-packet path (imported bindings are getter calls under ESM→CJS interop).
const PASSIVE_KEEPALIVE_AFTER = KEEPALIVE_TIMEOUT
const SILENCE_LIMIT = NEW_HANDSHAKE_AFTER_SILENCE
const REKEY_ON_RECEIVE = REKEY_ON_RECEIVE_AGE

/** What the tunnel shares with its peers: identity, randomness, the clock and the index table. */
export interface TunnelContext {
  readonly local: LocalIdentity
  readonly random: (length: number) => Uint8Array
  readonly clock: Tai64nClock
  readonly queueLimit: number
  /** A random index not in use; not yet registered. */
  freshIndex(): number
  bindIndex(index: number, peer: Peer, session: Session | undefined): void
  releaseIndex(index: number): void
}

export class Peer {
  current: Session | undefined
  previous: Session | undefined
  /** A session we answered as responder, unusable for sending until the initiator's first message confirms it. */
  next: Session | undefined
  initiation: InitiatorState | undefined
  /** Newest initiation timestamp accepted from this peer (replay protection for initiations). */
  lastTimestamp: Uint8Array | undefined

  /** Set exactly while a handshake attempt is in progress: when to (re)send the next initiation. */
  private handshakeDueAt: number | undefined
  private handshakeStartedAt = 0
  private lastHandshakeSentAt = Number.NEGATIVE_INFINITY
  /** When `current` was last replaced; tells a pending attempt that a session arrived some other way. */
  private lastSessionAt = Number.NEGATIVE_INFINITY
  private passiveKeepaliveAt: number | undefined
  private newHandshakeAt: number | undefined
  private persistentKeepaliveAt: number | undefined
  private queue: Uint8Array[] = []

  readonly cookies: CookieJar
  readonly keyHex: string
  private readonly statistics: { txBytes: number; rxBytes: number; txPackets: number; rxPackets: number; lastHandshake?: number; drops: DropCounts } = {
    txBytes: 0,
    rxBytes: 0,
    txPackets: 0,
    rxPackets: 0,
    drops: {},
  }

  constructor(
    readonly id: PeerId,
    readonly remote: RemoteIdentity,
    private readonly persistentKeepaliveMs: number,
    private readonly context: TunnelContext,
  ) {
    this.cookies = new CookieJar(remote.publicKey)
    this.keyHex = toHex(remote.publicKey)
    // Like wireguard-go, a peer with persistent keepalive announces itself at once (first poll).
    if (persistentKeepaliveMs > 0) this.persistentKeepaliveAt = 0
  }

  // ── sending ────────────────────────────────────────────────────────────────────────────────

  send(packet: Uint8Array, now: number): Uint8Array[] {
    const out: Uint8Array[] = []
    const session = this.current
    if (session !== undefined && session.canSend(now)) {
      out.push(this.sealOn(session, packet, now))
      if (session.wantsRekey(now)) this.requestHandshake(now, out)
    } else {
      this.enqueue(packet)
      this.requestHandshake(now, out)
    }
    return out
  }

  private sealOn(session: Session, packet: Uint8Array, now: number): Uint8Array {
    const message = session.seal(packet)
    this.statistics.txBytes += message.length
    if (packet.length > 0) {
      this.statistics.txPackets++
      if (this.newHandshakeAt === undefined) this.newHandshakeAt = now + SILENCE_LIMIT
    }
    this.sentAuthenticated(now)
    return message
  }

  private enqueue(packet: Uint8Array): void {
    if (this.queue.length >= this.context.queueLimit) {
      this.queue.shift()
      countDrop(this.statistics.drops, 'queue-overflow')
    }
    // The caller may reuse its buffer once send() returns; the queue outlives the call.
    this.queue.push(packet.slice())
  }

  private flushQueue(session: Session, now: number, out: Uint8Array[]): void {
    const queued = this.queue
    this.queue = []
    for (const packet of queued) out.push(this.sealOn(session, packet, now))
  }

  /**
   * Starts a handshake ahead of traffic (a peer that traffic is about to follow): nothing when a
   * session can send or a handshake is in progress. Otherwise as `send` with nothing queued; when
   * the response arrives `completeHandshake` confirms the keys with a keepalive (whitepaper 6.5).
   */
  prepare(now: number, out: Uint8Array[]): void {
    if (this.current?.canSend(now)) return
    this.requestHandshake(now, out)
  }

  /** Starts a handshake unless one is in progress; never sends initiations closer than RekeyTimeout apart. */
  requestHandshake(now: number, out: Uint8Array[]): void {
    if (this.handshakeDueAt !== undefined) return
    this.handshakeStartedAt = now
    const allowedAt = this.lastHandshakeSentAt + REKEY_TIMEOUT
    if (now >= allowedAt) out.push(this.initiate(now))
    else this.handshakeDueAt = allowedAt
  }

  private initiate(now: number): Uint8Array {
    this.dropInitiation()
    const index = this.context.freshIndex()
    const { message, state } = createInitiation(this.context.local, this.remote, index, this.context.clock.stamp(now), ephemeralKeyPair(this.context.random))
    this.context.bindIndex(index, this, undefined)
    this.initiation = state
    this.cookies.stamp(message, now)
    this.lastHandshakeSentAt = now
    this.handshakeDueAt = now + REKEY_TIMEOUT + rekeyJitter(this.context.random)
    this.statistics.txBytes += message.length
    this.sentAuthenticated(now)
    return message
  }

  private dropInitiation(): void {
    if (this.initiation === undefined) return
    this.context.releaseIndex(this.initiation.localIndex)
    zeroInitiatorState(this.initiation)
    this.initiation = undefined
  }

  // ── receiving handshakes ──────────────────────────────────────────────────────────────────

  /** Answers an authenticated initiation; throws MessageDropped (nothing changed) for a replayed one. */
  respond(consumed: ConsumedInitiation, initiationLength: number, now: number): Uint8Array {
    if (!isAfter(consumed.timestamp, this.lastTimestamp)) {
      throw new MessageDropped('stale-timestamp', 'initiation timestamp is not newer than the last accepted one')
    }
    const index = this.context.freshIndex()
    const { message, keys } = createResponse(this.remote, consumed, index, ephemeralKeyPair(this.context.random))
    this.lastTimestamp = consumed.timestamp
    const session = new Session(keys, index, consumed.remoteIndex, false, now)
    this.context.bindIndex(index, this, session)
    // Responder: the new session waits in `next`; `previous` goes (wireguard-go's rule).
    this.dropSession(this.next)
    this.next = session
    this.dropSession(this.previous)
    this.previous = undefined
    this.cookies.stamp(message, now)
    this.lastHandshakeSentAt = now
    this.statistics.lastHandshake = now
    this.statistics.rxBytes += initiationLength
    this.statistics.txBytes += message.length
    this.receivedAuthenticated(now)
    this.sentAuthenticated(now)
    return message
  }

  /** Installs the session from a response to our initiation and sends what waited for it (or a keepalive, to confirm the keys). */
  completeHandshake(keys: TransportKeys, remoteIndex: number, responseLength: number, now: number): Uint8Array[] {
    const state = this.initiation!
    const session = new Session(keys, state.localIndex, remoteIndex, true, now)
    this.context.bindIndex(state.localIndex, this, session)
    zeroInitiatorState(state)
    this.initiation = undefined
    // Initiator: an unconfirmed `next` may still receive the peer's traffic, so it becomes `previous`
    // and the old current goes; otherwise the old current becomes `previous`.
    if (this.next !== undefined) {
      this.dropSession(this.previous)
      this.previous = this.next
      this.next = undefined
      this.dropSession(this.current)
    } else {
      this.dropSession(this.previous)
      this.previous = this.current
    }
    this.current = session
    this.lastSessionAt = now
    this.handshakeDueAt = undefined
    this.statistics.lastHandshake = now
    this.statistics.rxBytes += responseLength
    this.receivedAuthenticated(now)
    const out: Uint8Array[] = []
    if (this.queue.length === 0) out.push(this.sealOn(session, KEEPALIVE, now))
    else this.flushQueue(session, now, out)
    return out
  }

  // ── receiving data ────────────────────────────────────────────────────────────────────────

  receiveTransport(session: Session, message: Uint8Array, now: number): ReceiveResult {
    if (!session.canReceive(now)) return this.dropped('expired-session')
    const opened = session.open(message)
    if (typeof opened === 'string') return this.dropped(opened)
    this.statistics.rxBytes += message.length
    const result: ReceiveResult = { peer: this.id, packets: [], replies: [] }
    if (session === this.next) {
      // Key confirmation: the initiator used the session, so we may send on it too.
      this.dropSession(this.previous)
      this.previous = this.current
      this.current = session
      this.next = undefined
      this.lastSessionAt = now
    }
    this.receivedAuthenticated(now)
    if (opened.length > 0) {
      const length = ipPacketLength(opened)
      if (length === undefined) {
        // Authentic but not an IP packet: the session state above still advanced, as in wireguard-go.
        countDrop(this.statistics.drops, 'malformed')
        result.dropped = 'malformed'
      } else {
        result.packets.push(length === opened.length ? opened : opened.subarray(0, length))
        this.statistics.rxPackets++
        if (this.passiveKeepaliveAt === undefined) this.passiveKeepaliveAt = now + PASSIVE_KEEPALIVE_AFTER
      }
    }
    if (this.queue.length > 0 && session === this.current && session.canSend(now)) this.flushQueue(session, now, result.replies)
    if (session.isInitiator && now - session.createdAt >= REKEY_ON_RECEIVE && session === this.current) {
      this.requestHandshake(now, result.replies)
    }
    return result
  }

  /** A datagram that did not authenticate: counted here, and it names no peer. */
  private dropped(reason: DropReason): ReceiveResult {
    countDrop(this.statistics.drops, reason)
    return { packets: [], replies: [], dropped: reason }
  }

  countDrop(reason: DropReason): void {
    countDrop(this.statistics.drops, reason)
  }

  // ── timers ────────────────────────────────────────────────────────────────────────────────

  private sentAuthenticated(now: number): void {
    this.passiveKeepaliveAt = undefined
    if (this.persistentKeepaliveMs > 0) this.persistentKeepaliveAt = now + this.persistentKeepaliveMs
  }

  private receivedAuthenticated(now: number): void {
    this.newHandshakeAt = undefined
    if (this.persistentKeepaliveMs > 0) this.persistentKeepaliveAt = now + this.persistentKeepaliveMs
  }

  /** Runs every timer that is due at `now`, appending what to send. */
  poll(now: number, out: Uint8Array[]): void {
    this.expireSessions(now)
    if (this.handshakeDueAt !== undefined && now >= this.handshakeDueAt) {
      if (this.lastSessionAt >= this.handshakeStartedAt) {
        // A session arrived another way (we answered the peer's own initiation): stop trying.
        this.handshakeDueAt = undefined
        this.dropInitiation()
      } else if (now - this.handshakeStartedAt >= REKEY_ATTEMPT_TIME) {
        this.giveUp()
      } else {
        out.push(this.initiate(now))
      }
    }
    if (this.newHandshakeAt !== undefined && now >= this.newHandshakeAt) {
      this.newHandshakeAt = undefined
      this.requestHandshake(now, out)
    }
    if (this.passiveKeepaliveAt !== undefined && now >= this.passiveKeepaliveAt) {
      this.passiveKeepaliveAt = undefined
      if (this.current?.canSend(now)) out.push(this.sealOn(this.current, KEEPALIVE, now))
    }
    if (this.persistentKeepaliveAt !== undefined && now >= this.persistentKeepaliveAt) {
      this.persistentKeepaliveAt = now + this.persistentKeepaliveMs
      if (this.current?.canSend(now)) out.push(this.sealOn(this.current, KEEPALIVE, now))
      else this.requestHandshake(now, out)
    }
  }

  private giveUp(): void {
    this.handshakeDueAt = undefined
    this.dropInitiation()
    if (this.queue.length > 0) countDrop(this.statistics.drops, 'handshake-failed', this.queue.length)
    this.queue = []
  }

  private expireSessions(now: number): void {
    if (this.current !== undefined && now >= this.current.expiresAt) this.current = this.dropSession(this.current)
    if (this.previous !== undefined && now >= this.previous.expiresAt) this.previous = this.dropSession(this.previous)
    if (this.next !== undefined && now >= this.next.expiresAt) this.next = this.dropSession(this.next)
  }

  nextEvent(): number | undefined {
    let soonest = earliest(this.handshakeDueAt, this.newHandshakeAt)
    soonest = earliest(soonest, this.passiveKeepaliveAt)
    soonest = earliest(soonest, this.persistentKeepaliveAt)
    soonest = earliest(soonest, this.current?.expiresAt)
    soonest = earliest(soonest, this.previous?.expiresAt)
    return earliest(soonest, this.next?.expiresAt)
  }

  /** Zeroes a session's keys and frees its index; returns undefined for assignment. */
  private dropSession(session: Session | undefined): undefined {
    if (session === undefined) return undefined
    this.context.releaseIndex(session.localIndex)
    session.zero()
    return undefined
  }

  /** Forgets every secret (peer removed). */
  destroy(): void {
    this.dropInitiation()
    this.current = this.dropSession(this.current)
    this.previous = this.dropSession(this.previous)
    this.next = this.dropSession(this.next)
    this.queue = []
    this.handshakeDueAt = undefined
    this.newHandshakeAt = undefined
    this.passiveKeepaliveAt = undefined
    this.persistentKeepaliveAt = undefined
  }

  stats(): PeerStats {
    const s = this.statistics
    const stats: PeerStats = { txBytes: s.txBytes, rxBytes: s.rxBytes, txPackets: s.txPackets, rxPackets: s.rxPackets, drops: { ...s.drops } }
    if (s.lastHandshake !== undefined) stats.lastHandshake = s.lastHandshake
    return stats
  }

  get queuedPackets(): number {
    return this.queue.length
  }
}

/**
 * The length of the IP packet at the start of a decrypted payload (the rest is WireGuard's zero
 * padding), or undefined when it is not a whole IPv4/IPv6 packet.
 */
export function ipPacketLength(payload: Uint8Array): number | undefined {
  const version = payload[0]! >> 4
  let length: number
  if (version === 4) {
    if (payload.length < 20) return undefined
    length = (payload[2]! << 8) | payload[3]!
    if (length < 20) return undefined
  } else if (version === 6) {
    if (payload.length < 40) return undefined
    length = 40 + ((payload[4]! << 8) | payload[5]!)
  } else {
    return undefined
  }
  return length <= payload.length ? length : undefined
}
