// For browsers that cannot transfer an RTCDataChannel to a worker: the page keeps the channel and
// bridges it over a MessagePort, datagrams crossing as transferred ArrayBuffers. The page end
// applies the backpressure and drop policy (it sees `bufferedAmount`); the worker end looks like
// a channel that is never backed up.
import { ChannelLink, type ChannelLinkOptions, type DatagramChannel } from './channel-link.ts'

/** Messages on a bridge port, both directions. */
export type BridgePortMessage =
  /** page → worker: the channel opened. */
  | { type: 'open' }
  /** both ways: datagrams, one ArrayBuffer each. */
  | { type: 'datagrams'; buffers: ArrayBuffer[] }
  /**
   * page → worker, after each `datagrams` message and whenever the page's queue drains: `bytes`
   * of the worker's datagrams were taken off the port, and `buffered` bytes wait in the page's
   * queue for the channel. Both feed the worker's `bufferedAmount`. (The channel's own buffer is
   * left out: it changes without an event, so a reported value could go stale and stall the worker.)
   */
  | { type: 'credit'; bytes: number; buffered: number }
  /** page → worker: the channel closed. worker → page: close it. */
  | { type: 'closed'; reason: string }

function buffersOf(message: unknown): ArrayBuffer[] | undefined {
  const buffers = (message as { buffers?: unknown } | null)?.buffers
  if (!Array.isArray(buffers) || !buffers.every((b) => b instanceof ArrayBuffer)) return undefined
  return buffers as ArrayBuffer[]
}

function ownBuffer(datagram: ArrayBufferView | ArrayBuffer): ArrayBuffer {
  if (datagram instanceof ArrayBuffer) return datagram
  const { buffer, byteOffset, byteLength } = datagram
  // Datagrams handed to a transport are ours; transfer the whole buffer when the view covers it.
  if (buffer instanceof ArrayBuffer && byteOffset === 0 && byteLength === buffer.byteLength) return buffer
  return new Uint8Array(buffer, byteOffset, byteLength).slice().buffer
}

/** The worker's end of a bridged datachannel. */
export class PortDatagramChannel extends EventTarget implements DatagramChannel {
  readyState: DatagramChannel['readyState'] = 'connecting'
  bufferedAmountLowThreshold = 0
  /** Bytes posted to the page that it has not yet taken off the port. */
  private inFlight = 0
  /** What the page last said it holds. */
  private pageBuffered = 0
  binaryType = 'arraybuffer'
  private outgoing: ArrayBuffer[] = []
  private flushQueued = false

  constructor(private readonly port: MessagePort) {
    super()
    port.onmessage = (event: MessageEvent) => this.onPortMessage(event.data as BridgePortMessage)
  }

  /** Like RTCDataChannel's: what is on its way to, or waiting in, the page. */
  get bufferedAmount(): number {
    return this.inFlight + this.pageBuffered
  }

  send(data: ArrayBufferView<ArrayBuffer> | ArrayBuffer): void {
    if (this.readyState !== 'open') throw new DOMException('the bridged datachannel is not open', 'InvalidStateError')
    const buffer = ownBuffer(data)
    this.inFlight += buffer.byteLength
    this.outgoing.push(buffer)
    if (this.flushQueued) return
    this.flushQueued = true
    // Everything sent in one task crosses to the page in one message.
    queueMicrotask(() => {
      this.flushQueued = false
      const buffers = this.outgoing
      this.outgoing = []
      if (buffers.length > 0 && this.readyState === 'open') this.port.postMessage({ type: 'datagrams', buffers } satisfies BridgePortMessage, buffers)
    })
  }

  close(): void {
    if (this.readyState === 'closed') return
    this.port.postMessage({ type: 'closed', reason: 'closed by the worker' } satisfies BridgePortMessage)
    this.becomeClosed()
  }

  private onPortMessage(message: BridgePortMessage): void {
    if (message?.type === 'open' && this.readyState === 'connecting') {
      this.readyState = 'open'
      this.dispatchEvent(new Event('open'))
    } else if (message?.type === 'datagrams') {
      const buffers = buffersOf(message)
      if (!buffers) return
      for (const data of buffers) this.dispatchEvent(new MessageEvent('message', { data }))
    } else if (message?.type === 'credit' && typeof message.bytes === 'number' && typeof message.buffered === 'number') {
      const before = this.bufferedAmount
      this.inFlight = Math.max(0, this.inFlight - message.bytes)
      this.pageBuffered = Math.max(0, message.buffered)
      if (before > this.bufferedAmountLowThreshold && this.bufferedAmount <= this.bufferedAmountLowThreshold) this.dispatchEvent(new Event('bufferedamountlow'))
    } else if (message?.type === 'closed') {
      this.becomeClosed()
    }
  }

  private becomeClosed(): void {
    if (this.readyState === 'closed') return
    this.readyState = 'closed'
    this.port.onmessage = null
    this.port.close()
    this.dispatchEvent(new Event('close'))
  }
}

/** The page's end: carries `channel` over `port` until either side closes. */
export function bridgeDataChannel(channel: DatagramChannel, port: MessagePort, options: ChannelLinkOptions = {}): ChannelLink {
  let portOpen = true
  const post = (message: BridgePortMessage, transfer: Transferable[] = []): void => {
    if (portOpen) port.postMessage(message, transfer)
  }
  const credit = (bytes: number): void => post({ type: 'credit', bytes, buffered: link.queuedBytes })
  const link: ChannelLink = new ChannelLink(
    channel,
    {
      onOpen: () => post({ type: 'open' }),
      onDatagrams: (datagrams) => {
        const buffers = datagrams.map(ownBuffer)
        post({ type: 'datagrams', buffers }, buffers)
      },
      onClose: (reason) => {
        post({ type: 'closed', reason })
        portOpen = false
        port.onmessage = null
        port.close()
      },
    },
    options,
  )
  if (channel.readyState === 'open') post({ type: 'open' })
  // The link drains its queue on this event; report what is left once it has.
  channel.addEventListener('bufferedamountlow', () =>
    queueMicrotask(() => {
      if (link.isOpen) credit(0)
    }),
  )
  port.onmessage = (event: MessageEvent) => {
    const message = event.data as BridgePortMessage
    if (message?.type === 'datagrams') {
      const buffers = buffersOf(message)
      if (!buffers) return
      let bytes = 0
      for (const buffer of buffers) bytes += buffer.byteLength
      link.send(buffers.map((b) => new Uint8Array(b)))
      credit(bytes)
    } else if (message?.type === 'closed') {
      link.close('closed by the worker')
    }
  }
  return link
}
