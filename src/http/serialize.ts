import type { HttpConnection } from './connection.ts'
import type { HeaderList } from './parser.ts'

/** Connection-specific fields that this layer owns; callers' copies are dropped (RFC 9110 §7.6.1). */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade', 'content-length'])

const CRLF = Uint8Array.of(0x0d, 0x0a)
const LAST_CHUNK = Uint8Array.of(0x30, 0x0d, 0x0a, 0x0d, 0x0a) // "0\r\n\r\n"

/** How an outgoing body is delimited. */
export type OutgoingFraming = { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'until-close' }

/** Start line and fields as bytes; values are ByteStrings (Headers guarantees no CR/LF/NUL). */
export function encodeHead(startLine: string, headers: HeaderList): Uint8Array {
  let text = `${startLine}\r\n`
  for (const [name, value] of headers) text += `${name}: ${value}\r\n`
  text += '\r\n'
  return latin1Bytes(text)
}

export function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff
  return out
}

/** The framing header a body needs, if any. */
export function framingHeader(framing: OutgoingFraming): [string, string] | undefined {
  if (framing.kind === 'length') return ['content-length', String(framing.length)]
  if (framing.kind === 'chunked') return ['transfer-encoding', 'chunked']
  return undefined
}

/** A body source that is not a Uint8Array stream at all: the caller's mistake, named as such. */
export class BodySourceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BodySourceError'
  }
}

/** Produces the next body chunk, or `undefined` at the end. */
export type ChunkSource = () => Promise<Uint8Array | undefined>

/** Reads a WHATWG stream as a `ChunkSource`. */
export function streamSource(reader: ReadableStreamDefaultReader<Uint8Array>): ChunkSource {
  return async () => {
    const result = await reader.read()
    return result.done ? undefined : result.value
  }
}

/** A `ChunkSource` over chunks already in hand. */
export function arraySource(chunks: Uint8Array[]): ChunkSource {
  let index = 0
  return async () => chunks[index++]
}

/**
 * Sends what `next` produces, framed as `framing`, after `head` if given (sent in the same write as
 * the first chunk, so a small message leaves as one segment). A length-framed body that turns out
 * longer or shorter is an error, since the peer would otherwise misread the rest of the connection.
 */
export async function writeBody(connection: HttpConnection, next: ChunkSource, framing: OutgoingFraming, head?: Uint8Array): Promise<void> {
  let pending: Uint8Array[] = head === undefined ? [] : [head]
  let sent = 0
  for (;;) {
    let chunk: Uint8Array | undefined
    try {
      chunk = await next()
    } catch (error) {
      throw new BodySourceError(`body stream failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
    if (chunk === undefined) break
    if (!(chunk instanceof Uint8Array)) throw new BodySourceError('body stream yielded a chunk that is not a Uint8Array')
    if (chunk.length === 0) continue
    if (framing.kind === 'length' && sent + chunk.length > framing.length) {
      throw new BodySourceError(`body is longer than its Content-Length of ${framing.length}`)
    }
    sent += chunk.length
    if (framing.kind === 'chunked') pending.push(latin1Bytes(`${chunk.length.toString(16)}\r\n`), chunk)
    else pending.push(chunk)
    await connection.writeAll(pending)
    // The chunk's closing CRLF rides with the next write, so no write is ever just two bytes.
    pending = framing.kind === 'chunked' ? [CRLF] : []
  }
  if (framing.kind === 'length' && sent !== framing.length) {
    throw new BodySourceError(`body ended after ${sent} of its ${framing.length} Content-Length bytes`)
  }
  if (framing.kind === 'chunked') pending.push(LAST_CHUNK)
  if (pending.length > 0) await connection.writeAll(pending)
}
