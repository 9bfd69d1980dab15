import { ByteRing } from './ring.ts'

/**
 * Bytes the application wrote and the peer has not acknowledged yet, by stream offset
 * (offset 0 is the first data byte after the SYN). Acknowledged bytes are released at once.
 */
export class SendBuffer {
  private readonly ring: ByteRing
  /** First byte not yet acknowledged. */
  private head = 0
  /** One past the last byte written. */
  private tail = 0

  constructor(
    /** Bytes the application may queue; `grow` raises it (send-buffer autotuning). */
    public capacity: number,
  ) {
    this.ring = new ByteRing(Math.min(capacity, 16 * 1024), capacity)
  }

  get start(): number {
    return this.head
  }
  get end(): number {
    return this.tail
  }
  get length(): number {
    return this.tail - this.head
  }
  get space(): number {
    return this.capacity - this.length
  }

  /** Raises the capacity; it is never lowered under data already queued. */
  grow(capacity: number): void {
    const bytes = Math.floor(capacity)
    if (bytes <= this.capacity) return
    this.capacity = bytes
    this.ring.raiseMax(bytes)
  }

  /** Appends as much of `data` as fits and returns how many bytes were taken. */
  write(data: Uint8Array): number {
    const n = Math.min(data.length, this.space)
    if (n === 0) return 0
    this.ring.reserve(this.length + n, this.head, this.tail)
    this.ring.write(this.tail, n === data.length ? data : data.subarray(0, n))
    this.tail += n
    return n
  }

  /** Bytes [offset, offset + length) — a view valid until the next write. */
  slice(offset: number, length: number): Uint8Array {
    if (offset < this.head || offset + length > this.tail) {
      throw new RangeError(`send buffer holds [${this.head}, ${this.tail}), not [${offset}, ${offset + length})`)
    }
    return this.ring.view(offset, length)
  }

  /** Frees the memory of an empty buffer (a connection in TIME_WAIT keeps only its sequence state). */
  release(): void {
    if (this.length === 0) this.ring.release()
  }

  /** Releases everything before `offset`. */
  acknowledge(offset: number): void {
    if (offset > this.head) this.head = Math.min(offset, this.tail)
  }
}
