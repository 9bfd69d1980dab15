// Auth keys: `bwauth-` + 48 hex digits (24 random bytes). Only their SHA-256 is stored, so a
// leaked database does not leak usable keys. The `burrow relay authkey create` command that
// makes them is src/cli/authkey.ts.
import { randomBytes, sha256, toHex } from '../../crypto/index.ts'
import { CoordinationStore, type AuthKeyRecord } from './store.ts'

export const AUTH_KEY_PREFIX = 'bwauth-'

export function generateAuthKeyText(random: (length: number) => Uint8Array = randomBytes): string {
  return AUTH_KEY_PREFIX + toHex(random(24))
}

export function hashAuthKey(text: string): string {
  return toHex(sha256(new TextEncoder().encode(text)))
}

export interface AuthKeyOptions {
  reusable?: boolean
  ephemeral?: boolean
}

/** Stores a new auth key and returns its text; the text is not recoverable afterwards. */
export function createAuthKey(
  store: CoordinationStore,
  options: AuthKeyOptions,
  now: number,
  random: (length: number) => Uint8Array = randomBytes,
): { key: string; record: AuthKeyRecord } {
  const key = generateAuthKeyText(random)
  const record = store.insertAuthKey(hashAuthKey(key), { reusable: options.reusable ?? false, ephemeral: options.ephemeral ?? false, now })
  return { key, record }
}
