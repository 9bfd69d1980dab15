// One peer's datagram channel (an RTCDataChannel, or the worker's end of one bridged through the
// page) with the sending discipline the dataplane needs: one WireGuard datagram per message, and
// backpressure on `bufferedAmount` through a bounded queue that drops rather than grows.
import { DatagramQueue } from './datagram-queue.ts'

/** The part of `RTCDataChannel` the link uses; `PortDatagramChannel` provides it over a MessagePort. */
export interface DatagramChannel {
  readonly readyState: 'connecting' | 'open' | 'closing' | 'closed'
  readonly bufferedAmount: number
  bufferedAmountLowThreshold: number
  binaryType: string
  send(data: ArrayBufferView<ArrayBuffer> | ArrayBuffer): void
  close(): void
  /** Events used: open, message (binary `data`), bufferedamountlow, close. */
  // Callers pass typed handlers ((event: MessageEvent) => void); with `unknown` or `Event` here, strictFunctionTypes rejects them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
  addEventListener(type: string, listener: (event: any) => void): void
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
  removeEventListener(type: string, listener: (event: any) => void): void
}

export interface ChannelLinkOptions {
  /** Stop handing datagrams to the channel above this many buffered bytes. */
  highWaterMark?: number
  /** Resume when the channel's buffer falls to this. */
  lowWaterMark?: number
  /** Datagrams waiting for the channel, at most (beyond it they are dropped and counted). */
  maxQueuedPackets?: number
  maxQueuedBytes?: number
}

export interface ChannelLinkHandlers {
  onOpen?(): void
  /** Datagrams that arrived in one task, in order. */
  onDatagrams(datagrams: Uint8Array[]): void
  /** The channel closed (by either end, or it failed). Called once. */
  onClose?(reason: string): void
}

export interface ChannelLinkStats {
  sent: number
  received: number
  /** Refused because the queue was full, the channel closed, or `send` threw. */
  dropped: number
  queued: number
  /** Bytes the channel itself holds unsent (`bufferedAmount`). */
  buffered: number
}

export const CHANNEL_LINK_DEFAULTS = {
  highWaterMark: 1 << 20,
  lowWaterMark: 256 << 10,
  maxQueuedPackets: 1024,
  maxQueuedBytes: 2 << 20,
} as const

export class ChannelLink {
  private readonly queue: DatagramQueue
  private readonly highWaterMark: number
  private received: Uint8Array[] = []
  private flushQueued = false
  private closed = false
  private sent = 0
  private receivedCount = 0
  private failedSends = 0

  private readonly onOpenEvent = (): void => {
    this.drain()
    this.handlers.onOpen?.()
  }
  private readonly onMessageEvent = (event: MessageEvent): void => {
    const data: unknown = event.data
    // Text messages are not ours to carry; only binary datagrams count.
    if (!(data instanceof ArrayBuffer)) return
    this.receivedCount++
    this.received.push(new Uint8Array(data))
    if (this.flushQueued) return
    this.flushQueued = true
    queueMicrotask(this.flushReceived)
  }
  private readonly flushReceived = (): void => {
    this.flushQueued = false
    const batch = this.received
    if (batch.length === 0) return
    this.received = []
    this.handlers.onDatagrams(batch)
  }
  private readonly onLowEvent = (): void => this.drain()
  private readonly onCloseEvent = (): void => this.finish('the datachannel closed')

  constructor(
    readonly channel: DatagramChannel,
    private readonly handlers: ChannelLinkHandlers,
    options: ChannelLinkOptions = {},
  ) {
    const config = { ...CHANNEL_LINK_DEFAULTS, ...options }
    if (!(config.lowWaterMark < config.highWaterMark)) throw new RangeError('lowWaterMark must be below highWaterMark')
    this.highWaterMark = config.highWaterMark
    this.queue = new DatagramQueue({ maxPackets: config.maxQueuedPackets, maxBytes: config.maxQueuedBytes })
    channel.binaryType = 'arraybuffer'
    channel.bufferedAmountLowThreshold = config.lowWaterMark
    channel.addEventListener('open', this.onOpenEvent)
    channel.addEventListener('message', this.onMessageEvent)
    channel.addEventListener('bufferedamountlow', this.onLowEvent)
    channel.addEventListener('close', this.onCloseEvent)
    if (channel.readyState === 'closing' || channel.readyState === 'closed') queueMicrotask(() => this.finish('the datachannel was already closed'))
  }

  /** Bytes waiting in this link's queue (not yet handed to the channel). */
  get queuedBytes(): number {
    return this.queue.bytes
  }

  get isOpen(): boolean {
    return !this.closed && this.channel.readyState === 'open'
  }

  get stats(): ChannelLinkStats {
    return { sent: this.sent, received: this.receivedCount, dropped: this.queue.dropped + this.failedSends, queued: this.queue.length, buffered: this.channel.bufferedAmount }
  }

  /** Sends datagrams, one message each. Never throws; what cannot be sent or queued is dropped. */
  send(datagrams: Uint8Array[]): void {
    if (this.closed) {
      this.failedSends += datagrams.length
      return
    }
    for (const datagram of datagrams) {
      if (this.queue.length === 0 && this.channel.readyState === 'open' && this.channel.bufferedAmount < this.highWaterMark) this.transmit(datagram)
      else this.queue.push(datagram)
    }
  }

  /** Closes the channel (the far end sees it close) and reports `onClose`. */
  close(reason = 'closed locally'): void {
    if (this.closed) return
    try {
      this.channel.close()
    } catch {
      // Already closing.
    }
    this.finish(reason)
  }

  private drain(): void {
    while (!this.closed && this.channel.readyState === 'open' && this.channel.bufferedAmount < this.highWaterMark) {
      const datagram = this.queue.shift()
      if (!datagram) return
      this.transmit(datagram)
    }
  }

  private transmit(datagram: Uint8Array): void {
    try {
      this.channel.send(datagram as Uint8Array<ArrayBuffer>)
      this.sent++
    } catch {
      // The channel refused (closing, or its own buffer is full): like a NIC, drop and count.
      this.failedSends++
    }
  }

  private finish(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.flushReceived()
    this.queue.clear()
    this.channel.removeEventListener('open', this.onOpenEvent)
    this.channel.removeEventListener('message', this.onMessageEvent)
    this.channel.removeEventListener('bufferedamountlow', this.onLowEvent)
    this.channel.removeEventListener('close', this.onCloseEvent)
    this.handlers.onClose?.(reason)
  }
}
