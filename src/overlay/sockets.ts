import { formatAddress, parseAddress, type IpAddress } from '../wire/index.ts'
import type { StackHost } from './host.ts'
import { PingError } from './icmp.ts'
import type { KeepAliveConfig } from './tcp/config.ts'
import type { TcpConnection } from './tcp/connection.ts'
import { TcpError } from './tcp/errors.ts'
import type { TcpListener } from './tcp/listener.ts'
import type { UdpEndpoint } from './udp.ts'

// The application-facing API in the shape of the web's Direct Sockets (TCPSocket,
// TCPServerSocket, UDPSocket): promises for open/close, WHATWG streams for data. Backpressure
// is end to end: an unread readable leaves bytes in the receive buffer, which shrinks the
// advertised window; a writer's promise waits while the send buffer is full.

export interface TcpConnectOptions {
  /** An IP literal, or a name the `resolve` option of `Sockets` can turn into one. */
  host: string
  port: number
  noDelay?: boolean
  keepAlive?: boolean | Partial<KeepAliveConfig>
  localPort?: number
}

export interface TCPSocketOpenInfo {
  readable: ReadableStream<Uint8Array>
  writable: WritableStream<Uint8Array>
  remoteAddress: string
  remotePort: number
  localAddress: string
  localPort: number
}

export interface TCPServerSocketOpenInfo {
  readable: ReadableStream<TCPSocket>
  localAddress: string | undefined
  localPort: number
}

export interface UdpMessage {
  data: Uint8Array
  remoteAddress?: string
  remotePort?: number
}

export interface UDPSocketOpenInfo {
  readable: ReadableStream<Required<UdpMessage>>
  writable: WritableStream<UdpMessage>
  localAddress: string
  localPort: number
  remoteAddress?: string
  remotePort?: number
}

export interface UdpOptions {
  localPort?: number
  /** Connected mode: messages need no address. */
  remoteAddress?: string
  remotePort?: number
  /** Datagrams queued for a slow reader before new ones are dropped. */
  receiveQueue?: number
}

export interface SocketsOptions {
  /** Name resolution for `connect({ host })` when `host` is not an IP literal. */
  resolve?: (host: string) => Promise<string>
}

/** Largest chunk handed to a reader at once. */
const READ_CHUNK = 256 * 1024

export class Sockets {
  constructor(
    readonly host: StackHost,
    private readonly options: SocketsOptions = {},
  ) {}

  connect(options: TcpConnectOptions): TCPSocket {
    return TCPSocket.connect(this.host, options, this.options.resolve)
  }

  listen(options: { port: number; backlog?: number; address?: string }): TCPServerSocket {
    return new TCPServerSocket(this.host, options)
  }

  udp(options: UdpOptions = {}): UDPSocket {
    return new UDPSocket(this.host, options)
  }

  /** Round-trip time in ms of one ICMP or ICMPv6 echo. */
  ping(address: string, options: { timeout?: number } = {}): Promise<number> {
    const timeout = options.timeout ?? 5000
    return new Promise((resolve, reject) => {
      this.host.stack.ping(address, this.host.now(), timeout, (result) => {
        if (result instanceof PingError) reject(result)
        else resolve(result)
      })
      this.host.kick()
    })
  }
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  // Callers that never look at a promise must not get unhandled-rejection crashes.
  promise.catch(() => {})
  return { promise, resolve, reject }
}

export class TCPSocket {
  readonly opened: Promise<TCPSocketOpenInfo>
  readonly closed: Promise<void>
  private readonly openedDeferred = deferred<TCPSocketOpenInfo>()
  private readonly closedDeferred = deferred<void>()
  private connection: TcpConnection | undefined
  private failure: TcpError | undefined
  private wakeReader: (() => void) | undefined
  private wakeWriter: (() => void) | undefined
  private label: string

  private constructor(
    private readonly host: StackHost,
    label: string,
  ) {
    this.label = label
    this.opened = this.openedDeferred.promise
    this.closed = this.closedDeferred.promise
  }

  static connect(host: StackHost, options: TcpConnectOptions, resolve?: (name: string) => Promise<string>): TCPSocket {
    const socket = new TCPSocket(host, `${options.host}:${options.port}`)
    void socket.start(options, resolve)
    return socket
  }

  /** Wraps a connection a listener accepted (already established). */
  static accepted(host: StackHost, connection: TcpConnection): TCPSocket {
    const socket = new TCPSocket(host, `${formatAddress(connection.remoteAddress)}:${connection.remotePort}`)
    socket.attach(connection)
    socket.established()
    return socket
  }

  private async start(options: TcpConnectOptions, resolve?: (name: string) => Promise<string>): Promise<void> {
    try {
      let address: IpAddress
      try {
        address = parseAddress(options.host.replace(/^\[(.*)\]$/, '$1')) // URL-style [v6] accepted
      } catch {
        if (!resolve) throw new TcpError('bad-argument', `${this.label}: "${options.host}" is not an IP address and no resolver is configured`)
        address = parseAddress(await resolve(options.host))
      }
      const connection = this.host.stack.connect(
        { address, port: options.port, noDelay: options.noDelay, keepAlive: options.keepAlive, localPort: options.localPort },
        this.host.now(),
      )
      this.attach(connection)
      connection.events.established = () => this.established()
      this.host.kick()
    } catch (error) {
      const e = error instanceof TcpError ? error : new TcpError('bad-argument', `${this.label}: ${(error as Error).message}`)
      this.fail(e)
    }
  }

  private attach(connection: TcpConnection): void {
    this.connection = connection
    connection.events.readable = () => this.notifyReader()
    connection.events.writable = () => this.notifyWriter()
    connection.events.closed = (error) => {
      if (error) this.fail(this.describe(error))
      else this.closedDeferred.resolve()
      this.notifyReader()
      this.notifyWriter()
    }
  }

  private describe(error: TcpError): TcpError {
    switch (error.code) {
      case 'refused':
        return new TcpError('refused', `${this.label}: connection refused`)
      case 'reset':
        return new TcpError('reset', `${this.label}: connection reset by peer`)
      case 'timeout':
        return new TcpError('timeout', `${this.label}: ${error.message}`)
      default:
        return new TcpError(error.code, `${this.label}: ${error.message}`)
    }
  }

  private fail(error: TcpError): void {
    if (this.failure) return
    this.failure = error
    this.openedDeferred.reject(error)
    this.closedDeferred.reject(error)
    this.notifyReader()
    this.notifyWriter()
  }

  private notifyReader(): void {
    const wake = this.wakeReader
    this.wakeReader = undefined
    wake?.()
  }

  private notifyWriter(): void {
    const wake = this.wakeWriter
    this.wakeWriter = undefined
    wake?.()
  }

  private established(): void {
    const connection = this.connection!
    const readable = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          for (;;) {
            const chunk = connection.read(READ_CHUNK)
            if (chunk) {
              controller.enqueue(chunk)
              this.host.kick() // the read may have opened the window
              return
            }
            if (this.failure) throw this.failure
            if (connection.readEnded || connection.isDead) {
              controller.close()
              return
            }
            await new Promise<void>((resolve) => (this.wakeReader = resolve))
          }
        },
        cancel: () => {
          // Like shutdown(SHUT_RD): the writable side stays usable.
          connection.shutdownRead()
          this.host.kick()
        },
      },
      // No read-ahead beyond what the TCP receive buffer already holds.
      { highWaterMark: 0 },
    )
    const writable = new WritableStream<Uint8Array>(
      {
        write: async (chunk) => {
          let rest = chunk
          for (;;) {
            if (this.failure) throw this.failure
            const n = connection.write(rest)
            if (n > 0) this.host.kick()
            if (n === rest.length) return
            rest = rest.subarray(n)
            await new Promise<void>((resolve) => (this.wakeWriter = resolve))
          }
        },
        close: () => {
          if (this.failure) throw this.failure
          connection.shutdown()
          this.host.kick()
        },
        abort: () => {
          connection.abort()
          this.host.kick()
        },
      },
      { highWaterMark: 1 },
    )
    this.openedDeferred.resolve({
      readable,
      writable,
      remoteAddress: formatAddress(connection.remoteAddress),
      remotePort: connection.remotePort,
      localAddress: formatAddress(connection.localAddress),
      localPort: connection.localPort,
    })
  }

  /**
   * Closes both directions: FIN after queued data (RST if received data was left unread). TCP
   * finishes the exchange in the background (FIN_WAIT, TIME_WAIT); `closed` resolves now.
   */
  async close(): Promise<void> {
    if (!this.connection) {
      await this.opened.catch(() => {})
    }
    if (this.connection && !this.connection.isDead) {
      this.connection.close()
      this.host.kick()
    }
    if (!this.failure) this.closedDeferred.resolve()
    this.notifyReader()
    this.notifyWriter()
    await this.closed.catch(() => {})
  }
}

export class TCPServerSocket {
  readonly opened: Promise<TCPServerSocketOpenInfo>
  readonly closed: Promise<void>
  private readonly closedDeferred = deferred<void>()
  private listener: TcpListener | undefined
  private wake: (() => void) | undefined

  constructor(
    private readonly host: StackHost,
    options: { port: number; backlog?: number; address?: string },
  ) {
    this.closed = this.closedDeferred.promise
    const openedDeferred = deferred<TCPServerSocketOpenInfo>()
    this.opened = openedDeferred.promise
    try {
      const listener = host.stack.listen(options)
      this.listener = listener
      listener.onConnection = () => {
        const w = this.wake
        this.wake = undefined
        w?.()
      }
      const readable = new ReadableStream<TCPSocket>(
        {
          pull: async (controller) => {
            for (;;) {
              if (listener.closed) {
                controller.close()
                return
              }
              const connection = listener.accept()
              if (connection) {
                host.stack.disown(connection)
                controller.enqueue(TCPSocket.accepted(host, connection))
                return
              }
              await new Promise<void>((resolve) => (this.wake = resolve))
            }
          },
          cancel: () => this.close(),
        },
        { highWaterMark: 0 },
      )
      openedDeferred.resolve({ readable, localAddress: options.address, localPort: listener.port })
    } catch (error) {
      openedDeferred.reject(error)
      this.closedDeferred.reject(error)
    }
  }

  close(): Promise<void> {
    if (this.listener && !this.listener.closed) {
      this.listener.close()
      this.host.kick()
      const w = this.wake
      this.wake = undefined
      w?.()
      this.closedDeferred.resolve()
    }
    return this.closed.catch(() => {})
  }
}

export class UDPSocket {
  readonly opened: Promise<UDPSocketOpenInfo>
  readonly closed: Promise<void>
  private readonly closedDeferred = deferred<void>()
  private endpoint: UdpEndpoint | undefined
  private controller: ReadableStreamDefaultController<Required<UdpMessage>> | undefined
  /** Datagrams dropped because the reader fell behind. */
  dropped = 0

  constructor(
    private readonly host: StackHost,
    options: UdpOptions,
  ) {
    this.closed = this.closedDeferred.promise
    const openedDeferred = deferred<UDPSocketOpenInfo>()
    this.opened = openedDeferred.promise
    try {
      const connected = options.remoteAddress !== undefined ? { address: parseAddress(options.remoteAddress), port: options.remotePort } : undefined
      if (connected && (connected.port === undefined || connected.port < 1 || connected.port > 0xffff)) {
        throw new RangeError(`UDP remotePort must be 1..65535 with remoteAddress, not ${options.remotePort}`)
      }
      const endpoint = host.stack.bindUdp(options.localPort)
      this.endpoint = endpoint
      const readable = new ReadableStream<Required<UdpMessage>>(
        {
          start: (controller) => {
            this.controller = controller
          },
          cancel: () => this.close(),
        },
        { highWaterMark: options.receiveQueue ?? 256 },
      )
      endpoint.onDatagram = (d) => {
        if (connected && (d.remotePort !== connected.port || formatAddress(d.remoteAddress) !== formatAddress(connected.address))) return
        const controller = this.controller
        if (!controller || (controller.desiredSize ?? 0) <= 0) {
          this.dropped++
          return
        }
        controller.enqueue({ data: d.data, remoteAddress: formatAddress(d.remoteAddress), remotePort: d.remotePort })
      }
      const writable = new WritableStream<UdpMessage>({
        write: (message) => {
          const address = message.remoteAddress !== undefined ? parseAddress(message.remoteAddress) : connected?.address
          const port = message.remotePort ?? connected?.port
          if (!address || port === undefined) throw new TypeError('UDP message needs remoteAddress and remotePort on an unconnected socket')
          endpoint.send(message.data, address, port)
          host.kick()
        },
        close: () => this.close(),
      })
      const local = host.stack.addresses.find((a) => a.length === (connected?.address.length ?? 4)) ?? host.stack.addresses[0]!
      openedDeferred.resolve({
        readable,
        writable,
        localAddress: formatAddress(local),
        localPort: endpoint.port,
        ...(connected ? { remoteAddress: formatAddress(connected.address), remotePort: connected.port } : {}),
      })
    } catch (error) {
      openedDeferred.reject(error)
      this.closedDeferred.reject(error)
    }
  }

  close(): Promise<void> {
    if (this.endpoint && !this.endpoint.closed) {
      this.endpoint.close()
      try {
        this.controller?.close()
      } catch {
        // already closed or errored by the reader
      }
      this.closedDeferred.resolve()
    }
    return this.closed.catch(() => {})
  }
}
