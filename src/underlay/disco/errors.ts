// One error type for everything the disco layer refuses, so callers can count by `code` and move on.

export type DiscoErrorCode =
  /** Does not start with the disco magic, or is shorter than magic + key + nonce. */
  | 'not-disco'
  /** The box did not open: wrong key, forged or corrupted. */
  | 'undecryptable'
  /** The plaintext is too short for its message type. */
  | 'truncated'
  /** A type byte this implementation does not handle. */
  | 'unknown-type'
  /** A Burrow WebRTC signal whose JSON is malformed. */
  | 'bad-signal'
  /** A caller passed a value that cannot be encoded. */
  | 'bad-argument'

export class DiscoError extends Error {
  override readonly name = 'DiscoError'
  constructor(
    readonly code: DiscoErrorCode,
    message: string,
  ) {
    super(message)
  }
}
