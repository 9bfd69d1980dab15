// The relay's long-term key: made once, kept in the data dir readable only by its owner, so
// clients that pinned it keep trusting the relay across restarts.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fromHex, generateKeyPair, toHex } from '../crypto/index.ts'
import { assertPrivateFile } from './data-dir.ts'

export const RELAY_KEY_FILE = 'relay.key'

export class RelayKeyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RelayKeyError'
  }
}

export function loadOrCreateRelayKey(dataDir: string): { privateKey: Uint8Array; created: boolean; path: string } {
  const path = join(dataDir, RELAY_KEY_FILE)
  if (existsSync(path)) {
    // Checked before reading: a key others could read is not used (see data-dir.ts).
    assertPrivateFile(path, "the relay's private key")
    const text = readFileSync(path, 'utf8').trim()
    const match = /^privkey:([0-9a-f]{64})$/.exec(text)
    if (!match) throw new RelayKeyError(`${path} does not hold a relay key (expected privkey:<64 hex>)`)
    return { privateKey: fromHex(match[1]!), created: false, path }
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const { privateKey } = generateKeyPair()
  writeFileSync(path, `privkey:${toHex(privateKey)}\n`, { mode: 0o600, flag: 'wx' })
  return { privateKey, created: true, path }
}
