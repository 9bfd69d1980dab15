import { scalarMult, scalarMultBase } from '#x25519'
import { randomBytes } from './random.ts'

export const KEY_LENGTH = 32

export interface KeyPair {
  privateKey: Uint8Array
  publicKey: Uint8Array
}

/** A fresh clamped Curve25519 private key (clamped as `wg genkey` does) and its public key. */
export function generateKeyPair(): KeyPair {
  const privateKey = randomBytes(KEY_LENGTH)
  clamp(privateKey)
  return { privateKey, publicKey: scalarMultBase(privateKey) }
}

export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  if (privateKey.length !== KEY_LENGTH) throw new RangeError(`private key must be ${KEY_LENGTH} bytes, got ${privateKey.length}`)
  return scalarMultBase(privateKey)
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
