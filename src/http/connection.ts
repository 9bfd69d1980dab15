import { concatBytes } from '../crypto/index.ts'
import { HttpConnectionError } from './errors.ts'
import type { HttpEvent, HttpParser } from './parser.ts'

/** A connected byte stream in the shape of a Direct Sockets `TCPSocket`'s opened streams. */
export interface ByteStreamSocket {
  readable: ReadableStream<Uint8Array>
  writable: WritableStream<Uint8Array>
  close?(): void | Promise<void>
}

const noop = (): void => {}
// Pieces are joined (copied) up to this total; past it, large pieces are written without a copy.
const JOIN_LIMIT = 64 * 1024
const LARGE_PIECE = 16 * 1024

function join(pieces: Uint8Array[]): Uint8Array {
  return pieces.length === 1 ? pieces[0]! : concatBytes(pieces)
}

/**
 * The thin I/O shell around one parser and one socket: reads only when the parser needs bytes
 * (so a slow consumer stops the socket, which is the backpressure), and serializes readers so that
 * two consumers never interleave events.
 */
export class HttpConnection {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>
  private readonly parser: HttpParser
  private readonly socket: ByteStreamSocket
  private queue: Promise<unknown> = Promise.resolve()
  private closing = false
  private destroyReason: unknown

  constructor(socket: ByteStreamSocket, parser: HttpParser) {
    this.socket = socket
    this.parser = parser
    this.reader = socket.readable.getReader()
    this.writer = socket.writable.getWriter()
  }

  /** Received bytes not yet turned into events (a pipelined request, say). */
  get bufferedInput(): number {
    return this.parser.bufferedLength
  }

  get isClosed(): boolean {
    return this.closing
  }

  /** Why the connection was torn down, if it was. */
  get failure(): unknown {
    return this.destroyReason
  }

  /** The next parser event, reading from the socket as needed; calls run one after another. */
  nextEvent(): Promise<HttpEvent> {
    const result = this.queue.then(() => this.readEvent())
    this.queue = result.catch(noop)
    return result
  }

  /**
   * Waits until the socket delivers bytes (or its end) and hands them to the parser without parsing:
   * how an idle keep-alive connection notices that the peer closed it or spoke out of turn.
   * Resolves true when the stream ended.
   */
  fill(): Promise<boolean> {
    const result = this.queue.then(() => this.readChunk())
    this.queue = result.catch(noop)
    return result
  }

  private async readEvent(): Promise<HttpEvent> {
    for (;;) {
      const event = this.parser.next()
      if (event !== null) return event
      await this.readChunk()
    }
  }

  private async readChunk(): Promise<boolean> {
    if (this.closing) {
      throw new HttpConnectionError('connection was closed locally', { cause: this.destroyReason })
    }
    let chunk: ReadableStreamReadResult<Uint8Array>
    try {
      chunk = await this.reader.read()
    } catch (error) {
      throw new HttpConnectionError(`connection failed while reading: ${describe(error)}`, { cause: error })
    }
    if (this.closing) {
      throw new HttpConnectionError('connection was closed locally', { cause: this.destroyReason })
    }
    if (chunk.done) {
      this.parser.finish()
      return true
    }
    if (!(chunk.value instanceof Uint8Array)) throw new TypeError('socket readable yielded a non-Uint8Array chunk')
    this.parser.push(chunk.value)
    return false
  }

  /** Writes bytes, waiting for the socket to accept them (its backpressure). */
  async write(bytes: Uint8Array): Promise<void> {
    try {
      await this.writer.write(bytes)
    } catch (error) {
      throw new HttpConnectionError(`connection failed while writing: ${describe(error)}`, { cause: error })
    }
  }

  /**
   * Writes several pieces with as few writes as is cheap: separate small writes of a head, a
   * chunk-size line and CRLF would leave as separate segments and meet Nagle's algorithm and delayed
   * ACKs (a 40 ms stall). Small pieces are joined; a large piece goes out as it is rather than copied.
   */
  async writeAll(pieces: Uint8Array[]): Promise<void> {
    if (pieces.length === 1) return this.write(pieces[0]!)
    let total = 0
    for (const piece of pieces) total += piece.length
    const writes: Promise<void>[] = []
    let batch: Uint8Array[] = []
    const flush = (): void => {
      if (batch.length > 0) writes.push(this.write(join(batch)))
      batch = []
    }
    for (const piece of pieces) {
      if (total > JOIN_LIMIT && piece.length >= LARGE_PIECE) {
        flush()
        writes.push(this.write(piece))
      } else {
        batch.push(piece)
      }
    }
    flush()
    for (const write of writes.slice(0, -1)) write.catch(noop)
    await Promise.all(writes)
  }

  /** Finishes sending (FIN after queued writes), stops reading, releases the socket. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    await this.writer.close().catch(noop)
    await this.reader.cancel().catch(noop)
    await Promise.resolve(this.socket.close?.()).catch(noop)
  }

  /**
   * Half-closes, then reads and drops what the peer still sends (bounded in bytes and time) before
   * releasing the socket: closing with unread input makes TCP answer with RST, which can destroy the
   * response before the peer has read it (RFC 9112 §9.6).
   */
  async lingerClose(maxBytes = 256 * 1024, timeoutMs = 2_000): Promise<void> {
    if (this.closing) return
    this.closing = true
    await this.writer.close().catch(noop)
    const timer = setTimeout(() => void this.reader.cancel().catch(noop), timeoutMs)
    try {
      let discarded = 0
      while (discarded <= maxBytes) {
        const result = await this.reader.read()
        if (result.done) break
        discarded += result.value.length
      }
    } catch {
      // The peer reset or the timer cancelled: either way there is nothing more to wait for.
    }
    clearTimeout(timer)
    await this.reader.cancel().catch(noop)
    await Promise.resolve(this.socket.close?.()).catch(noop)
  }

  /** Tears the connection down at once, discarding anything unsent. */
  destroy(reason?: unknown): void {
    if (this.closing) return
    this.closing = true
    this.destroyReason = reason
    this.writer.abort(reason).catch(noop)
    this.reader.cancel(reason).catch(noop)
    Promise.resolve()
      .then(() => this.socket.close?.())
      .catch(noop)
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
