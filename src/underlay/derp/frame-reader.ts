// Reassembles DERP frames from a byte stream whose chunk boundaries mean nothing: a WebSocket
// message or a TCP read may hold part of a frame, one frame, or many.
import { DerpFrameError, FRAME_HEADER_LENGTH, maxPayloadLength, readU32 } from './frames.ts'

export interface RawFrame {
  type: number
  /** A view into received bytes when the frame arrived in one chunk, else a fresh copy. */
  payload: Uint8Array
}

export class FrameReader {
  private readonly chunks: Uint8Array[] = []
  /** Bytes of chunks[0] already consumed. */
  private headOffset = 0
  private bufferedBytes = 0
  /** The frame `advance` moved to. */
  type = 0
  bytes: Uint8Array = new Uint8Array(0)
  start = 0
  length = 0

  /** `limit` gives the longest payload accepted for a frame type (default: the protocol's limits). */
  constructor(private readonly limit: (type: number) => number = maxPayloadLength) {}

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.bufferedBytes
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.bufferedBytes += chunk.length
  }

  /**
   * The next complete frame, or undefined until more bytes arrive. Throws DerpFrameError when
   * a header announces a frame longer than the limit; the reader then stays at that header.
   */
  next(): RawFrame | undefined {
    if (!this.advance()) return undefined
    return { type: this.type, payload: this.bytes.subarray(this.start, this.start + this.length) }
  }

  /**
   * Moves to the next complete frame without allocating (unless it spans chunks): its type is in
   * `type` and its payload is `bytes[start, start + length)`, valid until the next call. False
   * until more bytes arrive; throws like `next`.
   */
  advance(): boolean {
    if (this.bufferedBytes < FRAME_HEADER_LENGTH) return false
    const head = this.chunks[0]!
    let type: number
    let length: number
    if (head.length - this.headOffset >= FRAME_HEADER_LENGTH) {
      type = head[this.headOffset]!
      length = readU32(head, this.headOffset + 1)
    } else {
      const header = this.peek(FRAME_HEADER_LENGTH)
      type = header[0]!
      length = readU32(header, 1)
    }
    const max = this.limit(type)
    if (length > max) {
      throw new DerpFrameError(`frame type 0x${type.toString(16)} announces ${length} bytes, over the ${max}-byte limit`)
    }
    const total = FRAME_HEADER_LENGTH + length
    if (this.bufferedBytes < total) return false
    this.type = type
    this.length = length
    if (head.length - this.headOffset >= total) {
      this.bytes = head
      this.start = this.headOffset + FRAME_HEADER_LENGTH
      this.consume(total)
      return true
    }
    this.consume(FRAME_HEADER_LENGTH)
    this.bytes = this.peek(length)
    this.start = 0
    this.consume(length)
    return true
  }

  /** Copies the next `length` buffered bytes without consuming them. */
  private peek(length: number): Uint8Array {
    const out = new Uint8Array(length)
    let filled = 0
    let offset = this.headOffset
    for (let i = 0; filled < length; i++) {
      const chunk = this.chunks[i]!
      const take = Math.min(chunk.length - offset, length - filled)
      out.set(chunk.subarray(offset, offset + take), filled)
      filled += take
      offset = 0
    }
    return out
  }

  private consume(length: number): void {
    this.bufferedBytes -= length
    while (length > 0) {
      const head = this.chunks[0]!
      const left = head.length - this.headOffset
      if (length < left) {
        this.headOffset += length
        return
      }
      length -= left
      this.chunks.shift()
      this.headOffset = 0
    }
  }
}
