// MAC1/MAC2 and cookie replies (whitepaper §5.4.4, §5.4.7). MAC1 proves the sender knows our
// public key and is always checked; MAC2 proves the sender can receive at its source address and
// is only demanded while the tunnel is under load.

import { equalBytes, hash, mac, xchachaOpen, xchachaSeal } from '../crypto/index.ts'
import { COOKIE_NONCE_LENGTH, decodeCookieReply, encodeCookieReply, MAC_LENGTH, mac1Offset, mac2Offset } from './messages.ts'
import { COOKIE_REFRESH_TIME, COOKIE_VALIDITY } from './timers.ts'

const utf8 = new TextEncoder()
export const LABEL_MAC1 = utf8.encode('mac1----')
export const LABEL_COOKIE = utf8.encode('cookie--')
const NO_SOURCE = new Uint8Array(0)

export function mac1KeyFor(publicKey: Uint8Array): Uint8Array {
  return hash(LABEL_MAC1, publicKey)
}

export function cookieKeyFor(publicKey: Uint8Array): Uint8Array {
  return hash(LABEL_COOKIE, publicKey)
}

/** Responder side: one per tunnel, keyed by our own static public key. */
export class CookieChecker {
  private readonly mac1Key: Uint8Array
  private readonly cookieKey: Uint8Array
  private secret: Uint8Array | undefined
  private secretSetAt = 0

  constructor(
    localPublicKey: Uint8Array,
    private readonly random: (length: number) => Uint8Array,
  ) {
    this.mac1Key = mac1KeyFor(localPublicKey)
    this.cookieKey = cookieKeyFor(localPublicKey)
  }

  checkMac1(message: Uint8Array): boolean {
    const offset = mac1Offset(message)
    return equalBytes(mac(this.mac1Key, message.subarray(0, offset)), message.subarray(offset, offset + MAC_LENGTH))
  }

  checkMac2(message: Uint8Array, source: Uint8Array | undefined, now: number): boolean {
    if (this.secret === undefined || now - this.secretSetAt >= COOKIE_REFRESH_TIME) return false
    const offset = mac2Offset(message)
    const expected = mac(this.cookieFor(source), message.subarray(0, offset))
    return equalBytes(expected, message.subarray(offset, offset + MAC_LENGTH))
  }

  /** A cookie reply to `message` (an initiation or response whose sender index is `senderIndex`). */
  createReply(message: Uint8Array, senderIndex: number, source: Uint8Array | undefined, now: number): Uint8Array {
    if (this.secret === undefined || now - this.secretSetAt >= COOKIE_REFRESH_TIME) {
      this.secret?.fill(0)
      this.secret = this.random(32).slice(0, 32)
      this.secretSetAt = now
    }
    const nonce = this.random(COOKIE_NONCE_LENGTH).slice(0, COOKIE_NONCE_LENGTH)
    const offset = mac1Offset(message)
    const encryptedCookie = xchachaSeal(this.cookieKey, nonce, this.cookieFor(source), message.subarray(offset, offset + MAC_LENGTH))
    return encodeCookieReply({ receiver: senderIndex, nonce, encryptedCookie })
  }

  private cookieFor(source: Uint8Array | undefined): Uint8Array {
    return mac(this.secret!, source ?? NO_SOURCE)
  }
}

/** Initiator side: one per peer, keyed by the peer's static public key. */
export class CookieJar {
  private readonly mac1Key: Uint8Array
  private readonly cookieKey: Uint8Array
  private cookie: Uint8Array | undefined
  private cookieSetAt = 0
  /** MAC1 of the last handshake message we sent: a cookie reply must be bound to it. */
  private lastMac1: Uint8Array | undefined

  constructor(remotePublicKey: Uint8Array) {
    this.mac1Key = mac1KeyFor(remotePublicKey)
    this.cookieKey = cookieKeyFor(remotePublicKey)
  }

  /** Fills MAC1, and MAC2 when a fresh cookie is held, into a message about to be sent. */
  stamp(message: Uint8Array, now: number): void {
    const offset1 = mac1Offset(message)
    const mac1 = mac(this.mac1Key, message.subarray(0, offset1))
    message.set(mac1, offset1)
    this.lastMac1 = mac1
    const offset2 = mac2Offset(message)
    if (this.cookie !== undefined && now - this.cookieSetAt < COOKIE_VALIDITY) {
      message.set(mac(this.cookie, message.subarray(0, offset2)), offset2)
    } else {
      message.fill(0, offset2, offset2 + MAC_LENGTH)
    }
  }

  /** Takes the cookie from a reply; false (nothing changed) when it does not answer our last message. */
  consumeReply(datagram: Uint8Array, now: number): boolean {
    if (this.lastMac1 === undefined) return false
    const reply = decodeCookieReply(datagram)
    const cookie = xchachaOpen(this.cookieKey, reply.nonce, reply.encryptedCookie, this.lastMac1)
    if (!cookie || cookie.length !== MAC_LENGTH) return false
    this.cookie = cookie
    this.cookieSetAt = now
    this.lastMac1 = undefined
    return true
  }

  hasCookie(now: number): boolean {
    return this.cookie !== undefined && now - this.cookieSetAt < COOKIE_VALIDITY
  }
}
