// A relay client's outgoing frames: control frames (pong, keepalive, PeerGone, ServerInfo) are
// few and always kept; forwarded packets are bounded by count and bytes, dropping the oldest
// first so a slow reader sees fresh data, and the newest only when it could never fit.
//
// Packet frames are written straight into append-only slabs, back to back, so a run of queued
// frames leaves as one view of a slab: one copy per packet (into the slab) and none when taking.
// Slab bytes are never rewritten because views of them may still sit in a socket's write queue.
import { Buffer } from 'node:buffer'
import { concatBytes } from '../crypto/index.ts'

export interface DropCounts {
  oldest: number
  newest: number
}

const FIRST_SLAB_BYTES = 4096
const MAX_SLAB_BYTES = 64 * 1024

export class SendQueue {
  /** Oldest frames evicted by the last `reserveData` call to make room. */
  evicted = 0
  /** Where `reserveData` placed the frame: write it into `slab` at the returned offset. */
  slab = EMPTY
  private control: Uint8Array[] = []
  // Queued packet frames as (slab, start, length) in parallel arrays: no object per frame.
  private frameSlabs: Uint8Array[] = []
  private frameStarts: number[] = []
  private frameLengths: number[] = []
  private dataHead = 0
  private dataBytes = 0
  private controlBytes = 0
  private slabOffset = 0

  constructor(
    readonly maxPackets: number,
    readonly maxBytes: number,
  ) {}

  get packets(): number {
    return this.frameSlabs.length - this.dataHead
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
   * Room at the back of the queue for one packet frame of `length` bytes: the offset in `slab` to
   * fill before the next call, or -1 when such a frame could never fit. `evicted` tells how many of
   * the oldest frames were dropped to make room.
   */
  reserveData(length: number): number {
    this.evicted = 0
    if (length > this.maxBytes || this.maxPackets === 0) return -1
    while (this.packets >= this.maxPackets || this.dataBytes + length > this.maxBytes) this.dropOldest()
    if (this.slabOffset + length > this.slab.length) {
      // Unzeroed (every byte handed out is written before anything reads it), and a plain
      // Uint8Array over its own ArrayBuffer, whose subarrays are cheaper than Buffer slices.
      this.slab = new Uint8Array(Buffer.allocUnsafeSlow(Math.max(length, Math.min(MAX_SLAB_BYTES, Math.max(FIRST_SLAB_BYTES, this.slab.length * 2)))).buffer)
      this.slabOffset = 0
    }
    const offset = this.slabOffset
    this.slabOffset += length
    this.frameSlabs.push(this.slab)
    this.frameStarts.push(offset)
    this.frameLengths.push(length)
    this.dataBytes += length
    return offset
  }

  /** Queues a copy of an encoded packet frame; returns how many frames were dropped to respect the bounds. */
  pushData(frame: Uint8Array): DropCounts {
    const offset = this.reserveData(frame.length)
    if (offset < 0) return { oldest: 0, newest: 1 }
    this.slab.set(frame, offset)
    return { oldest: this.evicted, newest: 0 }
  }

  /** Removes queued frames (control first) as one buffer of at most `maxBytes` (or one frame, if larger). */
  take(maxBytes: number): Uint8Array | undefined {
    if (this.control.length > 0) return this.takeWithControl(maxBytes)
    if (this.dataHead >= this.frameSlabs.length) return undefined
    const slab = this.frameSlabs[this.dataHead]!
    const start = this.frameStarts[this.dataHead]!
    let total = this.frameLengths[this.dataHead]!
    this.frameSlabs[this.dataHead++] = EMPTY
    // Frames written one after another into the same slab leave together, without a copy.
    while (this.dataHead < this.frameSlabs.length) {
      const length = this.frameLengths[this.dataHead]!
      if (this.frameSlabs[this.dataHead] !== slab || this.frameStarts[this.dataHead] !== start + total || total + length > maxBytes) break
      this.frameSlabs[this.dataHead++] = EMPTY
      total += length
    }
    this.dataBytes -= total
    this.compact()
    return slab.subarray(start, start + total)
  }

  clear(): void {
    this.control = []
    this.frameSlabs = []
    this.frameStarts = []
    this.frameLengths = []
    this.dataHead = 0
    this.dataBytes = 0
    this.controlBytes = 0
  }

  private dropOldest(): void {
    this.dataBytes -= this.frameLengths[this.dataHead]!
    this.frameSlabs[this.dataHead++] = EMPTY
    this.evicted++
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
      while (this.dataHead < this.frameSlabs.length && total + this.frameLengths[this.dataHead]! <= maxBytes) {
        const start = this.frameStarts[this.dataHead]!
        const length = this.frameLengths[this.dataHead]!
        parts.push(this.frameSlabs[this.dataHead]!.subarray(start, start + length))
        this.frameSlabs[this.dataHead++] = EMPTY
        this.dataBytes -= length
        total += length
      }
      this.compact()
    }
    return parts.length === 1 ? parts[0]! : concatBytes(parts)
  }

  private compact(): void {
    if (this.dataHead === this.frameSlabs.length) {
      this.frameSlabs.length = 0
      this.frameStarts.length = 0
      this.frameLengths.length = 0
      this.dataHead = 0
    } else if (this.dataHead > 1024 && this.dataHead * 2 > this.frameSlabs.length) {
      this.frameSlabs = this.frameSlabs.slice(this.dataHead)
      this.frameStarts = this.frameStarts.slice(this.dataHead)
      this.frameLengths = this.frameLengths.slice(this.dataHead)
      this.dataHead = 0
    }
  }
}

const EMPTY = new Uint8Array(0)
