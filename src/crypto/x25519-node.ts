import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto'

// OpenSSL's X25519 is ~50x faster than pure JS, which makes handshakes (4 DH each side) cheap on Node.
// Raw keys are wrapped in fixed DER prefixes (RFC 8410) because node:crypto only takes key objects.
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20])
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00])

function wrap(prefix: Uint8Array, key: Uint8Array): Buffer {
  const der = Buffer.allocUnsafe(prefix.length + key.length)
  der.set(prefix, 0)
  der.set(key, prefix.length)
  return der
}

const privateObjects = new WeakMap<Uint8Array, { copy: Uint8Array; object: KeyObject }>()

function privateObject(privateKey: Uint8Array): KeyObject {
  const cached = privateObjects.get(privateKey)
  // The cache is keyed by identity; compare the bytes too because callers may zero or reuse the array.
  if (cached && cached.copy.every((b, i) => b === privateKey[i])) return cached.object
  const object = createPrivateKey({ key: wrap(PKCS8_PREFIX, privateKey), format: 'der', type: 'pkcs8' })
  privateObjects.set(privateKey, { copy: privateKey.slice(), object })
  return object
}

export function scalarMult(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const shared = diffieHellman({
    privateKey: privateObject(privateKey),
    publicKey: createPublicKey({ key: wrap(SPKI_PREFIX, publicKey), format: 'der', type: 'spki' }),
  })
  return new Uint8Array(shared.buffer, shared.byteOffset, shared.length)
}

export function scalarMultBase(privateKey: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateObject(privateKey)).export({ format: 'der', type: 'spki' })
  return Uint8Array.from(spki.subarray(SPKI_PREFIX.length))
}
