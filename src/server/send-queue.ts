// A relay client's outgoing frames. Control frames (ServerInfo, pong, keepalive, PeerGone,
// Health) sit in a small fixed ring: O(1) to push and take, and bounded, so a client that pings
// without reading cannot grow it (Tailscale's derper keeps a single pending pong and drops the
// rest, derp/derpserver/derpserver.go handleFramePing). Forwarded packets are bounded by count
// and bytes; when full, the source holding more than its fair share of the queue loses its own
// packets first, so one sender flooding a destination cannot evict other senders' packets.
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
/** Default ring size for control frames; a healthy client never has more than a handful queued. */
export const DEFAULT_CONTROL_FRAMES = 64

export class SendQueue {
  /** Frames evicted by the last `reserveData` call to make room. */
  evicted = 0
  /** Whether the last refused `reserveData` was refused because its source already held its fair share. */
  refusedOverShare = false
  /** Where `reserveData` placed the frame: write it into `slab` at the returned offset. */
  slab = EMPTY
  private readonly control: Array<Uint8Array | undefined>
  private controlHead = 0
  private controlLength = 0
  // Queued packet frames as (slab, start, length, source) in parallel arrays: no object per frame.
  // An evicted frame in the middle becomes a tombstone (EMPTY slab, length 0) that `take` skips.
  private frameSlabs: Uint8Array[] = []
  private frameStarts: number[] = []
  private frameLengths: number[] = []
  private frameSources: number[] = []
  private dataHead = 0
  private live = 0
  private dataBytes = 0
  private controlBytes = 0
  private slabOffset = 0
  /** Queued packets per source; only sources with packets queued are present. */
  private readonly perSource = new Map<number, number>()

  constructor(
    readonly maxPackets: number,
    readonly maxBytes: number,
    readonly maxControl = DEFAULT_CONTROL_FRAMES,
  ) {
    if (!Number.isInteger(maxControl) || maxControl < 1) throw new RangeError(`maxControl must be a positive integer, got ${maxControl}`)
    this.control = new Array<Uint8Array | undefined>(maxControl)
  }

  get packets(): number {
    return this.live
  }

  get controlFrames(): number {
    return this.controlLength
  }

  get bytes(): number {
    return this.dataBytes + this.controlBytes
  }

  get isEmpty(): boolean {
    return this.controlLength === 0 && this.live === 0
  }

  /** Queues a control frame; false (nothing queued) when the ring is full. */
  pushControl(frame: Uint8Array): boolean {
    if (this.controlLength === this.maxControl) return false
    this.control[(this.controlHead + this.controlLength) % this.maxControl] = frame
    this.controlLength++
    this.controlBytes += frame.length
    return true
  }

  /** How many packets from `source` are queued. */
  packetsFrom(source: number): number {
    return this.perSource.get(source) ?? 0
  }

  /**
   * Room at the back of the queue for one packet frame of `length` bytes from `source`: the offset
   * in `slab` to fill before the next call, or -1 when the frame is refused (it could never fit,
   * or the queue is full and `source` already holds at least its fair share). `evicted` tells how
   * many frames were dropped to make room.
   */
  reserveData(length: number, source = 0): number {
    this.evicted = 0
    this.refusedOverShare = false
    if (length > this.maxBytes || this.maxPackets === 0) return -1
    if (this.live >= this.maxPackets || this.dataBytes + length > this.maxBytes) {
      const own = this.perSource.get(source) ?? 0
      const sources = this.perSource.size + (own === 0 ? 1 : 0)
      if (sources > 1 && (own + 1) * sources > this.maxPackets) {
        this.refusedOverShare = true
        return -1
      }
      while (this.live >= this.maxPackets || this.dataBytes + length > this.maxBytes) this.evictFromLargest()
    }
    if (this.slabOffset + length > this.slab.length) {
      // Unzeroed (every byte handed out is written before anything reads it), and a plain
      // Uint8Array over its own ArrayBuffer, whose subarrays are cheaper than Buffer slices.
      this.slab = new Uint8Array(Buffer.allocUnsafeSlow(Math.max(length, Math.min(MAX_SLAB_BYTES, Math.max(FIRST_SLAB_BYTES, this.slab.length * 2)))).buffer)
      this.slabOffset = 0
    }
    const offset = this.slabOffset
    this.slabOffset += length
    // Tombstones left by evictions in the middle of a queue nobody reads must not pile up.
    if (this.frameSlabs.length - this.dataHead > 2 * this.maxPackets + 1024) this.dropTombstones()
    this.frameSlabs.push(this.slab)
    this.frameStarts.push(offset)
    this.frameLengths.push(length)
    this.frameSources.push(source)
    this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1)
    this.live++
    this.dataBytes += length
    return offset
  }

  /** Queues a copy of an encoded packet frame; returns how many frames were dropped to respect the bounds. */
  pushData(frame: Uint8Array, source = 0): DropCounts {
    const offset = this.reserveData(frame.length, source)
    if (offset < 0) return { oldest: 0, newest: 1 }
    this.slab.set(frame, offset)
    return { oldest: this.evicted, newest: 0 }
  }

  /** Removes queued frames (control first) as one buffer of at most `maxBytes` (or one frame, if larger). */
  take(maxBytes: number): Uint8Array | undefined {
    if (this.controlLength > 0) return this.takeWithControl(maxBytes)
    this.skipTombstones()
    if (this.dataHead >= this.frameSlabs.length) return undefined
    const slab = this.frameSlabs[this.dataHead]!
    const start = this.frameStarts[this.dataHead]!
    let total = this.frameLengths[this.dataHead]!
    this.release(this.dataHead++)
    // Frames written one after another into the same slab leave together, without a copy.
    while (this.dataHead < this.frameSlabs.length) {
      const length = this.frameLengths[this.dataHead]!
      if (this.frameSlabs[this.dataHead] !== slab || this.frameStarts[this.dataHead] !== start + total || total + length > maxBytes) break
      this.release(this.dataHead++)
      total += length
    }
    this.dataBytes -= total
    this.compact()
    return slab.subarray(start, start + total)
  }

  clear(): void {
    this.control.fill(undefined)
    this.controlHead = 0
    this.controlLength = 0
    this.frameSlabs = []
    this.frameStarts = []
    this.frameLengths = []
    this.frameSources = []
    this.perSource.clear()
    this.dataHead = 0
    this.live = 0
    this.dataBytes = 0
    this.controlBytes = 0
  }

  /** Drops the oldest queued frame of the source with the most frames queued. */
  private evictFromLargest(): void {
    let largest = 0
    let most = -1
    for (const [source, count] of this.perSource) {
      if (count > most) {
        most = count
        largest = source
      }
    }
    // The head is nearly always the flooder's (it holds most of the queue), so this scan is short.
    for (let i = this.dataHead; i < this.frameSlabs.length; i++) {
      if (this.frameSlabs[i] === EMPTY || this.frameSources[i] !== largest) continue
      this.dataBytes -= this.frameLengths[i]!
      this.release(i)
      this.evicted++
      this.compact()
      return
    }
  }

  /** Forgets frame `i` (taken or evicted) and makes it a tombstone. */
  private release(i: number): void {
    const source = this.frameSources[i]!
    const left = this.perSource.get(source)! - 1
    if (left === 0) this.perSource.delete(source)
    else this.perSource.set(source, left)
    this.frameSlabs[i] = EMPTY
    this.frameLengths[i] = 0
    this.live--
  }

  private dropTombstones(): void {
    const keep: number[] = []
    for (let i = this.dataHead; i < this.frameSlabs.length; i++) if (this.frameSlabs[i] !== EMPTY) keep.push(i)
    this.frameSlabs = keep.map((i) => this.frameSlabs[i]!)
    this.frameStarts = keep.map((i) => this.frameStarts[i]!)
    this.frameLengths = keep.map((i) => this.frameLengths[i]!)
    this.frameSources = keep.map((i) => this.frameSources[i]!)
    this.dataHead = 0
  }

  private skipTombstones(): void {
    while (this.dataHead < this.frameSlabs.length && this.frameSlabs[this.dataHead] === EMPTY) this.dataHead++
  }

  /** Control frames are rare (keepalives, pongs, PeerGone): they and the data after them are copied into one message. */
  private takeWithControl(maxBytes: number): Uint8Array {
    const parts: Uint8Array[] = []
    let total = 0
    while (this.controlLength > 0) {
      const frame = this.control[this.controlHead]!
      if (parts.length > 0 && total + frame.length > maxBytes) break
      this.control[this.controlHead] = undefined
      this.controlHead = (this.controlHead + 1) % this.maxControl
      this.controlLength--
      this.controlBytes -= frame.length
      parts.push(frame)
      total += frame.length
    }
    if (this.controlLength === 0) {
      for (;;) {
        this.skipTombstones()
        if (this.dataHead >= this.frameSlabs.length || total + this.frameLengths[this.dataHead]! > maxBytes) break
        const start = this.frameStarts[this.dataHead]!
        const length = this.frameLengths[this.dataHead]!
        parts.push(this.frameSlabs[this.dataHead]!.subarray(start, start + length))
        this.release(this.dataHead++)
        this.dataBytes -= length
        total += length
      }
      this.compact()
    }
    return parts.length === 1 ? parts[0]! : concatBytes(parts)
  }

  private compact(): void {
    this.skipTombstones()
    if (this.dataHead === this.frameSlabs.length) {
      this.frameSlabs.length = 0
      this.frameStarts.length = 0
      this.frameLengths.length = 0
      this.frameSources.length = 0
      this.dataHead = 0
    } else if (this.dataHead > 1024 && this.dataHead * 2 > this.frameSlabs.length) {
      this.frameSlabs = this.frameSlabs.slice(this.dataHead)
      this.frameStarts = this.frameStarts.slice(this.dataHead)
      this.frameLengths = this.frameLengths.slice(this.dataHead)
      this.frameSources = this.frameSources.slice(this.dataHead)
      this.dataHead = 0
    }
  }
}

const EMPTY = new Uint8Array(0)
