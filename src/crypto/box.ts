import { xsalsa20poly1305, hsalsa } from '@noble/ciphers/salsa.js'
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { dh } from './x25519.ts'

export const BOX_NONCE_LENGTH = 24
export const BOX_OVERHEAD = 16

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574])

/** NaCl crypto_box_beforenm: HSalsa20 over the X25519 shared secret with a zero nonce. */
export function boxKey(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const shared = dh(privateKey, publicKey)
  const out = new Uint32Array(8)
  hsalsa(SIGMA, new Uint32Array(shared.buffer, shared.byteOffset, 8).slice(), new Uint32Array(4), out)
  return new Uint8Array(out.buffer)
}

/** NaCl crypto_box_afternm: XSalsa20-Poly1305, output is tag (16) followed by ciphertext. */
export function boxSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return xsalsa20poly1305(key, nonce).encrypt(plaintext)
}

export function boxOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
  if (sealed.length < BOX_OVERHEAD || nonce.length !== BOX_NONCE_LENGTH) return undefined
  try {
    return xsalsa20poly1305(key, nonce).decrypt(sealed)
  } catch {
    return undefined
  }
}

export function xchachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, aad).encrypt(plaintext)
}

export function xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array | undefined {
  try {
    return xchacha20poly1305(key, nonce, aad).decrypt(sealed)
  } catch {
    return undefined
  }
}
