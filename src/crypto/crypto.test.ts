import { describe, expect, it } from 'vitest'
import { nobleAead } from './aead-noble.ts'
import { nodeAead } from './aead-node.ts'
import { open, seal } from './aead.ts'
import { dh, hash, fromHex, toHex, boxKey, boxSeal, boxOpen, generateKeyPair, parseKey, formatNodeKey, toBase64, fromBase64 } from './index.ts'

describe('X25519 (RFC 7748 §5.2)', () => {
  it('matches the first scalar-multiplication vector', () => {
    const scalar = fromHex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4')
    const u = fromHex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c')
    expect(toHex(dh(scalar, u))).toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552')
  })
  it('rejects a low-order public key instead of returning zeros', () => {
    expect(() => dh(generateKeyPair().privateKey, new Uint8Array(32))).toThrow(/low-order|zero/)
  })
})

describe('BLAKE2s (RFC 7693 Appendix B)', () => {
  it('hashes "abc"', () => {
    expect(toHex(hash(new TextEncoder().encode('abc')))).toBe('508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982')
  })
})

describe.each([nobleAead, nodeAead])('ChaCha20-Poly1305 $name (RFC 7539 §2.8.2)', (aead) => {
  const key = fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f')
  const nonce = fromHex('070000004041424344454647')
  const aad = fromHex('50515253c0c1c2c3c4c5c6c7')
  const plaintext = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  )
  it('seals to the RFC ciphertext and tag', () => {
    const sealed = seal(aead, key, nonce, plaintext, aad)
    expect(toHex(sealed.subarray(0, 16))).toBe('d31a8d34648e60db7b86afbc53ef7ec2')
    expect(toHex(sealed.subarray(sealed.length - 16))).toBe('1ae10b594f09e26a7e902ecbd0600691')
    expect(open(aead, key, nonce, sealed, aad)).toEqual(plaintext)
  })
  it('refuses a flipped bit', () => {
    const sealed = seal(aead, key, nonce, plaintext, aad)
    sealed[5]! ^= 1
    expect(open(aead, key, nonce, sealed, aad)).toBeUndefined()
  })
})

describe('NaCl box', () => {
  it('opens what the other side sealed, with the same precomputed key', () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    const nonce = new Uint8Array(24).fill(7)
    const sealed = boxSeal(boxKey(a.privateKey, b.publicKey), nonce, new Uint8Array([1, 2, 3]))
    expect(boxOpen(boxKey(b.privateKey, a.publicKey), nonce, sealed)).toEqual(new Uint8Array([1, 2, 3]))
  })
})

describe('key formats', () => {
  it('accepts base64 and nodekey: hex for the same key', () => {
    const { publicKey } = generateKeyPair()
    expect(parseKey(toBase64(publicKey))).toEqual(publicKey)
    expect(parseKey(formatNodeKey(publicKey))).toEqual(publicKey)
    expect(fromBase64(toBase64(publicKey.subarray(0, 31)))).toEqual(publicKey.subarray(0, 31))
  })
  it('names the problem for a short key', () => {
    expect(() => parseKey('AAAA')).toThrow(/32 bytes/)
  })
})
