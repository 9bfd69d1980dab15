import { ByteRing } from './ring.ts'

/** A received byte range [start, end) by stream offset. */
export interface Range {
  start: number
  end: number
}

/**
 * Received bytes by stream offset (offset 0 is the first data byte after the peer's SYN):
 * in-order bytes waiting for the application, plus out-of-order ranges held until the hole
 * before them fills. Everything lives in one ring bounded by `capacity`, so out-of-order data
 * is kept up to exactly the window the connection advertises.
 */
export class ReceiveBuffer {
  private readonly ring: ByteRing
  /** Next byte the application reads. */
  private readOffset = 0
  /** One past the last in-order byte (RCV.NXT for data). */
  private contiguousEnd = 0
  /** Out-of-order ranges above `contiguousEnd`, sorted and disjoint. */
  private readonly held: Range[] = []
  /** The range touched by the latest insert, reported first in SACK (RFC 2018 §4). */
  private latest: Range | undefined

  constructor(readonly capacity: number) {
    this.ring = new ByteRing(Math.min(capacity, 16 * 1024), capacity)
  }

  /** RCV.NXT as a data offset. */
  get end(): number {
    return this.contiguousEnd
  }
  /** In-order bytes the application has not read. */
  get readable(): number {
    return this.contiguousEnd - this.readOffset
  }
  /** Highest offset the buffer can hold right now (exclusive). */
  get limit(): number {
    return this.readOffset + this.capacity
  }
  get hasHeld(): boolean {
    return this.held.length > 0
  }
  get heldBytes(): number {
    let n = 0
    for (const r of this.held) n += r.end - r.start
    return n
  }

  /**
   * Stores `data` received at `offset`, clipped to what is new and fits. Returns how far the
   * in-order end advanced (0 for out-of-order or duplicate data).
   */
  insert(offset: number, data: Uint8Array): number {
    const start = Math.max(offset, this.contiguousEnd)
    const end = Math.min(offset + data.length, this.limit)
    if (end <= start) return 0
    const liveEnd = this.heldEnd()
    this.ring.reserve(Math.max(end, liveEnd) - this.readOffset, this.readOffset, liveEnd)
    // The usual in-order segment is stored whole: no view object per packet.
    this.ring.write(start, start === offset && end - offset === data.length ? data : data.subarray(start - offset, end - offset))
    if (start === this.contiguousEnd) {
      this.contiguousEnd = end
      this.latest = undefined
      // Absorb held ranges the new bytes reached.
      while (this.held.length > 0 && this.held[0]!.start <= this.contiguousEnd) {
        const first = this.held.shift()!
        if (first.end > this.contiguousEnd) this.contiguousEnd = first.end
        if (this.latest === first) this.latest = undefined
      }
      return this.contiguousEnd - start
    }
    this.latest = this.merge(start, end)
    return 0
  }

  private heldEnd(): number {
    return this.held.length > 0 ? this.held[this.held.length - 1]!.end : this.contiguousEnd
  }

  private merge(start: number, end: number): Range {
    let i = 0
    while (i < this.held.length && this.held[i]!.end < start) i++
    let j = i
    let s = start
    let e = end
    while (j < this.held.length && this.held[j]!.start <= e) {
      s = Math.min(s, this.held[j]!.start)
      e = Math.max(e, this.held[j]!.end)
      j++
    }
    const merged = { start: s, end: e }
    this.held.splice(i, j - i, merged)
    return merged
  }

  /** Frees the memory once nothing is waiting to be read. */
  release(): void {
    if (this.readable === 0 && this.held.length === 0) this.ring.release()
  }

  /** Copies out up to `max` in-order bytes, or undefined when none are waiting. */
  read(max = Infinity): Uint8Array | undefined {
    const n = Math.min(max, this.readable)
    if (n <= 0) return undefined
    const out = this.ring.copy(this.readOffset, n)
    this.readOffset += n
    return out
  }

  /** Up to `count` held ranges, the most recently changed first (RFC 2018 §4). */
  sackBlocks(count: number): Range[] {
    const blocks: Range[] = []
    if (this.latest) blocks.push(this.latest)
    for (let i = this.held.length - 1; i >= 0 && blocks.length < count; i--) {
      if (this.held[i] !== this.latest) blocks.push(this.held[i]!)
    }
    return blocks.slice(0, count)
  }
}
