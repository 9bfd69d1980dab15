// Two joined in-memory datachannels for Node tests: the same events and `bufferedAmount`
// behaviour as RTCDataChannel, with the network drained by hand (`deliver`) or automatically.
import type { DatagramChannel } from '../channel-link.ts'

export class MemoryChannel extends EventTarget implements DatagramChannel {
  readyState: DatagramChannel['readyState'] = 'connecting'
  bufferedAmount = 0
  bufferedAmountLowThreshold = 0
  binaryType = 'blob'
  peer!: MemoryChannel
  /** Messages sent and not yet delivered to the peer. */
  readonly inFlight: ArrayBuffer[] = []
  /** Throws from `send` while true (like a full SCTP buffer). */
  refuseSends = false
  sends = 0

  constructor(private readonly autoDeliver: boolean) {
    super()
  }

  static pair(autoDeliver = true): [MemoryChannel, MemoryChannel] {
    const a = new MemoryChannel(autoDeliver)
    const b = new MemoryChannel(autoDeliver)
    a.peer = b
    b.peer = a
    return [a, b]
  }

  /** Opens both ends, as the datachannel's `open` event does. */
  open(): void {
    for (const end of [this, this.peer]) {
      end.readyState = 'open'
      end.dispatchEvent(new Event('open'))
    }
  }

  send(data: ArrayBufferView<ArrayBuffer> | ArrayBuffer): void {
    if (this.readyState !== 'open') throw new DOMException('not open', 'InvalidStateError')
    if (this.refuseSends) throw new DOMException('send queue is full', 'OperationError')
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    // RTCDataChannel copies on send: later changes to the caller's buffer do not travel.
    this.inFlight.push(bytes.slice().buffer)
    this.bufferedAmount += bytes.length
    this.sends++
    if (this.autoDeliver) queueMicrotask(() => this.deliver())
  }

  /** Moves up to `count` messages to the peer, firing `bufferedamountlow` when crossing the threshold. */
  deliver(count = Infinity): number {
    let moved = 0
    while (moved < count && this.inFlight.length > 0) {
      const data = this.inFlight.shift()!
      const before = this.bufferedAmount
      this.bufferedAmount -= data.byteLength
      moved++
      if (this.peer.readyState === 'open') this.peer.dispatchEvent(new MessageEvent('message', { data: this.peer.binaryType === 'arraybuffer' ? data : new Blob([data]) }))
      if (before > this.bufferedAmountLowThreshold && this.bufferedAmount <= this.bufferedAmountLowThreshold) this.dispatchEvent(new Event('bufferedamountlow'))
    }
    return moved
  }

  close(): void {
    for (const end of [this, this.peer]) {
      if (end.readyState === 'closed') continue
      end.readyState = 'closed'
      end.inFlight.length = 0
      end.bufferedAmount = 0
      end.dispatchEvent(new Event('close'))
    }
  }
}
