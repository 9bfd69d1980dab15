import { allocateBytes as importedAllocateBytes } from '../../wire/index.ts'

// A module-local copy: under tsx/vitest's ESM→CJS interop each use of an import is a getter call.
const allocateBytes = importedAllocateBytes

/** A received byte range [start, end) by stream offset. */
export interface Range {
  start: number
  end: number
}

/** Out-of-order bytes the buffer owns, starting at stream offset `start`. */
interface Piece {
  start: number
  bytes: Uint8Array
}

/**
 * Received bytes by stream offset (offset 0 is the first data byte after the peer's SYN):
 * in-order bytes waiting for the application, plus out-of-order ranges held until the hole
 * before them fills, bounded by `capacity` bytes past the read position, so out-of-order data
 * is kept up to exactly the window the connection advertises.
 *
 * Bytes are copied once, out of the segment into an owned chunk (a slab view when small); `read` hands those chunks (or
 * views of them) to the application without a second copy, since a chunk is never written
 * again. Only a read spanning several chunks copies them into one.
 */
export class ReceiveBuffer {
  /** Next byte the application reads. */
  private readOffset = 0
  /** One past the last in-order byte (RCV.NXT for data). */
  private contiguousEnd = 0
  /** Out-of-order ranges above `contiguousEnd`, sorted and disjoint. */
  private readonly held: Range[] = []
  /** The range touched by the latest insert, reported first in SACK (RFC 2018 §4). */
  private latest: Range | undefined
  /** In-order bytes not yet read, oldest first; the first chunk's first `headSkip` bytes were read. */
  private ready: Uint8Array[] = []
  private headSkip = 0
  /** The bytes of `held`: disjoint, sorted by start, together covering exactly the held ranges. */
  private pieces: Piece[] = []

  constructor(
    /** Bytes held past the read position; `grow` raises it (receive-window autotuning). */
    public capacity: number,
  ) {}

  /** RCV.NXT as a data offset. */
  get end(): number {
    return this.contiguousEnd
  }
  /** Bytes the application has read so far. */
  get consumed(): number {
    return this.readOffset
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

  /** Raises the capacity (never lowers it: a window once offered is not taken back, RFC 9293 §3.8.6.2.2). */
  grow(capacity: number): void {
    const bytes = Math.floor(capacity)
    if (bytes > this.capacity) this.capacity = bytes
  }

  /**
   * Stores `data` received at `offset`, clipped to what is new and fits. Returns how far the
   * in-order end advanced (0 for out-of-order or duplicate data). `owned`: nobody writes to
   * `data` again, so in-order bytes are kept as a view instead of a copy.
   */
  insert(offset: number, data: Uint8Array, owned = false): number {
    const start = Math.max(offset, this.contiguousEnd)
    const end = Math.min(offset + data.length, this.limit)
    if (end <= start) return 0
    if (this.held.length === 0 && start === this.contiguousEnd) {
      // The usual in-order segment: one copy, no bookkeeping objects.
      const bytes = start === offset && end - offset === data.length ? data : data.subarray(start - offset, end - offset)
      this.ready.push(owned ? bytes : ownedCopy(bytes))
      this.contiguousEnd = end
      this.latest = undefined
      return end - start
    }
    // Keep only the bytes no held range has yet.
    let at = start
    for (const range of this.held) {
      if (at >= end || range.start >= end) break
      if (range.end <= at) continue
      if (range.start > at) this.storePiece(at, data.subarray(at - offset, range.start - offset))
      at = range.end
    }
    if (at < end) this.storePiece(at, data.subarray(at - offset, end - offset))
    if (start === this.contiguousEnd) {
      this.contiguousEnd = end
      this.latest = undefined
      // Absorb held ranges the new bytes reached.
      while (this.held.length > 0 && this.held[0]!.start <= this.contiguousEnd) {
        const first = this.held.shift()!
        if (first.end > this.contiguousEnd) this.contiguousEnd = first.end
        if (this.latest === first) this.latest = undefined
      }
      // Their pieces (and the new bytes) now lie in order below contiguousEnd.
      let moved = 0
      while (moved < this.pieces.length && this.pieces[moved]!.start < this.contiguousEnd) this.ready.push(this.pieces[moved++]!.bytes)
      this.pieces.splice(0, moved)
      return this.contiguousEnd - start
    }
    this.latest = this.merge(start, end)
    return 0
  }

  /** Files an owned copy of `bytes` (not covered by any held range) at `start`. */
  private storePiece(start: number, bytes: Uint8Array): void {
    const piece = { start, bytes: ownedCopy(bytes) }
    let i = this.pieces.length
    while (i > 0 && this.pieces[i - 1]!.start > start) i--
    if (i === this.pieces.length) this.pieces.push(piece)
    else this.pieces.splice(i, 0, piece)
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
    if (this.readable === 0 && this.held.length === 0) {
      this.ready = []
      this.pieces = []
      this.headSkip = 0
    }
  }

  /** Takes up to `max` in-order bytes, or undefined when none are waiting. The caller owns them. */
  read(max = Infinity): Uint8Array | undefined {
    const n = Math.min(max, this.readable)
    if (n <= 0) return undefined
    this.readOffset += n
    const first = this.ready[0]!
    const skip = this.headSkip
    if (first.length - skip >= n) {
      const out = skip === 0 && n === first.length ? first : first.subarray(skip, skip + n)
      this.consumeHead(first, skip + n)
      return out
    }
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.ready[0]!
      const from = this.headSkip
      const take = Math.min(chunk.length - from, n - filled)
      out.set(from === 0 && take === chunk.length ? chunk : chunk.subarray(from, from + take), filled)
      filled += take
      this.consumeHead(chunk, from + take)
    }
    return out
  }

  private consumeHead(chunk: Uint8Array, upTo: number): void {
    if (upTo === chunk.length) {
      this.ready.shift()
      this.headSkip = 0
    } else {
      this.headSkip = upTo
    }
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

/** A copy the buffer owns; small ones are views into a shared slab (src/wire/slab.ts). */
function ownedCopy(bytes: Uint8Array): Uint8Array {
  const copy = allocateBytes(bytes.length)
  copy.set(bytes)
  return copy
}
