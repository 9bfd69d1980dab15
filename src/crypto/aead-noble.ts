import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { TAG_LENGTH, type Aead } from './aead.ts'

export const nobleAead: Aead = {
  name: 'noble',
  sealInto(key, nonce, plaintext, aad, out) {
    chacha20poly1305(key, nonce, aad).encrypt(plaintext, out)
  },
  openInto(key, nonce, sealed, aad, out) {
    if (sealed.length < TAG_LENGTH || out.length !== sealed.length - TAG_LENGTH) return false
    try {
      chacha20poly1305(key, nonce, aad).decrypt(sealed, out)
      return true
    } catch {
      return false
    }
  },
  openOwned(key, nonce, sealed, aad) {
    if (sealed.length < TAG_LENGTH) return undefined
    const out = new Uint8Array(sealed.length - TAG_LENGTH)
    return this.openInto(key, nonce, sealed, aad, out) ? out : undefined
  },
}

export const aead = nobleAead
