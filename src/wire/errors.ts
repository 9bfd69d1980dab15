/** Why a packet could not be parsed or built. */
export type WireErrorCode = 'truncated' | 'bad-version' | 'bad-length' | 'bad-checksum' | 'bad-option' | 'bad-address' | 'unsupported'

/** The only error type the wire codecs throw. */
export class WireError extends Error {
  readonly code: WireErrorCode

  constructor(code: WireErrorCode, message: string) {
    super(`${code}: ${message}`)
    this.name = 'WireError'
    this.code = code
  }
}
