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

/**
 * Sends `first` (already read from the body, may be undefined) and then the rest of `reader`,
 * framed as `framing`. A length-framed body that turns out longer or shorter is an error, since the
 * peer would otherwise misread the connection.
 */
export async function writeBody(
  connection: HttpConnection,
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
  framing: OutgoingFraming,
  first?: Uint8Array,
): Promise<void> {
  let sent = 0
  const send = async (chunk: Uint8Array): Promise<void> => {
    if (chunk.length === 0) return
    if (framing.kind === 'length' && sent + chunk.length > framing.length) {
      throw new BodySourceError(`body is longer than its Content-Length of ${framing.length}`)
    }
    sent += chunk.length
    if (framing.kind === 'chunked') {
      await connection.writeAll([latin1Bytes(`${chunk.length.toString(16)}\r\n`), chunk, CRLF])
    } else {
      await connection.write(chunk)
    }
  }
  if (first !== undefined) await send(first)
  if (reader !== undefined) {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>
      try {
        result = await reader.read()
      } catch (error) {
        throw new BodySourceError(`body stream failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
      }
      if (result.done) break
      if (!(result.value instanceof Uint8Array)) throw new BodySourceError('body stream yielded a chunk that is not a Uint8Array')
      await send(result.value)
    }
  }
  if (framing.kind === 'length' && sent !== framing.length) {
    throw new BodySourceError(`body ended after ${sent} of its ${framing.length} Content-Length bytes`)
  }
  if (framing.kind === 'chunked') await connection.write(LAST_CHUNK)
}
