// A bounded FIFO of datagrams that drops new arrivals when full, like a NIC's transmit ring:
// latency stays bounded and WireGuard's own timers recover the loss, instead of memory growing
// without limit behind a slow datachannel.

export interface DatagramQueueLimits {
  maxPackets: number
  maxBytes: number
}

export class DatagramQueue {
  private items: Uint8Array[] = []
  private head = 0
  private queuedBytes = 0
  /** Datagrams refused because the queue was full. */
  dropped = 0

  constructor(private readonly limits: DatagramQueueLimits) {
    if (!(limits.maxPackets >= 1) || !(limits.maxBytes >= 1)) throw new RangeError('datagram queue limits must be at least 1')
  }

  get length(): number {
    return this.items.length - this.head
  }

  get bytes(): number {
    return this.queuedBytes
  }

  /** Appends a datagram; returns false (and counts a drop) when it does not fit. */
  push(datagram: Uint8Array): boolean {
    if (this.length >= this.limits.maxPackets || this.queuedBytes + datagram.length > this.limits.maxBytes) {
      this.dropped++
      return false
    }
    this.items.push(datagram)
    this.queuedBytes += datagram.length
    return true
  }

  peek(): Uint8Array | undefined {
    return this.items[this.head]
  }

  shift(): Uint8Array | undefined {
    if (this.head >= this.items.length) return undefined
    const datagram = this.items[this.head]!
    this.items[this.head++] = undefined as unknown as Uint8Array
    this.queuedBytes -= datagram.length
    // Compact now and then so the array does not grow with everything ever queued.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return datagram
  }

  /** Empties the queue, counting what it held as dropped. */
  clear(): void {
    this.dropped += this.length
    this.items = []
    this.head = 0
    this.queuedBytes = 0
  }
}
