import { blake2s } from '@noble/hashes/blake2.js'
import { hmac } from '@noble/hashes/hmac.js'
import { sha1 } from '@noble/hashes/legacy.js'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'

export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create()
  for (const part of parts) h.update(part)
  return h.digest()
}

/** Keyed BLAKE2s with a 16-byte output: WireGuard's MAC(key, input). */
export function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  return blake2s(input, { key, dkLen: 16 })
}

export function hmacBlake2s(key: Uint8Array, input: Uint8Array): Uint8Array {
  return hmac(blake2s, key, input)
}

/** WireGuard's KDFn (HKDF with HMAC-BLAKE2s): n outputs of 32 bytes, n in 1..3. */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = hmacBlake2s(key, input)
  const outputs: Uint8Array[] = []
  let previous: Uint8Array = new Uint8Array(0)
  for (let i = 1; i <= n; i++) {
    const block = new Uint8Array(previous.length + 1)
    block.set(previous)
    block[previous.length] = i
    previous = hmacBlake2s(prk, block)
    outputs.push(previous)
  }
  return outputs
}

export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data)
}

/** HMAC-SHA1, only for the TURN REST credential convention (coturn's use-auth-secret), which fixes SHA-1. */
export function hmacSha1(key: Uint8Array, input: Uint8Array): Uint8Array {
  return hmac(sha1, key, input)
}
