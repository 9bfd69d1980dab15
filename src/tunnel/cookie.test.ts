import { describe, expect, it } from 'vitest'
import { hash, mac, publicKeyOf, xchachaOpen } from '../crypto/index.ts'
import { CookieChecker, CookieJar, cookieKeyFor } from './cookie.ts'
import { decodeCookieReply, encodeInitiation } from './messages.ts'
import { COOKIE_REFRESH_TIME, COOKIE_VALIDITY } from './timers.ts'
import { privateKeyFrom, seededRandom } from './testing.ts'

const responderKey = publicKeyOf(privateKeyFrom(9))
const source = new Uint8Array([10, 0, 0, 1, 0x12, 0x34])

function initiation(sender: number): Uint8Array {
  return encodeInitiation({ sender, ephemeral: new Uint8Array(32).fill(sender), encryptedStatic: new Uint8Array(48), encryptedTimestamp: new Uint8Array(28) })
}

describe('MAC1, MAC2 and cookie replies', () => {
  it('MAC1 is keyed BLAKE2s-128 over everything before it, under HASH("mac1----" ‖ receiver key)', () => {
    const message = initiation(1)
    new CookieJar(responderKey).stamp(message, 0)
    const key = hash(new TextEncoder().encode('mac1----'), responderKey)
    expect(message.subarray(116, 132)).toEqual(mac(key, message.subarray(0, 116)))
    expect(message.subarray(132).every((b) => b === 0)).toBe(true)
    const checker = new CookieChecker(responderKey, seededRandom(1))
    expect(checker.checkMac1(message)).toBe(true)
    message[4]! ^= 1
    expect(checker.checkMac1(message)).toBe(false)
  })

  it('the cookie reply carries MAC(secret, source) sealed under HASH("cookie--" ‖ responder key) with MAC1 as AAD', () => {
    const checker = new CookieChecker(responderKey, seededRandom(2))
    const jar = new CookieJar(responderKey)
    const message = initiation(0x01020304)
    jar.stamp(message, 0)
    const reply = checker.createReply(message, 0x01020304, source, 0)
    const fields = decodeCookieReply(reply)
    expect(fields.receiver).toBe(0x01020304)
    const cookie = xchachaOpen(cookieKeyFor(responderKey), fields.nonce, fields.encryptedCookie, message.subarray(116, 132))
    expect(cookie?.length).toBe(16)
    expect(jar.consumeReply(reply, 1)).toBe(true)
    // The next message carries MAC2 = MAC(cookie, everything before MAC2), valid only from that source.
    const retry = initiation(7)
    jar.stamp(retry, 2)
    expect(retry.subarray(132)).toEqual(mac(cookie!, retry.subarray(0, 132)))
    expect(checker.checkMac2(retry, source, 3)).toBe(true)
    expect(checker.checkMac2(retry, new Uint8Array([10, 0, 0, 2, 0x12, 0x34]), 3)).toBe(false)
  })

  it('refuses a cookie reply that does not answer our last MAC1', () => {
    const checker = new CookieChecker(responderKey, seededRandom(3))
    const jar = new CookieJar(responderKey)
    const sent = initiation(1)
    jar.stamp(sent, 0)
    const other = initiation(2)
    new CookieJar(responderKey).stamp(other, 0)
    expect(jar.consumeReply(checker.createReply(other, 2, source, 0), 0)).toBe(false)
    expect(jar.hasCookie(0)).toBe(false)
    expect(new CookieJar(responderKey).consumeReply(checker.createReply(sent, 1, source, 0), 0)).toBe(false) // never sent anything
  })

  it('rotates the secret every 120 s, and the initiator stops using a cookie before that', () => {
    const checker = new CookieChecker(responderKey, seededRandom(4))
    const jar = new CookieJar(responderKey)
    const first = initiation(1)
    jar.stamp(first, 0)
    jar.consumeReply(checker.createReply(first, 1, source, 0), 0)
    expect(jar.hasCookie(COOKIE_VALIDITY - 1)).toBe(true)
    expect(jar.hasCookie(COOKIE_VALIDITY)).toBe(false)
    const withMac2 = initiation(3)
    jar.stamp(withMac2, 1000)
    expect(checker.checkMac2(withMac2, source, COOKIE_REFRESH_TIME - 1)).toBe(true)
    expect(checker.checkMac2(withMac2, source, COOKIE_REFRESH_TIME)).toBe(false)
    // After rotation a new reply makes a different cookie.
    const again = initiation(4)
    jar.stamp(again, COOKIE_REFRESH_TIME)
    jar.consumeReply(checker.createReply(again, 4, source, COOKIE_REFRESH_TIME), COOKIE_REFRESH_TIME)
    const fresh = initiation(5)
    jar.stamp(fresh, COOKIE_REFRESH_TIME + 1)
    expect(fresh.subarray(132)).not.toEqual(withMac2.subarray(132))
    expect(checker.checkMac2(fresh, source, COOKIE_REFRESH_TIME + 2)).toBe(true)
  })
})
