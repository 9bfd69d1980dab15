import { scalarMult, scalarMultBase } from '#x25519'
import { randomBytes } from './random.ts'

export const KEY_LENGTH = 32

export interface KeyPair {
  privateKey: Uint8Array
  publicKey: Uint8Array
}

/** A fresh clamped Curve25519 private key (clamped as `wg genkey` does), without its public key. */
export function generatePrivateKey(): Uint8Array {
  return clamp(randomBytes(KEY_LENGTH))
}

/** A fresh clamped Curve25519 private key and its public key (one X25519 base-point multiplication). */
export function generateKeyPair(): KeyPair {
  const privateKey = generatePrivateKey()
  return { privateKey, publicKey: scalarMultBase(privateKey) }
}

export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  if (privateKey.length !== KEY_LENGTH) throw new RangeError(`private key must be ${KEY_LENGTH} bytes, got ${privateKey.length}`)
  return scalarMultBase(privateKey)
}

/**
 * RFC 8410 §7 OneAsymmetricKey (PKCS #8) of an X25519 private key, up to the key itself:
 * SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.110 (id-X25519) }, OCTET STRING { OCTET STRING (32) } }.
 */
const X25519_PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20])

type SubtleLike = Pick<SubtleCrypto, 'importKey' | 'exportKey'>

/**
 * `publicKeyOf`, by the platform's WebCrypto X25519 where there is one (Chromium 133+, Firefox 130+,
 * Safari 17+, Node): native, about a tenth of the pure-JavaScript ladder's cold first call, which
 * is on the path of every start. The public key is the JWK's `x` (RFC 8037 §2, base64url). Falls
 * back to `publicKeyOf` where WebCrypto lacks X25519 or refuses the key.
 */
export async function publicKeyOfAsync(privateKey: Uint8Array, subtle: SubtleLike | undefined = globalThis.crypto?.subtle): Promise<Uint8Array> {
  if (privateKey.length !== KEY_LENGTH) throw new RangeError(`private key must be ${KEY_LENGTH} bytes, got ${privateKey.length}`)
  if (subtle !== undefined) {
    try {
      const pkcs8 = new Uint8Array(X25519_PKCS8_PREFIX.length + KEY_LENGTH)
      pkcs8.set(X25519_PKCS8_PREFIX)
      pkcs8.set(privateKey, X25519_PKCS8_PREFIX.length)
      const key = await subtle.importKey('pkcs8', pkcs8, { name: 'X25519' }, true, ['deriveBits'])
      pkcs8.fill(0)
      const { x } = await subtle.exportKey('jwk', key)
      const publicKey = typeof x === 'string' ? fromBase64Url(x) : undefined
      if (publicKey?.length === KEY_LENGTH) return publicKey
    } catch {
      // No X25519 in this WebCrypto: the ladder below.
    }
  }
  return publicKeyOf(privateKey)
}

function fromBase64Url(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4))
  return Uint8Array.from(binary, (c) => c.charCodeAt(0))
}

export class WeakKeyError extends Error {
  constructor() {
    super('X25519 produced an all-zero shared secret (low-order public key)')
    this.name = 'WeakKeyError'
  }
}

/** X25519 Diffie-Hellman; throws WeakKeyError for low-order points rather than returning zeros. */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  let shared: Uint8Array
  try {
    shared = scalarMult(privateKey, publicKey)
  } catch {
    throw new WeakKeyError()
  }
  let acc = 0
  for (const b of shared) acc |= b
  if (acc === 0) throw new WeakKeyError()
  return shared
}

export function clamp(key: Uint8Array): Uint8Array {
  key[0]! &= 248
  key[31]! &= 127
  key[31]! |= 64
  return key
}
