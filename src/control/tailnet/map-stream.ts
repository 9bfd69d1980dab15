// The body of a /machine/map response: repeated `u32 little-endian length | message`, each
// message a JSON tailcfg.MapResponse, or one zstd frame of it when the server compresses anyway
// (control/controlclient/direct.go: the read loop and mapSession.decodeMsg). Sans-IO.
import { concatBytes } from '../../crypto/index.ts'
import type { MapResponse } from './tailcfg.ts'

/** Go's client has no cap; ours bounds memory against a garbled length (a real netmap is far smaller). */
export const MAX_MAP_MESSAGE = 64 * 1024 * 1024
/** zstd frame magic (RFC 8878 §3.1.1), little-endian 0xFD2FB528. */
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd]

export class MapStreamError extends Error {
  override readonly name = 'MapStreamError'
  constructor(
    readonly code: 'too-large' | 'bad-json' | 'bad-zstd' | 'truncated',
    message: string,
  ) {
    super(message)
  }
}

/** Splits the map body into messages as bytes arrive. */
export class MapMessageReader {
  #buffer: Uint8Array = new Uint8Array(0)
  #failed: MapStreamError | undefined

  push(bytes: Uint8Array): Uint8Array[] {
    if (this.#failed) throw this.#failed
    this.#buffer = this.#buffer.length === 0 ? bytes : concatBytes([this.#buffer, bytes])
    const out: Uint8Array[] = []
    let offset = 0
    while (this.#buffer.length - offset >= 4) {
      const size = new DataView(this.#buffer.buffer, this.#buffer.byteOffset + offset, 4).getUint32(0, true)
      if (size > MAX_MAP_MESSAGE) {
        this.#failed = new MapStreamError('too-large', `map message of ${size} bytes exceeds the ${MAX_MAP_MESSAGE}-byte limit (garbled length?)`)
        throw this.#failed
      }
      if (this.#buffer.length - offset - 4 < size) break
      out.push(this.#buffer.slice(offset + 4, offset + 4 + size))
      offset += 4 + size
    }
    this.#buffer = offset === this.#buffer.length ? new Uint8Array(0) : this.#buffer.slice(offset)
    return out
  }

  /** The body ended: a partial message left over means the stream was cut. */
  end(): void {
    if (this.#buffer.length > 0) throw new MapStreamError('truncated', `map stream ended inside a message (${this.#buffer.length} bytes left)`)
  }
}

export function isZstd(message: Uint8Array): boolean {
  return ZSTD_MAGIC.every((b, i) => message[i] === b)
}

/** Parses one message; `decompress` is needed only for zstd messages (the driver loads it then). */
export function decodeMapMessage(message: Uint8Array, decompress?: (frame: Uint8Array) => Uint8Array): MapResponse {
  let json = message
  if (isZstd(message)) {
    if (!decompress) throw new MapStreamError('bad-zstd', 'zstd map message but no decoder loaded')
    try {
      json = decompress(message)
    } catch (error) {
      throw new MapStreamError('bad-zstd', `map message is not a valid zstd frame: ${(error as Error).message}`)
    }
  }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json))
  } catch (error) {
    throw new MapStreamError('bad-json', `map message is not JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new MapStreamError('bad-json', 'map message is not a JSON object')
  return value as MapResponse
}

/** Loads the zstd decoder on first use only: it stays out of the main bundle. */
let zstdDecoder: Promise<(frame: Uint8Array) => Uint8Array> | undefined
export function loadZstd(): Promise<(frame: Uint8Array) => Uint8Array> {
  zstdDecoder ??= import('fzstd').then((m) => (frame: Uint8Array) => m.decompress(frame))
  return zstdDecoder
}
