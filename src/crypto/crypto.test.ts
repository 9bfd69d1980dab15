import { blake2s } from '@noble/hashes/blake2.js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { nobleAead } from './aead-noble.ts'
import { nodeAead } from './aead-node.ts'
import { open, seal } from './aead.ts'
import { dh, hash, fromHex, toHex, boxKey, boxSeal, boxOpen, generateKeyPair, parseKey, formatNodeKey, toBase64, fromBase64 } from './index.ts'
import { BOX_OVERHEAD, hmacBlake2s, mac, publicKeyOf, xchachaOpen, xchachaSeal } from './index.ts'

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
  const plaintext = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
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

// ---- Further known-answer tests, each against a published vector or an independent implementation ----

const HMAC_SHORT_KEY = 'b9f2e5767a6cdfa821d56eb9a1d60bd7604e1f6eaa167773dd4580ccb475d570'
const HMAC_LONG_KEY = '5100b07709352abefada1651defca4ae62a87b1deebd60a6ae2be0f3ab04ae2d'

describe('NaCl crypto_box (the alice/bob vector of NaCl tests/box.c, as PyNaCl and libsodium test it)', () => {
  const aliceSecret = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a')
  const alicePublic = fromHex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')
  const bobSecret = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb')
  const bobPublic = fromHex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f')
  const nonce = fromHex('69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37')
  const message = fromHex(
    'be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c6129' +
      '6cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1f' +
      'de048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705',
  )
  // libsodium "easy" layout: 16-byte Poly1305 tag, then the XSalsa20 ciphertext.
  const sealed = fromHex(
    'f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a' +
      'c0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526' +
      'ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb4' +
      '5a74e355a5',
  )

  it('derives the published public keys and shared secret (RFC 7748 §6.1)', () => {
    expect(toHex(publicKeyOf(aliceSecret))).toBe(toHex(alicePublic))
    expect(toHex(publicKeyOf(bobSecret))).toBe(toHex(bobPublic))
    expect(toHex(dh(aliceSecret, bobPublic))).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742')
    expect(toHex(dh(bobSecret, alicePublic))).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742')
  })

  it('precomputes the NaCl "firstkey" with HSalsa20 from both sides', () => {
    expect(toHex(boxKey(aliceSecret, bobPublic))).toBe('1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389')
    expect(toHex(boxKey(bobSecret, alicePublic))).toBe('1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389')
  })

  it('seals to the published bytes, tag first', () => {
    const ours = boxSeal(boxKey(aliceSecret, bobPublic), nonce, message)
    expect(toHex(ours.subarray(0, 16))).toBe('f3ffc7703f9400e52a7dfb4b3d3305d9')
    expect(toHex(ours.subarray(16, 32))).toBe('8e993b9f48681273c29650ba32fc76ce')
    expect(toHex(ours)).toBe(toHex(sealed))
    expect(ours.length).toBe(message.length + BOX_OVERHEAD)
  })

  it('opens the published box on the other side, and refuses tampering or the wrong key', () => {
    expect(toHex(boxOpen(boxKey(bobSecret, alicePublic), nonce, sealed)!)).toBe(toHex(message))
    const tampered = sealed.slice()
    tampered[40]! ^= 0x80
    expect(boxOpen(boxKey(bobSecret, alicePublic), nonce, tampered)).toBeUndefined()
    expect(boxOpen(boxKey(bobSecret, bobPublic), nonce, sealed)).toBeUndefined()
    expect(boxOpen(boxKey(bobSecret, alicePublic), nonce.subarray(0, 23), sealed)).toBeUndefined()
    expect(boxOpen(boxKey(bobSecret, alicePublic), nonce, sealed.subarray(0, 15))).toBeUndefined()
  })
})

describe('XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §A.3.1)', () => {
  const key = fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f')
  const nonce = fromHex('404142434445464748494a4b4c4d4e4f5051525354555657')
  const aad = fromHex('50515253c0c1c2c3c4c5c6c7')
  const plaintext = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
  const ciphertext =
    'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39' +
    'ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9' +
    '21f9664c97637da9768812f615c68b13b52e'
  const tag = 'c0875924c1c7987947deafd8780acf49'

  it('seals to the draft ciphertext followed by its tag', () => {
    const sealed = xchachaSeal(key, nonce, plaintext, aad)
    expect(toHex(sealed)).toBe(ciphertext + tag)
  })

  it('opens it, and refuses a different aad or a flipped tag bit', () => {
    const sealed = fromHex(ciphertext + tag)
    expect(xchachaOpen(key, nonce, sealed, aad)).toEqual(plaintext)
    expect(xchachaOpen(key, nonce, sealed)).toBeUndefined()
    sealed[sealed.length - 1]! ^= 1
    expect(xchachaOpen(key, nonce, sealed, aad)).toBeUndefined()
  })
})

describe('X25519 (RFC 7748 §5.2, second vector)', () => {
  it('matches the second scalar-multiplication vector (non-canonical high bit in u ignored)', () => {
    const scalar = fromHex('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d')
    const u = fromHex('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493')
    expect(toHex(dh(scalar, u))).toBe('95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957')
  })
})

describe('keyed BLAKE2s', () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i)
  const input = (length: number): Uint8Array => Uint8Array.from({ length }, (_, i) => i)

  it('matches the official blake2s-kat keyed vectors (key 00..1f, 32-byte output)', () => {
    // `mac` is this primitive truncated to 16 bytes by the parameter block, so check the primitive itself too.
    expect(toHex(blake2s(input(0), { key }))).toBe('48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49')
    expect(toHex(blake2s(input(64), { key }))).toBe('8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4')
  })

  it('computes WireGuard MAC (16-byte output) like the reference implementation', () => {
    // Expected values from CPython's hashlib.blake2s (the BLAKE2 reference C code), digest_size=16.
    expect(toHex(mac(key, input(0)))).toBe('9536f9b267655743dee97b8a670f9f53')
    expect(toHex(mac(key, input(256)))).toBe('d5a40ec316c751a63cd0d91157fa1ebb')
    expect(toHex(mac(key, new TextEncoder().encode('mac1----')))).toBe('009514d37a2d3cb5c78a5adf4defcb92')
  })

  it('computes HMAC-BLAKE2s like the reference implementation, including keys longer than a block', () => {
    // Expected values from CPython's hmac.new(key, data, hashlib.blake2s).
    expect(toHex(hmacBlake2s(key, new TextEncoder().encode('WireGuard v1 zx2c4 Jason@zx2c4.com')))).toBe(HMAC_SHORT_KEY)
    expect(toHex(hmacBlake2s(new Uint8Array(80).fill(0x6b), input(100)))).toBe(HMAC_LONG_KEY)
  })
})

describe('ChaCha20-Poly1305 backends agree (OpenSSL vs @noble)', () => {
  const arbCase = fc.record({
    key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    nonce: fc.uint8Array({ minLength: 12, maxLength: 12 }),
    aad: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }),
    plaintext: fc.uint8Array({ maxLength: 600 }),
  })

  it('produce identical output and open each other’s', () => {
    fc.assert(
      fc.property(arbCase, ({ key, nonce, aad, plaintext }) => {
        const byNode = seal(nodeAead, key, nonce, plaintext, aad)
        const byNoble = seal(nobleAead, key, nonce, plaintext, aad)
        expect(toHex(byNode)).toBe(toHex(byNoble))
        expect(open(nobleAead, key, nonce, byNode, aad)).toEqual(plaintext)
        expect(open(nodeAead, key, nonce, byNoble, aad)).toEqual(plaintext)
      }),
      { numRuns: 200 },
    )
  })

  it('both reject the same single-bit damage', () => {
    fc.assert(
      fc.property(arbCase, fc.nat(), fc.nat(7), ({ key, nonce, aad, plaintext }, at, bit) => {
        const sealed = seal(nodeAead, key, nonce, plaintext, aad)
        sealed[at % sealed.length]! ^= 1 << bit
        expect(open(nodeAead, key, nonce, sealed, aad)).toBeUndefined()
        expect(open(nobleAead, key, nonce, sealed, aad)).toBeUndefined()
      }),
      { numRuns: 100 },
    )
  })
})

describe('X25519 backends', () => {
  it('OpenSSL (Node) and noble agree on public keys and shared secrets for random keys', async () => {
    const nodeX = await import('./x25519-node.ts')
    const nobleX = await import('./x25519-noble.ts')
    for (let i = 0; i < 50; i++) {
      const a = crypto.getRandomValues(new Uint8Array(32))
      const b = crypto.getRandomValues(new Uint8Array(32))
      expect(toHex(nodeX.scalarMultBase(a))).toBe(toHex(nobleX.scalarMultBase(a)))
      const bPublic = nobleX.scalarMultBase(b)
      expect(toHex(nodeX.scalarMult(a, bPublic))).toBe(toHex(nobleX.scalarMult(a, bPublic)))
    }
  })
  it('sees a changed private key even when the same array is reused', async () => {
    const nodeX = await import('./x25519-node.ts')
    const nobleX = await import('./x25519-noble.ts')
    const key = crypto.getRandomValues(new Uint8Array(32))
    nodeX.scalarMultBase(key)
    key[3]! ^= 0xff
    expect(toHex(nodeX.scalarMultBase(key))).toBe(toHex(nobleX.scalarMultBase(key)))
  })
})

describe('X25519 on the noble Montgomery ladder (the browser backend) matches RFC 7748', () => {
  it('§5.2 vectors, the §6.1 key pair and shared secret, and 1000 iterations of §5.2', async () => {
    const nobleX = await import('./x25519-noble.ts')
    const vectors = [
      [
        'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
        'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
        'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
      ],
      [
        '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
        'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
        '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
      ],
    ]
    for (const [scalar, u, out] of vectors) expect(toHex(nobleX.scalarMult(fromHex(scalar!), fromHex(u!)))).toBe(out)
    const alice = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a')
    const bob = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb')
    expect(toHex(nobleX.scalarMultBase(alice))).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')
    expect(toHex(nobleX.scalarMult(bob, nobleX.scalarMultBase(alice)))).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742')
    let k = fromHex('0900000000000000000000000000000000000000000000000000000000000000')
    let u = k
    for (let i = 0; i < 1000; i++) [k, u] = [nobleX.scalarMult(k, u), k]
    expect(toHex(k)).toBe('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51')
  })
})
