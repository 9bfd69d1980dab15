export type TcpErrorCode = 'refused' | 'reset' | 'timeout' | 'unreachable' | 'aborted' | 'closed' | 'address-in-use' | 'bad-argument'

/** A connection-level failure; the message is what an application shows its user. */
export class TcpError extends Error {
  override readonly name = 'TcpError'
  constructor(
    readonly code: TcpErrorCode,
    message: string,
  ) {
    super(message)
  }
}
