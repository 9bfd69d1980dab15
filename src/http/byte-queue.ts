/**
 * Bytes received but not yet parsed, kept as the chunks they arrived in so that body data can be
 * handed on as views without copying. Pushed chunks are owned by the queue from then on.
 */
export class ByteQueue {
  private chunks: Uint8Array[] = []
  private offset = 0 // into chunks[0]
  private total = 0

  get length(): number {
    return this.total
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.total += chunk.length
  }

  /** The byte at `index` (relative to the unread start); the caller checks `index < length`. */
  at(index: number): number {
    let i = index + this.offset
    for (const chunk of this.chunks) {
      if (i < chunk.length) return chunk[i]!
      i -= chunk.length
    }
    throw new RangeError(`byte ${index} is past the ${this.total} queued bytes`)
  }

  /** Position of the first `byte` at or after `from`, or -1. */
  indexOf(byte: number, from: number): number {
    let base = -this.offset
    for (const chunk of this.chunks) {
      const start = Math.max(from - base, 0)
      if (start < chunk.length) {
        const found = chunk.indexOf(byte, start)
        if (found >= 0) return base + found
      }
      base += chunk.length
    }
    return -1
  }

  /** Removes and returns the next `n` bytes: a view when they lie in one chunk, else a copy. */
  take(n: number): Uint8Array {
    if (n > this.total) throw new RangeError(`cannot take ${n} of ${this.total} queued bytes`)
    const first = this.chunks[0]
    if (n === 0 || first === undefined) return new Uint8Array(0)
    if (this.offset + n <= first.length) {
      const view = first.subarray(this.offset, this.offset + n)
      this.consume(n)
      return view
    }
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.chunks[0]!
      const count = Math.min(n - filled, chunk.length - this.offset)
      out.set(chunk.subarray(this.offset, this.offset + count), filled)
      filled += count
      this.consume(count)
    }
    return out
  }

  /** Removes and returns what remains of the first chunk, at most `max` bytes (always a view). */
  takeFromFirstChunk(max: number): Uint8Array {
    const first = this.chunks[0]
    if (first === undefined) return new Uint8Array(0)
    const count = Math.min(max, first.length - this.offset)
    const view = first.subarray(this.offset, this.offset + count)
    this.consume(count)
    return view
  }

  skip(n: number): void {
    if (n > this.total) throw new RangeError(`cannot skip ${n} of ${this.total} queued bytes`)
    let left = n
    while (left > 0) {
      const count = Math.min(left, this.chunks[0]!.length - this.offset)
      this.consume(count)
      left -= count
    }
  }

  /** Everything still queued, in order (used when a connection stops speaking HTTP). */
  drain(): Uint8Array[] {
    const out = this.chunks.map((chunk, i) => (i === 0 ? chunk.subarray(this.offset) : chunk))
    this.chunks = []
    this.offset = 0
    this.total = 0
    return out
  }

  private consume(count: number): void {
    this.offset += count
    this.total -= count
    if (this.offset === this.chunks[0]!.length) {
      this.chunks.shift()
      this.offset = 0
    }
  }
}
