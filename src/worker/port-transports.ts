// Transports over a MessagePort, with packets crossing as transferred ArrayBuffers.
// `PortOverlay` is the page's TCP/IP stack as seen from the worker; `PortUnderlay` is a
// point-to-point link to another worker (or a datachannel bridged through the page).
import type { OverlayTransport, UnderlayTransport } from '../dataplane/transport.ts'
import { packPackets, sharedNow, transferables, unpackPackets, type OverlayPortMessage, type UnderlayPortMessage } from './protocol.ts'

function buffersOf(data: unknown): ArrayBuffer[] | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const buffers = (data as { buffers?: unknown }).buffers
  if (!Array.isArray(buffers)) return undefined
  for (const buffer of buffers) if (!(buffer instanceof ArrayBuffer)) return undefined
  return buffers as ArrayBuffer[]
}

function asPackets(buffers: ArrayBuffer[]): Uint8Array[] {
  const packets = new Array<Uint8Array>(buffers.length)
  for (let i = 0; i < buffers.length; i++) packets[i] = new Uint8Array(buffers[i]!)
  return packets
}

/**
 * Runs `callback` in a later task, after the tasks already queued (in a worker: the socket
 * messages that arrived meanwhile). Node has setImmediate; a browser's setTimeout(0) is not
 * clamped until timers nest.
 */
const setImmediateIfAny = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate
const nextTask: (callback: () => void) => void = typeof setImmediateIfAny === 'function' ? (callback) => setImmediateIfAny(callback) : (callback) => setTimeout(callback, 0)

export class PortProtocolError extends Error {
  override readonly name = 'PortProtocolError'
}

/** The worker's end of an overlay port: IP packets both ways, plus the page's wake-up requests. */
export class PortOverlay implements OverlayTransport {
  private wakeTimer: ReturnType<typeof setTimeout> | undefined
  private outgoing: Uint8Array[] = []
  private flushScheduled = false

  constructor(
    private readonly port: MessagePort,
    private readonly onError: (error: Error) => void = () => {},
  ) {}

  start(deliver: (packets: Uint8Array[]) => void): void {
    this.port.onmessage = (event: MessageEvent) => {
      const message = event.data as OverlayPortMessage
      if (message?.type === 'packets') {
        const packets = unpackPackets(message)
        if (typeof packets === 'string') this.onError(new PortProtocolError(`overlay port: ${packets}`))
        else deliver(packets)
      } else if (message?.type === 'wake-at') {
        if (message.at === null || typeof message.at === 'number') this.wakeAt(message.at)
        else this.onError(new PortProtocolError('overlay port: "wake-at" needs a number or null'))
      } else {
        this.onError(new PortProtocolError(`overlay port: unknown message type ${JSON.stringify((message as { type?: unknown })?.type)}`))
      }
    }
  }

  send(packets: Uint8Array[]): void {
    for (const packet of packets) this.outgoing.push(packet)
    if (this.flushScheduled) return
    this.flushScheduled = true
    nextTask(this.flush)
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    if (this.outgoing.length === 0) return
    const packets = this.outgoing
    this.outgoing = []
    this.post(packets)
  }

  private post(packets: Uint8Array[]): void {
    const message = packPackets(packets)
    this.port.postMessage(message, message.buffers)
  }

  stop(): void {
    this.outgoing = []
    this.wakeAt(null)
    this.port.onmessage = null
    this.port.close()
  }

  private wakeAt(at: number | null): void {
    if (this.wakeTimer !== undefined) clearTimeout(this.wakeTimer)
    this.wakeTimer = undefined
    if (at === null) return
    const fire = (): void => {
      const now = sharedNow()
      // Timers may fire a fraction of a millisecond early; the page asked for "not before `at`".
      if (now < at) {
        this.wakeTimer = setTimeout(fire, Math.ceil(at - now))
        return
      }
      this.wakeTimer = undefined
      const message: OverlayPortMessage = { type: 'wake', now }
      this.port.postMessage(message)
    }
    this.wakeTimer = setTimeout(fire, Math.max(0, Math.ceil(at - sharedNow())))
  }
}

/** A point-to-point underlay over a MessagePort. There is one far end, so the endpoint is always `null`. */
export class PortUnderlay implements UnderlayTransport<null> {
  constructor(
    private readonly port: MessagePort,
    private readonly onError: (error: Error) => void = () => {},
  ) {}

  start(deliver: (endpoint: null, datagrams: Uint8Array[]) => void): void {
    this.port.onmessage = (event: MessageEvent) => {
      const message = event.data as UnderlayPortMessage
      const buffers = message?.type === 'datagrams' ? buffersOf(message) : undefined
      if (buffers) deliver(null, asPackets(buffers))
      else this.onError(new PortProtocolError('underlay port: expected a "datagrams" message with an array of ArrayBuffers'))
    }
  }

  send(_endpoint: null, datagrams: Uint8Array[]): void {
    const buffers = transferables(datagrams)
    const message: UnderlayPortMessage = { type: 'datagrams', buffers }
    this.port.postMessage(message, buffers)
  }

  stop(): void {
    this.port.onmessage = null
    this.port.close()
  }
}
