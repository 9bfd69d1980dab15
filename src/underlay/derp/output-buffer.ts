// Outgoing frames written back to back into large chunks, so that many small frames leave as one
// WebSocket message: Chromium carries ~10 k messages/s whatever their size.

export class OutputBuffer {
  private chunk: Uint8Array
  /** Start of bytes written but not yet taken. */
  private start = 0
  private offset = 0
  private readonly ready: Uint8Array[] = []

  constructor(readonly messageBytes = 64 * 1024) {
    // Start small (an idle connection should not pin 64 KiB) and grow while traffic fills chunks.
    this.chunk = new Uint8Array(Math.min(messageBytes, 4096))
  }

  get isEmpty(): boolean {
    return this.ready.length === 0 && this.offset === this.start
  }

  /** Space for one frame of `length` bytes; fill it before the next call. */
  reserve(length: number): Uint8Array {
    if (this.offset + length > this.chunk.length) {
      if (this.offset > this.start) this.ready.push(this.chunk.subarray(this.start, this.offset))
      this.chunk = new Uint8Array(Math.max(length, Math.min(this.messageBytes, this.chunk.length * 2)))
      this.start = 0
      this.offset = 0
    }
    const view = this.chunk.subarray(this.offset, this.offset + length)
    this.offset += length
    return view
  }

  /** The next message: whole frames only, at most `messageBytes` unless one frame is larger. */
  take(): Uint8Array | undefined {
    const full = this.ready.shift()
    if (full) return full
    if (this.offset === this.start) return undefined
    // Later frames go after this region, so the view handed out is never written again.
    const view = this.chunk.subarray(this.start, this.offset)
    this.start = this.offset
    return view
  }

  clear(): void {
    this.ready.length = 0
    this.start = this.offset
  }
}
