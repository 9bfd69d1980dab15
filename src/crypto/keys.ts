import { KEY_LENGTH } from './x25519.ts'
import { fromBase64, fromHex, toBase64, toHex } from './bytes.ts'

export class KeyFormatError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'KeyFormatError'
  }
}

/** Parses a 32-byte key written as wg base64 or Tailscale style `nodekey:`/`discokey:`/`privkey:` + 64 hex. */
export function parseKey(text: string): Uint8Array {
  const trimmed = text.trim()
  const prefixed = /^(nodekey|discokey|privkey|mkey):([0-9a-fA-F]*)$/.exec(trimmed)
  let key: Uint8Array
  try {
    key = prefixed ? fromHex(prefixed[2]!) : fromBase64(trimmed)
  } catch {
    throw new KeyFormatError(`key ${JSON.stringify(trimmed.slice(0, 16))}… is neither base64 nor nodekey:<64 hex>`)
  }
  if (key.length !== KEY_LENGTH) throw new KeyFormatError(`key must be ${KEY_LENGTH} bytes, got ${key.length}`)
  return key
}

export function formatKey(key: Uint8Array): string {
  return toBase64(key)
}

export function formatNodeKey(key: Uint8Array): string {
  return `nodekey:${toHex(key)}`
}
