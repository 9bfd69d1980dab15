// A relay client's outgoing frames: control frames (pong, keepalive, PeerGone, ServerInfo) are
// few and always kept; forwarded packets are bounded by count and bytes, dropping the oldest
// first so a slow reader sees fresh data, and the newest only when it could never fit.

export interface DropCounts {
  oldest: number
  newest: number
}

export class SendQueue {
  private control: Uint8Array[] = []
  private data: Uint8Array[] = []
  private dataHead = 0
  private dataBytes = 0
  private controlBytes = 0

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

  /** Queues an encoded packet frame; returns how many frames were dropped to respect the bounds. */
  pushData(frame: Uint8Array): DropCounts {
    const drops = { oldest: 0, newest: 0 }
    if (frame.length > this.maxBytes || this.maxPackets === 0) {
      drops.newest = 1
      return drops
    }
    while (this.packets >= this.maxPackets || this.dataBytes + frame.length > this.maxBytes) {
      this.dataBytes -= this.data[this.dataHead]!.length
      this.data[this.dataHead++] = EMPTY
      drops.oldest++
    }
    this.data.push(frame)
    this.dataBytes += frame.length
    return drops
  }

  /** Removes and concatenates queued frames (control first) into one buffer of at most `maxBytes` (or one frame, if larger). */
  take(maxBytes: number): Uint8Array | undefined {
    if (this.isEmpty) return undefined
    const parts: Uint8Array[] = []
    let total = 0
    while (this.control.length > 0 && (parts.length === 0 || total + this.control[0]!.length <= maxBytes)) {
      const frame = this.control.shift()!
      this.controlBytes -= frame.length
      parts.push(frame)
      total += frame.length
    }
    if (this.control.length === 0) {
      while (this.dataHead < this.data.length && (parts.length === 0 || total + this.data[this.dataHead]!.length <= maxBytes)) {
        const frame = this.data[this.dataHead]!
        this.data[this.dataHead++] = EMPTY
        this.dataBytes -= frame.length
        parts.push(frame)
        total += frame.length
      }
      if (this.dataHead > 1024 && this.dataHead * 2 > this.data.length) {
        this.data = this.data.slice(this.dataHead)
        this.dataHead = 0
      }
    }
    if (parts.length === 1) return parts[0]
    const out = new Uint8Array(total)
    let offset = 0
    for (const part of parts) {
      out.set(part, offset)
      offset += part.length
    }
    return out
  }

  clear(): void {
    this.control = []
    this.data = []
    this.dataHead = 0
    this.dataBytes = 0
    this.controlBytes = 0
  }
}

const EMPTY = new Uint8Array(0)
