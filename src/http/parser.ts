import { ByteQueue } from './byte-queue.ts'
import { HttpParseError } from './errors.ts'

/** How the body of a message is delimited (RFC 9112 §6). */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'until-close' }

export type HeaderList = Array<[name: string, value: string]>

interface HeadCommon {
  /** Minor version of HTTP/1.x: 0 or 1 (higher 1.x minors are treated as 1). */
  minorVersion: 0 | 1
  /** Field lines in arrival order; names as sent, values with surrounding whitespace removed. */
  headers: HeaderList
  /** Whether the connection may carry another message after this one. */
  keepAlive: boolean
  body: BodyFraming
}

export interface RequestHead extends HeadCommon {
  kind: 'request'
  method: string
  target: string
}

export interface ResponseHead extends HeadCommon {
  kind: 'response'
  status: number
  reason: string
}

export type MessageHead = RequestHead | ResponseHead

export type HttpEvent =
  | { type: 'head'; head: MessageHead }
  | { type: 'body'; data: Uint8Array }
  | { type: 'end'; trailers: HeaderList }
  /** The input ended cleanly between messages (or after a body delimited by the close). */
  | { type: 'closed' }

export interface HttpParserLimits {
  /** Start line plus field lines, including line endings. */
  maxHeadBytes: number
  /** One chunk-size line, extensions included. */
  maxChunkLineBytes: number
  /** All trailer field lines of one message. */
  maxTrailerBytes: number
}

export const DEFAULT_LIMITS: HttpParserLimits = {
  maxHeadBytes: 64 * 1024,
  maxChunkLineBytes: 4 * 1024,
  maxTrailerBytes: 64 * 1024,
}

type State = 'start' | 'headers' | 'body-length' | 'chunk-size' | 'chunk-data' | 'chunk-data-end' | 'trailers' | 'body-until-close' | 'upgraded' | 'closed'

const LF = 0x0a
const CR = 0x0d

/**
 * Incremental HTTP/1.1 message parser, sans-IO: `push` bytes as they arrive, call `next` until it
 * returns `null` (needs more bytes), and `finish` when the input ends. Messages follow one another
 * on the same parser, so a caller handles them one at a time and pipelined bytes wait in the queue.
 * Every problem is an `HttpParseError`; after one, the parser keeps throwing it.
 */
export class HttpParser {
  readonly kind: 'request' | 'response'
  private readonly limits: HttpParserLimits
  private readonly queue = new ByteQueue()
  private state: State = 'start'
  private eof = false
  private failure: HttpParseError | undefined
  /** Bytes of the current line already searched for LF, so a slowly arriving line is scanned once. */
  private scanned = 0
  private headBytes = 0
  private startLine = ''
  private fieldLines: string[] = []
  private trailerBytes = 0
  private trailerLines: string[] = []
  private remaining = 0
  private received = 0
  private pendingMethods: string[] = []

  constructor(kind: 'request' | 'response', limits: Partial<HttpParserLimits> = {}) {
    this.kind = kind
    this.limits = { ...DEFAULT_LIMITS, ...limits }
  }

  /** Response parsers only: the method of a request sent, so HEAD responses are known to be bodiless. */
  expectResponseTo(method: string): void {
    this.pendingMethods.push(method.toUpperCase())
  }

  /** Adds received bytes; the parser owns `chunk` from now on and may hand out views of it. */
  push(chunk: Uint8Array): void {
    if (this.failure) throw this.failure
    if (this.eof) throw new RangeError('push after finish')
    this.queue.push(chunk)
  }

  /** The input has ended (the peer closed its sending side). */
  finish(): void {
    this.eof = true
  }

  /** How many received bytes are waiting to be parsed. */
  get bufferedLength(): number {
    return this.queue.length
  }

  /** Bytes still queued; after a 101 response these belong to the new protocol. */
  takeBuffered(): Uint8Array[] {
    return this.queue.drain()
  }

  /** The next event, or `null` when more bytes are needed. */
  next(): HttpEvent | null {
    if (this.failure) throw this.failure
    try {
      return this.step()
    } catch (error) {
      if (!(error instanceof HttpParseError)) throw error
      this.failure = error
      throw error
    }
  }

  private step(): HttpEvent | null {
    for (;;) {
      switch (this.state) {
        case 'start': {
          // Empty lines before a message are ignored (RFC 9112 §2.2).
          const line = this.takeLine(this.limits.maxHeadBytes, 'head-too-large')
          if (line === null) {
            if (!this.eof) return null
            if (this.queue.length === 0) {
              this.state = 'closed'
              return { type: 'closed' }
            }
            throw new HttpParseError('unexpected-eof', `connection closed inside the ${this.kind} head`)
          }
          if (line.length === 0) continue // a lone CR LF split across pushes
          this.headBytes = this.lineBytes
          this.startLine = line
          this.fieldLines = []
          this.state = 'headers'
          continue
        }
        case 'headers': {
          const line = this.takeLine(this.limits.maxHeadBytes - this.headBytes, 'head-too-large')
          if (line === null) return this.needMore(`connection closed inside the ${this.kind} head`)
          this.headBytes += this.lineBytes
          if (line.length > 0) {
            this.fieldLines.push(line)
            continue
          }
          const head = this.kind === 'request' ? this.parseRequestHead() : this.parseResponseHead()
          this.enterBody(head)
          return { type: 'head', head }
        }
        case 'body-length': {
          if (this.remaining === 0) return this.endMessage([])
          if (this.queue.length === 0) {
            return this.needMore(`connection closed after ${this.received} of ${this.received + this.remaining} body bytes`)
          }
          const data = this.queue.takeFromFirstChunk(this.remaining)
          this.remaining -= data.length
          this.received += data.length
          return { type: 'body', data }
        }
        case 'chunk-size': {
          const line = this.takeLine(this.limits.maxChunkLineBytes, 'invalid-chunk-size')
          if (line === null) return this.needMore('connection closed inside a chunked body')
          const size = parseChunkSize(line)
          if (size === 0) {
            this.trailerBytes = 0
            this.trailerLines = []
            this.state = 'trailers'
          } else {
            this.remaining = size
            this.state = 'chunk-data'
          }
          continue
        }
        case 'chunk-data': {
          if (this.remaining === 0) {
            this.state = 'chunk-data-end'
            continue
          }
          if (this.queue.length === 0) return this.needMore('connection closed inside a chunked body')
          const data = this.queue.takeFromFirstChunk(this.remaining)
          this.remaining -= data.length
          this.received += data.length
          return { type: 'body', data }
        }
        case 'chunk-data-end': {
          if (this.queue.length === 0) return this.needMore('connection closed inside a chunked body')
          const first = this.queue.at(0)
          if (first === LF) {
            this.queue.skip(1)
          } else if (first === CR) {
            if (this.queue.length < 2) return this.needMore('connection closed inside a chunked body')
            if (this.queue.at(1) !== LF) throw chunkTerminatorError()
            this.queue.skip(2)
          } else {
            throw chunkTerminatorError()
          }
          this.state = 'chunk-size'
          continue
        }
        case 'trailers': {
          const line = this.takeLine(this.limits.maxTrailerBytes - this.trailerBytes, 'trailers-too-large')
          if (line === null) return this.needMore('connection closed inside the trailer section')
          this.trailerBytes += this.lineBytes
          if (line.length > 0) {
            this.trailerLines.push(line)
            continue
          }
          return this.endMessage(parseFieldLines(this.trailerLines, this.kind === 'response'))
        }
        case 'body-until-close': {
          if (this.queue.length > 0) {
            const data = this.queue.takeFromFirstChunk(this.queue.length)
            this.received += data.length
            return { type: 'body', data }
          }
          if (!this.eof) return null
          this.state = 'closed'
          return { type: 'end', trailers: [] }
        }
        case 'upgraded':
          // The bytes that follow belong to another protocol (see takeBuffered).
          return this.eof ? { type: 'closed' } : null
        case 'closed':
          return { type: 'closed' }
      }
    }
  }

  private needMore(eofMessage: string): null {
    if (this.eof) throw new HttpParseError('unexpected-eof', eofMessage)
    return null
  }

  private endMessage(trailers: HeaderList): HttpEvent {
    this.state = this.upgradeAfterEnd ? 'upgraded' : 'start'
    this.upgradeAfterEnd = false
    return { type: 'end', trailers }
  }

  private upgradeAfterEnd = false
  /** Bytes (with line ending) of the line most recently taken. */
  private lineBytes = 0

  /**
   * The next line without its line ending, decoded as Latin-1, or `null` if its LF has not arrived.
   * A line longer than `limit` (line ending included) fails with `code`; so does a bare CR.
   */
  private takeLine(limit: number, code: 'head-too-large' | 'invalid-chunk-size' | 'trailers-too-large'): string | null {
    const lf = this.queue.indexOf(LF, this.scanned)
    if (lf < 0) {
      this.scanned = this.queue.length
      if (this.queue.length > limit) throw lineLimitError(code, this.kind, this.limits)
      return null
    }
    this.scanned = 0
    if (lf + 1 > limit) throw lineLimitError(code, this.kind, this.limits)
    const bytes = this.queue.take(lf + 1)
    this.lineBytes = lf + 1
    const end = lf > 0 && bytes[lf - 1] === CR ? lf - 1 : lf
    for (let i = 0; i < end; i++) {
      if (bytes[i] === CR) throw new HttpParseError(this.bareCrCode(), 'bare CR inside a line')
    }
    return latin1(bytes, end)
  }

  private bareCrCode(): 'invalid-start-line' | 'invalid-chunk-size' | 'invalid-header' {
    if (this.state === 'start') return 'invalid-start-line'
    if (this.state === 'chunk-size') return 'invalid-chunk-size'
    return 'invalid-header'
  }

  private parseRequestHead(): RequestHead {
    const match = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) (HTTP\/\d\.\d)$/.exec(this.startLine)
    if (!match) throw new HttpParseError('invalid-start-line', `malformed request line ${quote(this.startLine)}`)
    const minorVersion = parseVersion(match[3]!)
    const headers = parseFieldLines(this.fieldLines, false)
    const body = requestFraming(headers)
    return {
      kind: 'request',
      method: match[1]!,
      target: match[2]!,
      minorVersion,
      headers,
      keepAlive: connectionPersists(headers, minorVersion),
      body,
    }
  }

  private parseResponseHead(): ResponseHead {
    const match = /^(HTTP\/\d\.\d) (\d{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$/.exec(this.startLine)
    if (!match) throw new HttpParseError('invalid-start-line', `malformed status line ${quote(this.startLine)}`)
    const minorVersion = parseVersion(match[1]!)
    const status = Number(match[2])
    if (status < 100) throw new HttpParseError('invalid-start-line', `status code ${match[2]} is below 100`)
    const headers = parseFieldLines(this.fieldLines, true)
    const informational = status < 200 && status !== 101
    const method = informational ? this.pendingMethods[0] : this.pendingMethods.shift()
    const body = responseFraming(headers, status, method ?? 'GET')
    return {
      kind: 'response',
      status,
      reason: match[3] ?? '',
      minorVersion,
      headers,
      keepAlive: body.kind !== 'until-close' && status !== 101 && connectionPersists(headers, minorVersion),
      body,
    }
  }

  private enterBody(head: MessageHead): void {
    this.received = 0
    this.upgradeAfterEnd = head.kind === 'response' && head.status === 101
    switch (head.body.kind) {
      case 'none':
        this.remaining = 0
        this.state = 'body-length'
        break
      case 'length':
        this.remaining = head.body.length
        this.state = 'body-length'
        break
      case 'chunked':
        this.state = 'chunk-size'
        break
      case 'until-close':
        this.state = 'body-until-close'
        break
    }
  }
}

function lineLimitError(code: 'head-too-large' | 'invalid-chunk-size' | 'trailers-too-large', kind: string, limits: HttpParserLimits): HttpParseError {
  switch (code) {
    case 'head-too-large':
      return new HttpParseError(code, `${kind} head exceeds ${limits.maxHeadBytes} bytes`)
    case 'invalid-chunk-size':
      return new HttpParseError(code, `invalid chunk size line: longer than ${limits.maxChunkLineBytes} bytes`)
    case 'trailers-too-large':
      return new HttpParseError(code, `trailer section exceeds ${limits.maxTrailerBytes} bytes`)
  }
}

function chunkTerminatorError(): HttpParseError {
  return new HttpParseError('invalid-chunk-terminator', 'chunk data is not followed by CRLF (chunk longer than its size line says)')
}

function parseVersion(version: string): 0 | 1 {
  if (!version.startsWith('HTTP/1.')) throw new HttpParseError('unsupported-version', `unsupported protocol version ${version}`)
  return version === 'HTTP/1.0' ? 0 : 1
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Field values: visible ASCII, obs-text, and SP/HTAB inside (RFC 9110 §5.5).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

function parseFieldLines(lines: string[], foldObsolete: boolean): HeaderList {
  const headers: HeaderList = []
  for (const line of lines) {
    const first = line.charCodeAt(0)
    if (first === 0x20 || first === 0x09) {
      // obs-fold: a user agent replaces it with SP (RFC 9112 §5.2); a server must reject it.
      const previous = headers[headers.length - 1]
      if (!foldObsolete || previous === undefined) {
        throw new HttpParseError('invalid-header', 'obsolete line folding in header section')
      }
      const more = trimOws(line)
      if (!FIELD_VALUE.test(more)) throw new HttpParseError('invalid-header', `invalid characters in value of header ${previous[0]}`)
      previous[1] = previous[1].length > 0 && more.length > 0 ? `${previous[1]} ${more}` : previous[1] + more
      continue
    }
    const colon = line.indexOf(':')
    if (colon < 0) throw new HttpParseError('invalid-header', `header line without a colon: ${quote(line)}`)
    const name = line.slice(0, colon)
    if (!TOKEN.test(name)) {
      const why = /[ \t]$/.test(name) ? 'whitespace between header name and colon' : 'invalid header name'
      throw new HttpParseError('invalid-header', `${why}: ${quote(name)}`)
    }
    const value = trimOws(line.slice(colon + 1))
    if (!FIELD_VALUE.test(value)) throw new HttpParseError('invalid-header', `invalid characters in value of header ${name}`)
    headers.push([name, value])
  }
  return headers
}

function trimOws(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '')
}

/** All values of a header, split on commas, lower-cased, empty elements dropped. */
function listValues(headers: HeaderList, name: string): string[] {
  const out: string[] = []
  for (const [key, value] of headers) {
    if (key.toLowerCase() !== name) continue
    for (const element of value.split(',')) {
      const trimmed = element.trim().toLowerCase()
      if (trimmed.length > 0) out.push(trimmed)
    }
  }
  return out
}

function hasHeader(headers: HeaderList, name: string): boolean {
  return headers.some(([key]) => key.toLowerCase() === name)
}

function connectionPersists(headers: HeaderList, minorVersion: 0 | 1): boolean {
  const options = listValues(headers, 'connection')
  if (options.includes('close')) return false
  return minorVersion === 1 || options.includes('keep-alive')
}

function contentLength(headers: HeaderList): number | undefined {
  if (!hasHeader(headers, 'content-length')) return undefined
  let length: number | undefined
  for (const [key, value] of headers) {
    if (key.toLowerCase() !== 'content-length') continue
    for (const element of value.split(',')) {
      const digits = element.trim()
      if (!/^\d+$/.test(digits)) throw new HttpParseError('invalid-content-length', `invalid Content-Length ${quote(value)}`)
      const parsed = Number(digits)
      if (!Number.isSafeInteger(parsed)) throw new HttpParseError('invalid-content-length', `Content-Length ${digits} is too large`)
      if (length !== undefined && parsed !== length) {
        throw new HttpParseError('invalid-content-length', `conflicting Content-Length values ${length} and ${parsed}`)
      }
      length = parsed
    }
  }
  if (length === undefined) throw new HttpParseError('invalid-content-length', 'empty Content-Length')
  return length
}

/** `true` when the final transfer coding is chunked; throws on codings this stack cannot decode. */
function isChunked(headers: HeaderList): boolean | undefined {
  if (!hasHeader(headers, 'transfer-encoding')) return undefined
  const codings = listValues(headers, 'transfer-encoding').filter((coding) => coding !== 'identity')
  for (const [i, coding] of codings.entries()) {
    if (coding !== 'chunked') throw new HttpParseError('unsupported-transfer-encoding', `unsupported transfer coding ${quote(coding)}`)
    if (i !== codings.length - 1) throw new HttpParseError('unsupported-transfer-encoding', 'chunked is applied more than once')
  }
  return codings.length > 0
}

function requestFraming(headers: HeaderList): BodyFraming {
  const chunked = isChunked(headers)
  const length = contentLength(headers)
  if (chunked !== undefined && length !== undefined) {
    // Both at once is how requests get smuggled past proxies; refuse (RFC 9112 §6.3 allows it).
    throw new HttpParseError('conflicting-framing', 'request has both Transfer-Encoding and Content-Length')
  }
  if (chunked === true) return { kind: 'chunked' }
  if (chunked === false) {
    throw new HttpParseError('unsupported-transfer-encoding', 'request Transfer-Encoding does not end in chunked')
  }
  return length === undefined || length === 0 ? { kind: 'none' } : { kind: 'length', length }
}

function responseFraming(headers: HeaderList, status: number, method: string): BodyFraming {
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) return { kind: 'none' }
  const chunked = isChunked(headers)
  if (chunked === true) return { kind: 'chunked' }
  if (chunked === false) return { kind: 'until-close' }
  const length = contentLength(headers)
  if (length === undefined) return { kind: 'until-close' }
  return length === 0 ? { kind: 'none' } : { kind: 'length', length }
}

function parseChunkSize(line: string): number {
  const match = /^([0-9A-Fa-f]+)([ \t]*;[\t\x20-\x7e\x80-\xff]*)?[ \t]*$/.exec(line)
  if (!match) throw new HttpParseError('invalid-chunk-size', `invalid chunk size line ${quote(line)}`)
  const digits = match[1]!.replace(/^0+(?=.)/, '')
  const size = digits.length > 13 ? Infinity : parseInt(digits, 16)
  if (!Number.isSafeInteger(size)) throw new HttpParseError('invalid-chunk-size', `invalid chunk size line: size ${match[1]} is too large`)
  return size
}

function latin1(bytes: Uint8Array, end: number): string {
  let out = ''
  for (let i = 0; i < end; i += 4096) {
    out += String.fromCharCode(...bytes.subarray(i, Math.min(end, i + 4096)))
  }
  return out
}

function quote(text: string): string {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text
  return JSON.stringify(shown)
}
