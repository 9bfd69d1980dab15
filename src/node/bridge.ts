// Joins an overlay TCP connection (WHATWG streams) to a real `node:net` connection, both ways.
//
// What must survive the crossing:
// - half-close: an overlay FIN becomes `socket.end()`, a real FIN closes the overlay writable;
//   the other direction keeps flowing until its own end.
// - backpressure: nothing is read from one side faster than the other side takes it. The real
//   socket is paused whenever the overlay writer has a chunk queued, and the overlay is read
//   only after the real socket accepted the previous chunk (or drained), so the bridge holds at
//   most one chunk per direction plus Node's own readable buffer.
// - failure: a refused or failing real connection resets the overlay connection (the remote
//   application sees "connection reset by peer"), and an overlay reset resets the real one.
import { connect as netConnect, type Socket } from 'node:net'
import type { TCPSocket, TCPSocketOpenInfo } from '../overlay/index.ts'

export interface ServiceTarget {
  host: string
  port: number
}

export interface TcpBridgeOptions {
  /** How long the real service may take to accept before the overlay connection is reset. */
  connectTimeoutMs?: number
}

export type BridgeEnd =
  /** Both directions finished with FINs. */
  | 'closed'
  /** The real service refused the connection or did not answer in time. */
  | 'service-unreachable'
  /** The real connection failed after it was set up (reset, error, vanished). */
  | 'service-error'
  /** The overlay connection was reset or failed. */
  | 'overlay-error'
  /** `close()` was called (shutdown). */
  | 'shutdown'

export interface BridgeReport {
  end: BridgeEnd
  /** What went wrong, for the log; undefined when `end` is 'closed'. */
  reason: string | undefined
  bytesToService: number
  bytesToOverlay: number
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000

export class TcpBridge {
  /** Bytes the overlay peer sent that were handed to the real socket. */
  bytesToService = 0
  /** Bytes the real service sent that the overlay connection accepted. */
  bytesToOverlay = 0
  /** Resolves (never rejects) when both sides are closed, with how it ended. */
  readonly done: Promise<BridgeReport>
  private socket: Socket | undefined
  private info: TCPSocketOpenInfo | undefined
  private reader: ReadableStreamDefaultReader<Uint8Array> | undefined
  private writer: WritableStreamDefaultWriter<Uint8Array> | undefined
  private ending: { end: BridgeEnd; reason: string | undefined } | undefined
  private finish!: () => void
  private overlayWriteClosed = false
  private signalStopped!: (value: undefined) => void
  /** Resolves when the bridge stops for any reason other than both sides closing cleanly. */
  private readonly stopped = new Promise<undefined>((resolve) => (this.signalStopped = resolve))

  private constructor(
    private readonly overlay: TCPSocket,
    readonly target: ServiceTarget,
    private readonly options: TcpBridgeOptions,
  ) {
    const finished = new Promise<void>((resolve) => (this.finish = resolve))
    this.done = finished.then(() => ({
      end: this.ending?.end ?? 'closed',
      reason: this.ending?.reason,
      bytesToService: this.bytesToService,
      bytesToOverlay: this.bytesToOverlay,
    }))
  }

  /** True while the real socket is paused because the overlay is not taking data. */
  get servicePaused(): boolean {
    return this.socket?.isPaused() ?? false
  }

  /** True while overlay data waits for the real socket to drain (the overlay is not being read). */
  get serviceWriteBlocked(): boolean {
    return this.socket?.writableNeedDrain ?? false
  }

  /** Bytes Node holds for this bridge in the real socket's buffers (read and write side). */
  get bufferedBytes(): number {
    return (this.socket?.readableLength ?? 0) + (this.socket?.writableLength ?? 0)
  }

  /** Starts bridging an overlay connection (typically one a listener accepted) to `target`. */
  static start(overlay: TCPSocket, target: ServiceTarget, options: TcpBridgeOptions = {}): TcpBridge {
    const bridge = new TcpBridge(overlay, target, options)
    void bridge.run()
    return bridge
  }

  /** Ends the bridge now: FIN to both sides where possible (RST to an overlay peer with unread data). */
  close(): Promise<BridgeReport> {
    this.stop('shutdown', undefined)
    return this.done
  }

  private async run(): Promise<void> {
    try {
      this.info = await this.overlay.opened
    } catch (error) {
      this.stop('overlay-error', (error as Error).message)
    }
    if (this.info && !this.ending) {
      const socket = await this.connectService()
      if (socket && !this.ending) {
        this.reader = this.info.readable.getReader()
        this.writer = this.info.writable.getWriter()
        await Promise.all([this.overlayToService(this.reader, socket), this.serviceToOverlay(socket, this.writer)])
      }
    }
    await this.teardown()
  }

  private connectService(): Promise<Socket | undefined> {
    const { host, port } = this.target
    return new Promise((resolve) => {
      // allowHalfOpen: a FIN from the service must not close our sending side.
      const socket = netConnect({ host, port, allowHalfOpen: true, noDelay: true })
      this.socket = socket
      let connected = false
      const timeout = this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
      const timer = setTimeout(() => {
        this.stop('service-unreachable', `${host}:${port}: no answer within ${timeout} ms`)
        resolve(undefined)
      }, timeout)
      // Attached for the socket's whole life: an error between 'connect' and the pumps starting
      // must not go unhandled.
      socket.on('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        this.stop(connected ? 'service-error' : 'service-unreachable', describeSocketError(this.target, error))
        resolve(undefined)
      })
      socket.once('connect', () => {
        connected = true
        clearTimeout(timer)
        resolve(socket)
      })
    })
  }

  /** Overlay → service: read a chunk only once the real socket took the previous one. */
  private async overlayToService(reader: ReadableStreamDefaultReader<Uint8Array>, socket: Socket): Promise<void> {
    try {
      for (;;) {
        // A read can stay pending after the bridge stopped (the overlay side is being reset).
        const result = await Promise.race([reader.read(), this.stopped])
        if (!result || this.ending) return
        if (result.done) break
        this.bytesToService += result.value.length
        if (!socket.write(result.value)) await drained(socket)
      }
      if (!this.ending) socket.end() // overlay FIN → real FIN
    } catch (error) {
      this.stop('overlay-error', (error as Error).message)
    }
  }

  /** Service → overlay: the real socket is paused while the overlay writer holds a chunk. */
  private serviceToOverlay(socket: Socket, writer: WritableStreamDefaultWriter<Uint8Array>): Promise<void> {
    return new Promise<void>((resolve) => {
      const fail = (error: unknown): void => {
        this.stop('overlay-error', (error as Error).message)
        resolve()
      }
      let ended = false
      socket.on('data', (chunk: Buffer) => {
        if (this.ending) return
        this.bytesToOverlay += chunk.length
        writer.write(chunk).catch(fail)
        if ((writer.desiredSize ?? 0) <= 0) {
          socket.pause()
          writer.ready.then(() => {
            if (!this.ending) socket.resume()
          }, fail)
        }
      })
      socket.once('end', () => {
        ended = true
        if (this.ending) return resolve()
        // Real FIN → overlay FIN, after everything queued before it.
        this.overlayWriteClosed = true
        writer.close().then(resolve, fail)
      })
      void this.stopped.then(() => resolve())
      socket.once('close', () => {
        // After 'end' the overlay may still be taking the last bytes; writer.close() resolves then.
        if (!ended) resolve()
      })
    })
  }

  /** Records the first reason the bridge ends and breaks both sides accordingly. */
  private stop(end: BridgeEnd, reason: string | undefined): void {
    if (this.ending) return
    this.ending = { end, reason }
    this.signalStopped(undefined)
    const socket = this.socket
    if (end === 'overlay-error') {
      // Carry the reset on: the service should not take a truncated request as complete.
      if (socket && !socket.destroyed) socket.resetAndDestroy()
    } else if (end === 'shutdown') {
      socket?.destroy()
      // FIN after what is queued (RST if the peer's data was left unread); not awaited, since
      // an active close ends in TIME_WAIT.
      void this.overlay.close()
    } else {
      socket?.destroy()
      this.abortOverlay()
    }
  }

  private abortOverlay(): void {
    // Only the writable's abort sends RST for sure; a full close would send a FIN when no
    // received data is unread, which looks like a clean end.
    // An abort waits for a write in flight: the RST goes out once the peer takes those bytes.
    if (this.writer) {
      this.writer.abort().catch(() => {})
      // After our FIN an abort is a no-op; a full close with the peer's data unread still sends RST.
      if (this.overlayWriteClosed) void this.overlay.close()
    } else if (this.info) this.info.writable.abort().catch(() => {})
    else void this.overlay.close()
  }

  private async teardown(): Promise<void> {
    const socket = this.socket
    if (socket && !socket.destroyed) {
      // Both directions finished cleanly; the socket closes itself once its FIN is out.
      await new Promise<void>((resolve) => socket.once('close', () => resolve()))
    }
    // Not `overlay.closed`: after an active close that waits out TIME_WAIT, which is the stack's business.
    this.finish()
  }
}

function drained(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      socket.off('close', onClose)
      resolve()
    }
    const onClose = (): void => {
      socket.off('drain', onDrain)
      reject(new Error('service connection closed while sending'))
    }
    socket.once('drain', onDrain)
    socket.once('close', onClose)
  })
}

export function describeSocketError(target: ServiceTarget, error: NodeJS.ErrnoException): string {
  const where = `${target.host}:${target.port}`
  switch (error.code) {
    case 'ECONNREFUSED':
      return `${where}: connection refused`
    case 'ECONNRESET':
      return `${where}: connection reset by service`
    case 'EPIPE':
      return `${where}: service closed the connection while we were sending`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${where}: host name not found`
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where}: unreachable`
    default:
      return `${where}: ${error.message}`
  }
}

/** `address:port`, with IPv6 addresses in brackets. */
export function formatRemote(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}
