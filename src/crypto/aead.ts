/**
 * ChaCha20-Poly1305 (RFC 8439) as the tunnel sees it. Two backends implement it: @noble (every
 * runtime) and OpenSSL via node:crypto (Node only, faster). `#aead` picks one per runtime.
 */
export interface Aead {
  readonly name: string
  /** Encrypts `plaintext` into `out` (length plaintext.length + 16): ciphertext then tag. */
  sealInto(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array | undefined, out: Uint8Array): void
  /** Decrypts `sealed` (ciphertext + tag) into `out` (length sealed.length - 16); false when the tag is wrong. */
  openInto(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array | undefined, out: Uint8Array): boolean
  /** Decrypts into a buffer the backend allocates (saves a copy where the backend produces one anyway). */
  openOwned(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array | undefined): Uint8Array | undefined
}

export const TAG_LENGTH = 16

export function seal(aead: Aead, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + TAG_LENGTH)
  aead.sealInto(key, nonce, plaintext, aad, out)
  return out
}

export function open(aead: Aead, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array | undefined {
  if (sealed.length < TAG_LENGTH) return undefined
  const out = new Uint8Array(sealed.length - TAG_LENGTH)
  return aead.openInto(key, nonce, sealed, aad, out) ? out : undefined
}
