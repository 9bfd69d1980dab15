// A relay client's outgoing frames: control frames (pong, keepalive, PeerGone, ServerInfo) are
// few and always kept; forwarded packets are bounded by count and bytes, dropping the oldest
// first so a slow reader sees fresh data, and the newest only when it could never fit.
//
// Packet frames are written straight into append-only slabs, back to back, so a run of queued
// frames leaves as one view of a slab: one copy per packet (into the slab) and none when taking.
// Slab bytes are never rewritten because views of them may still sit in a socket's write queue.

export interface DropCounts {
  oldest: number
  newest: number
}

const FIRST_SLAB_BYTES = 4096
const MAX_SLAB_BYTES = 64 * 1024

export class SendQueue {
  /** Oldest frames evicted by the last `reserveData` call to make room. */
  evicted = 0
  private control: Uint8Array[] = []
  private data: Uint8Array[] = []
  private dataHead = 0
  private dataBytes = 0
  private controlBytes = 0
  private slab = EMPTY
  private slabOffset = 0

  constructor(
    readonly maxPackets: number,
    readonly maxBytes: number,
  ) {}

  get packets(): number {
    return this.data.length - this.dataHead
  }

  get bytes(): number {
    return this.dataBytes + this.controlBytes
  }

  get isEmpty(): boolean {
    return this.control.length === 0 && this.packets === 0
  }

  pushControl(frame: Uint8Array): void {
    this.control.push(frame)
    this.controlBytes += frame.length
  }

  /**
   * Room at the back of the queue for one packet frame of `length` bytes, to be filled before the
   * next call; undefined when such a frame could never fit. `evicted` tells how many of the oldest
   * frames were dropped to make room.
   */
  reserveData(length: number): Uint8Array | undefined {
    this.evicted = 0
    if (length > this.maxBytes || this.maxPackets === 0) return undefined
    while (this.packets >= this.maxPackets || this.dataBytes + length > this.maxBytes) {
      this.dataBytes -= this.data[this.dataHead]!.length
      this.data[this.dataHead++] = EMPTY
      this.evicted++
    }
    if (this.slabOffset + length > this.slab.length) {
      this.slab = new Uint8Array(Math.max(length, Math.min(MAX_SLAB_BYTES, Math.max(FIRST_SLAB_BYTES, this.slab.length * 2))))
      this.slabOffset = 0
    }
    const view = this.slab.subarray(this.slabOffset, this.slabOffset + length)
    this.slabOffset += length
    this.data.push(view)
    this.dataBytes += length
    return view
  }

  /** Queues a copy of an encoded packet frame; returns how many frames were dropped to respect the bounds. */
  pushData(frame: Uint8Array): DropCounts {
    const view = this.reserveData(frame.length)
    if (!view) return { oldest: 0, newest: 1 }
    view.set(frame)
    return { oldest: this.evicted, newest: 0 }
  }

  /** Removes queued frames (control first) as one buffer of at most `maxBytes` (or one frame, if larger). */
  take(maxBytes: number): Uint8Array | undefined {
    if (this.control.length > 0) return this.takeWithControl(maxBytes)
    if (this.dataHead >= this.data.length) return undefined
    const first = this.data[this.dataHead]!
    this.data[this.dataHead++] = EMPTY
    let total = first.length
    // Frames written one after another into the same slab leave together, without a copy.
    while (this.dataHead < this.data.length) {
      const next = this.data[this.dataHead]!
      if (next.buffer !== first.buffer || next.byteOffset !== first.byteOffset + total || total + next.length > maxBytes) break
      this.data[this.dataHead++] = EMPTY
      total += next.length
    }
    this.dataBytes -= total
    this.compact()
    return total === first.length ? first : new Uint8Array(first.buffer, first.byteOffset, total)
  }

  clear(): void {
    this.control = []
    this.data = []
    this.dataHead = 0
    this.dataBytes = 0
    this.controlBytes = 0
  }

  /** Control frames are rare (keepalives, pongs, PeerGone): they and the data after them are copied into one message. */
  private takeWithControl(maxBytes: number): Uint8Array {
    const parts: Uint8Array[] = []
    let total = 0
    while (this.control.length > 0 && (parts.length === 0 || total + this.control[0]!.length <= maxBytes)) {
      const frame = this.control.shift()!
      this.controlBytes -= frame.length
      parts.push(frame)
      total += frame.length
    }
    if (this.control.length === 0) {
      while (this.dataHead < this.data.length && total + this.data[this.dataHead]!.length <= maxBytes) {
        const frame = this.data[this.dataHead]!
        this.data[this.dataHead++] = EMPTY
        this.dataBytes -= frame.length
        parts.push(frame)
        total += frame.length
      }
      this.compact()
    }
    if (parts.length === 1) return parts[0]!
    const out = new Uint8Array(total)
    let offset = 0
    for (const part of parts) {
      out.set(part, offset)
      offset += part.length
    }
    return out
  }

  private compact(): void {
    if (this.dataHead === this.data.length) {
      this.data.length = 0
      this.dataHead = 0
    } else if (this.dataHead > 1024 && this.dataHead * 2 > this.data.length) {
      this.data = this.data.slice(this.dataHead)
      this.dataHead = 0
    }
  }
}

const EMPTY = new Uint8Array(0)
