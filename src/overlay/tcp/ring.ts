// A growable byte ring addressed by absolute stream offsets (plain numbers, exact up to 2^53),
// so callers never deal with wrap-around: the byte at offset `o` lives at `o % capacity`.

export class ByteRing {
  private bytes: Uint8Array
  constructor(
    initialCapacity: number,
    /** The ring never grows past this (`raiseMax` lifts it). */
    public maxCapacity: number,
  ) {
    this.bytes = new Uint8Array(Math.min(initialCapacity, maxCapacity))
  }

  get capacity(): number {
    return this.bytes.length
  }

  /** Makes room for offsets in [liveStart, liveStart + needed), keeping the live bytes [liveStart, liveEnd). */
  reserve(needed: number, liveStart: number, liveEnd: number): void {
    if (needed <= this.bytes.length) return
    if (needed > this.maxCapacity) throw new RangeError(`ring of ${this.maxCapacity} bytes cannot hold ${needed}`)
    let size = Math.max(this.bytes.length, 4096)
    while (size < needed) size *= 2
    size = Math.min(size, this.maxCapacity)
    const old = this.bytes
    const next = new Uint8Array(size)
    for (let offset = liveStart; offset < liveEnd;) {
      const from = offset % old.length
      const run = Math.min(liveEnd - offset, old.length - from)
      put(next, offset, old.subarray(from, from + run))
      offset += run
    }
    this.bytes = next
  }

  raiseMax(maxCapacity: number): void {
    if (maxCapacity > this.maxCapacity) this.maxCapacity = maxCapacity
  }

  /** Drops the storage of a ring that holds nothing live; it grows again if written. */
  release(): void {
    this.bytes = new Uint8Array(0)
  }

  write(offset: number, data: Uint8Array): void {
    put(this.bytes, offset, data)
  }

  /** A view when the range does not wrap, else a copy. Views are only valid until the next write. */
  view(offset: number, length: number): Uint8Array {
    const size = this.bytes.length
    const at = offset % size
    if (at + length <= size) return this.bytes.subarray(at, at + length)
    const out = new Uint8Array(length)
    const first = size - at
    out.set(this.bytes.subarray(at), 0)
    out.set(this.bytes.subarray(0, length - first), first)
    return out
  }

  copy(offset: number, length: number): Uint8Array {
    const v = this.view(offset, length)
    return v.buffer === this.bytes.buffer ? v.slice() : v
  }
}

function put(target: Uint8Array, offset: number, data: Uint8Array): void {
  const size = target.length
  const at = offset % size
  const first = Math.min(data.length, size - at)
  target.set(first === data.length ? data : data.subarray(0, first), at)
  if (first < data.length) target.set(data.subarray(first), 0)
}
