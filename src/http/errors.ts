/** Why bytes on an HTTP/1.1 connection could not be understood. */
export type HttpParseErrorCode =
  | 'invalid-start-line'
  | 'unsupported-version'
  | 'invalid-header'
  | 'head-too-large'
  | 'invalid-content-length'
  | 'conflicting-framing'
  | 'unsupported-transfer-encoding'
  | 'invalid-chunk-size'
  | 'invalid-chunk-terminator'
  | 'trailers-too-large'
  | 'unexpected-eof'

/** The only error type the HTTP parser throws. */
export class HttpParseError extends Error {
  readonly code: HttpParseErrorCode

  constructor(code: HttpParseErrorCode, message: string) {
    super(`${code}: ${message}`)
    this.name = 'HttpParseError'
    this.code = code
  }
}

/** A connection-level failure: the peer vanished, the socket errored, or the exchange broke a rule. */
export class HttpConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'HttpConnectionError'
  }
}
