import { describe, expect, it } from 'vitest'
import { aead, dh, hash, hmacBlake2s, kdf, mac, open, publicKeyOf, seal, toHex } from '../crypto/index.ts'
import { CookieJar, mac1KeyFor } from './cookie.ts'
import {
  authenticateInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  INITIAL_CHAINING_KEY,
  INITIAL_HASH,
  localIdentity,
  openInitiation,
  remoteIdentity,
  type EphemeralKeyPair,
} from './handshake.ts'
import { MessageDropped } from './types.ts'
import { encodeTai64n } from './timestamp.ts'
import { privateKeyFrom } from './testing.ts'

const utf8 = (s: string) => new TextEncoder().encode(s)
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
const ephemeral = (seed: number): EphemeralKeyPair => {
  const privateKey = privateKeyFrom(seed)
  return { privateKey, publicKey: publicKeyOf(privateKey) }
}

describe('Noise_IKpsk2 constants', () => {
  it('derives the published initial chaining key and hash', () => {
    // Same values appear in wireguard-go's and Linux's derivations of Ci/Hi.
    expect(toHex(INITIAL_CHAINING_KEY)).toBe('60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36')
    expect(toHex(INITIAL_HASH)).toBe('2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3')
  })

  it('KDF is HKDF over HMAC-BLAKE2s as the whitepaper defines it', () => {
    const key = new Uint8Array(32).fill(3)
    const input = utf8('input')
    const t0 = hmacBlake2s(key, input)
    const t1 = hmacBlake2s(t0, new Uint8Array([1]))
    const t2 = hmacBlake2s(t0, concat(t1, new Uint8Array([2])))
    expect(kdf(2, key, input)).toEqual([t1, t2])
  })
})

describe('handshake against a straight transcription of whitepaper §5.4', () => {
  const initiatorKey = privateKeyFrom(101)
  const responderKey = privateKeyFrom(202)
  const psk = new Uint8Array(32).fill(0x42)
  const initiator = localIdentity(initiatorKey)
  const responder = localIdentity(responderKey)
  const responderOnInitiator = remoteIdentity(initiator, responder.publicKey, psk)
  const initiatorOnResponder = remoteIdentity(responder, initiator.publicKey, psk)
  const timestamp = encodeTai64n(1_760_000_000n, 123_000_000n)
  const ei = ephemeral(303)
  const er = ephemeral(404)
  const zeroNonce = new Uint8Array(12)

  // The reference: every step written out from the whitepaper, using only primitives.
  const Si = initiator.publicKey
  const Sr = responder.publicKey
  let C = hash(utf8('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'))
  let H = hash(concat(hash(concat(C, utf8('WireGuard v1 zx2c4 Jason@zx2c4.com'))), Sr))
  C = kdf(1, C, ei.publicKey)[0]!
  H = hash(concat(H, ei.publicKey))
  let k: Uint8Array
  ;[C, k] = kdf(2, C, dh(ei.privateKey, Sr)) as [Uint8Array, Uint8Array]
  const encStatic = seal(aead, k, zeroNonce, Si, H)
  H = hash(concat(H, encStatic))
  ;[C, k] = kdf(2, C, dh(initiatorKey, Sr)) as [Uint8Array, Uint8Array]
  const encTimestamp = seal(aead, k, zeroNonce, timestamp, H)
  H = hash(concat(H, encTimestamp))
  const initiationBody = concat(new Uint8Array([1, 0, 0, 0, 0x78, 0x56, 0x34, 0x12]), ei.publicKey, encStatic, encTimestamp)
  const mac1 = mac(hash(concat(utf8('mac1----'), Sr)), initiationBody)
  const expectedInitiation = concat(initiationBody, mac1, new Uint8Array(16))

  C = kdf(1, C, er.publicKey)[0]!
  H = hash(concat(H, er.publicKey))
  C = kdf(1, C, dh(er.privateKey, ei.publicKey))[0]!
  C = kdf(1, C, dh(er.privateKey, Si))[0]!
  const [c3, tau, k3] = kdf(3, C, psk) as [Uint8Array, Uint8Array, Uint8Array]
  H = hash(concat(H, tau))
  const encNothing = seal(aead, k3, zeroNonce, new Uint8Array(0), H)
  const responseBody = concat(new Uint8Array([2, 0, 0, 0, 0xdd, 0xcc, 0xbb, 0xaa, 0x78, 0x56, 0x34, 0x12]), er.publicKey, encNothing)
  const responseMac1 = mac(hash(concat(utf8('mac1----'), Si)), responseBody)
  const expectedResponse = concat(responseBody, responseMac1, new Uint8Array(16))
  const [initiatorSend, initiatorReceive] = kdf(2, c3, new Uint8Array(0)) as [Uint8Array, Uint8Array]

  it('builds the initiation byte for byte', () => {
    const { message } = createInitiation(initiator, responderOnInitiator, 0x12345678, timestamp, ephemeral(303))
    new CookieJar(Sr).stamp(message, 0)
    expect(toHex(message)).toBe(toHex(expectedInitiation))
  })

  it('consumes the reference initiation, answers with the reference response, and both derive the reference keys', () => {
    const claim = openInitiation(responder, expectedInitiation)
    expect(claim.remoteStatic).toEqual(Si)
    const consumed = authenticateInitiation(claim, initiatorOnResponder)
    expect(consumed.timestamp).toEqual(timestamp)
    expect(consumed.remoteIndex).toBe(0x12345678)
    const { message, keys } = createResponse(initiatorOnResponder, consumed, 0xaabbccdd, ephemeral(404))
    new CookieJar(Si).stamp(message, 0)
    expect(toHex(message)).toBe(toHex(expectedResponse))
    expect(keys.receiveKey).toEqual(initiatorSend)
    expect(keys.sendKey).toEqual(initiatorReceive)

    const { state } = createInitiation(initiator, responderOnInitiator, 0x12345678, timestamp, ephemeral(303))
    const result = consumeResponse(initiator, responderOnInitiator, state, expectedResponse)
    expect(result.remoteIndex).toBe(0xaabbccdd)
    expect(result.keys.sendKey).toEqual(initiatorSend)
    expect(result.keys.receiveKey).toEqual(initiatorReceive)
    // Transport: the same key opens what the other side sealed with nonce = 4 zero bytes + LE counter.
    const nonce = new Uint8Array([0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0])
    expect(open(aead, keys.receiveKey, nonce, seal(aead, result.keys.sendKey, nonce, utf8('hi')))).toEqual(utf8('hi'))
  })

  it('a preshared-key mismatch fails at the response, not before', () => {
    const wrong = remoteIdentity(initiator, responder.publicKey, new Uint8Array(32).fill(1))
    const { state } = createInitiation(initiator, wrong, 0x12345678, timestamp, ephemeral(303))
    expect(() => consumeResponse(initiator, wrong, state, expectedResponse)).toThrow(MessageDropped)
    expect(() => consumeResponse(initiator, wrong, state, expectedResponse)).toThrow(/decrypt-failed/)
  })

  it('MAC1 key is HASH("mac1----" ‖ receiver public key)', () => {
    expect(mac1KeyFor(Sr)).toEqual(hash(concat(utf8('mac1----'), Sr)))
  })
})
