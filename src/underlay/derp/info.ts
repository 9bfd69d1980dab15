// The login exchange: ClientInfo and ServerInfo are JSON sealed in a NaCl box between the node
// key and the relay key, prefixed by the 24-byte nonce (Tailscale's SealTo/OpenFrom layout).
import { BOX_NONCE_LENGTH, boxKey, boxOpen, boxSeal, randomBytes } from '../../crypto/index.ts'

export interface ClientInfo {
  version: number
  /** Hex mesh key; only relay-mesh peers send one. */
  meshKey?: string
  CanAckPings: boolean
  IsProber?: boolean
  AppName?: string
}

export interface ServerInfo {
  version?: number
  TokenBucketBytesPerSecond?: number
  TokenBucketBytesBurst?: number
}

export class DerpLoginError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DerpLoginError'
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Seals `message` as JSON under a box key from `boxKey(ours, theirs)`: nonce (24) + box. */
export function sealJson(sharedKey: Uint8Array, message: object, nonce = randomBytes(BOX_NONCE_LENGTH)): Uint8Array {
  const sealed = boxSeal(sharedKey, nonce, encoder.encode(JSON.stringify(message)))
  const out = new Uint8Array(BOX_NONCE_LENGTH + sealed.length)
  out.set(nonce)
  out.set(sealed, BOX_NONCE_LENGTH)
  return out
}

/** Opens nonce + box and parses the JSON object inside; throws DerpLoginError naming what failed. */
export function openJson(sharedKey: Uint8Array, sealed: Uint8Array, what: string): Record<string, unknown> {
  if (sealed.length < BOX_NONCE_LENGTH + 16) throw new DerpLoginError(`${what} box is too short (${sealed.length} bytes)`)
  const plain = boxOpen(sharedKey, sealed.subarray(0, BOX_NONCE_LENGTH), sealed.subarray(BOX_NONCE_LENGTH))
  if (!plain) throw new DerpLoginError(`${what} box failed to open (wrong key or corrupted)`)
  let parsed: unknown
  try {
    parsed = JSON.parse(decoder.decode(plain))
  } catch {
    throw new DerpLoginError(`${what} is not valid JSON`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new DerpLoginError(`${what} JSON is not an object`)
  return parsed as Record<string, unknown>
}

export function parseServerInfo(json: Record<string, unknown>): ServerInfo {
  const info: ServerInfo = {}
  const int = (name: keyof ServerInfo): void => {
    const value = json[name]
    if (value === undefined) return
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new DerpLoginError(`ServerInfo ${name} is not a non-negative number`)
    info[name] = value
  }
  int('version')
  int('TokenBucketBytesPerSecond')
  int('TokenBucketBytesBurst')
  return info
}

export function parseClientInfo(json: Record<string, unknown>): ClientInfo {
  const version = json.version ?? 0
  if (typeof version !== 'number') throw new DerpLoginError('ClientInfo version is not a number')
  const info: ClientInfo = { version, CanAckPings: json.CanAckPings === true }
  if (typeof json.meshKey === 'string' && json.meshKey !== '') info.meshKey = json.meshKey
  if (json.IsProber === true) info.IsProber = true
  if (typeof json.AppName === 'string') info.AppName = json.AppName
  return info
}

export { boxKey }
