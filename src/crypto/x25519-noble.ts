import { x25519 } from '@noble/curves/ed25519.js'

export function scalarMult(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return x25519.getSharedSecret(privateKey, publicKey)
}

export function scalarMultBase(privateKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(privateKey)
}
