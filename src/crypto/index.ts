// The only module that imports @noble/* or node:crypto. Everything else goes through here.
export { aead } from '#aead'
export { type Aead, TAG_LENGTH, seal, open } from './aead.ts'
export { hash, mac, hmacBlake2s, hmacSha1, kdf, sha256 } from './hash.ts'
export { KEY_LENGTH, type KeyPair, generateKeyPair, publicKeyOf, dh, clamp, WeakKeyError } from './x25519.ts'
export { BOX_NONCE_LENGTH, BOX_OVERHEAD, boxKey, boxSeal, boxOpen, xchachaSeal, xchachaOpen } from './box.ts'
export { randomBytes } from './random.ts'
export { KeyFormatError, parseKey, formatKey, formatNodeKey } from './keys.ts'
export { concatBytes, equalBytes, toHex, fromHex, toBase64, fromBase64 } from './bytes.ts'
