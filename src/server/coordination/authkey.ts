// Auth keys: `bwauth-` + 48 hex digits (24 random bytes). Only their SHA-256 is stored, so a
// leaked database does not leak usable keys. The `burrow relay authkey create` command that
// makes them is src/cli/authkey.ts.
import { randomBytes, sha256, toHex } from '../../crypto/index.ts'
import type { AuthKeyRecord, CoordinationStore } from './store.ts'

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
  /** How long after `now` the key stops registering nodes; undefined: never. */
  expiresInMs?: number
}

/**
 * Why `key` may not register a node at `now`, or undefined when it may. A rule of the service,
 * not of a store: either store (SQLite or PostgreSQL) only records the fields.
 */
export function authKeyRefusal(key: AuthKeyRecord | undefined, now: number): string | undefined {
  if (key === undefined) return 'authKey is unknown or already used'
  if (key.revokedAt !== null) return 'authKey was revoked'
  if (key.expiresAt !== null && now >= key.expiresAt) return `authKey expired at ${new Date(key.expiresAt).toISOString()}`
  if (!key.reusable && key.usedAt !== null) return 'authKey is unknown or already used'
  return undefined
}

/** Stores a new auth key and returns its text; the text is not recoverable afterwards. */
export async function createAuthKey(
  store: CoordinationStore,
  options: AuthKeyOptions,
  now: number,
  random: (length: number) => Uint8Array = randomBytes,
): Promise<{ key: string; record: AuthKeyRecord }> {
  const key = generateAuthKeyText(random)
  const record = await store.insertAuthKey(hashAuthKey(key), {
    reusable: options.reusable ?? false,
    ephemeral: options.ephemeral ?? false,
    now,
    expiresAt: options.expiresInMs === undefined ? null : now + options.expiresInMs,
  })
  return { key, record }
}
