// WireGuard over plain UDP for Node: one IPv4 and one IPv6 socket bound to the same port, as a
// dataplane underlay transport whose endpoint is the remote `{ address, port }`.
import dgram from 'node:dgram'
import type { UnderlayTransport } from '../../dataplane/transport.ts'
import { parseAddress } from '../../wire/address.ts'

export interface UdpEndpoint {
  /** Textual IPv4 or IPv6 address (no brackets). */
  address: string
  port: number
}

export interface UdpUnderlayOptions {
  /** 0 or undefined picks a free port (the same one for both families). */
  port?: number
  /** Also open an IPv6 socket; when the host has no IPv6 the underlay quietly stays IPv4-only. Default true. */
  ipv6?: boolean
  /** Socket send/receive buffer size to ask for (the kernel caps it at net.core.rmem_max/wmem_max). Default 4 MiB. */
  socketBufferBytes?: number
}

const DEFAULT_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024

/** Bursts of tunnel traffic overflow the default ~200 KiB buffers; ask for more, and live with what the kernel grants. */
function enlargeBuffers(socket: dgram.Socket, bytes: number): void {
  try {
    socket.setRecvBufferSize(bytes)
    socket.setSendBufferSize(bytes)
  } catch {
    // Not permitted or not supported: the defaults still work, just with more loss under bursts.
  }
}

export type DatagramDelivery = (endpoint: UdpEndpoint, datagrams: Uint8Array[]) => void

/** A closed underlay cannot be started again: open a new one. */
export class UdpUnderlayClosedError extends Error {
  override readonly name = 'UdpUnderlayClosedError'
  constructor() {
    super('this UDP underlay is closed; open a new one')
  }
}

/** `1.2.3.4:51820` or `[fd00::1]:51820`. */
export function formatEndpoint(endpoint: UdpEndpoint): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`
}

/** The endpoint as address bytes followed by the big-endian port, as WireGuard feeds it into cookie MAC2. */
export function endpointBytes(endpoint: UdpEndpoint): Uint8Array {
  const address = parseAddress(endpoint.address)
  const out = new Uint8Array(address.length + 2)
  out.set(address)
  out[address.length] = endpoint.port >> 8
  out[address.length + 1] = endpoint.port & 0xff
  return out
}

function bind(socket: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error)
    socket.once('error', onError)
    socket.bind({ port, address, exclusive: true }, () => {
      socket.off('error', onError)
      resolve()
    })
  })
}

function closeSocket(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve())
    } catch {
      resolve() // Already closed.
    }
  })
}

/** Errors that mean "this host cannot do IPv6", as opposed to a real failure. */
const NO_IPV6 = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EPROTONOSUPPORT'])

export class UdpUnderlay implements UnderlayTransport<UdpEndpoint> {
  /** Datagrams received and sent, sends the OS refused (unreachable network, no route…), and sends to a family we have no socket for. */
  readonly counters = { received: 0, sent: 0, sendErrors: 0, wrongFamily: 0 }
  private deliver: DatagramDelivery | undefined
  private closing: Promise<void> | undefined
  /**
   * The last sender seen on each socket. Consecutive datagrams from one sender (the common case)
   * then share one endpoint object, so the dataplane batches replies to it together and its
   * MAC2 bytes are computed once, without keeping a table an attacker could grow.
   */
  private readonly lastSender = new Map<dgram.Socket, UdpEndpoint>()
  private readonly macBytes = new WeakMap<UdpEndpoint, Uint8Array>()
  /**
   * Datagrams read in the current event-loop turn, grouped by consecutive sender. The kernel hands
   * Node several datagrams per poll; delivering them together after the poll phase lets the
   * dataplane (and the stack behind it) handle a burst in one pass instead of one pass each.
   */
  private pending: Array<{ from: UdpEndpoint; datagrams: Uint8Array[] }> = []
  private readonly flush = (): void => {
    const batches = this.pending
    this.pending = []
    for (const { from, datagrams } of batches) this.deliver?.(from, datagrams)
  }

  private constructor(
    readonly port: number,
    private readonly v4: dgram.Socket,
    private readonly v6: dgram.Socket | undefined,
  ) {
    for (const socket of [v4, v6]) {
      socket?.on('message', (message, remote) => {
        if (!this.deliver) return
        this.counters.received++
        let from = this.lastSender.get(socket)
        if (!from || from.port !== remote.port || from.address !== remote.address) {
          from = { address: remote.address, port: remote.port }
          this.lastSender.set(socket, from)
        }
        const datagram = new Uint8Array(message.buffer, message.byteOffset, message.byteLength)
        const last = this.pending.at(-1)
        if (last && last.from === from) last.datagrams.push(datagram)
        else this.pending.push({ from, datagrams: [datagram] })
        if (last === undefined) setImmediate(this.flush)
      })
      // Asynchronous socket errors (ICMP unreachable surfacing as ECONNREFUSED etc.) must not crash the process.
      socket?.on('error', () => this.counters.sendErrors++)
    }
  }

  static async open(options: UdpUnderlayOptions = {}): Promise<UdpUnderlay> {
    const wantIpv6 = options.ipv6 ?? true
    // With port 0 the IPv6 socket must take the port the kernel chose for IPv4, which another process may hold; retry then.
    for (let attempt = 0; ; attempt++) {
      const v4 = dgram.createSocket({ type: 'udp4' })
      await bind(v4, options.port ?? 0, '0.0.0.0').catch(async (error: unknown) => {
        await closeSocket(v4)
        throw error
      })
      const port = v4.address().port
      const bufferBytes = options.socketBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES
      enlargeBuffers(v4, bufferBytes)
      if (!wantIpv6) return new UdpUnderlay(port, v4, undefined)
      const v6 = dgram.createSocket({ type: 'udp6', ipv6Only: true })
      try {
        await bind(v6, port, '::')
        enlargeBuffers(v6, bufferBytes)
        return new UdpUnderlay(port, v4, v6)
      } catch (error) {
        await closeSocket(v6)
        const code = (error as NodeJS.ErrnoException).code ?? ''
        if (NO_IPV6.has(code)) return new UdpUnderlay(port, v4, undefined)
        await closeSocket(v4)
        if (code !== 'EADDRINUSE' || options.port || attempt >= 8) throw error
      }
    }
  }

  get hasIpv6(): boolean {
    return this.v6 !== undefined
  }

  /** Begins handing received datagrams to `deliver`, in batches per sender. Datagrams before this are dropped. */
  start(deliver: DatagramDelivery): void {
    if (this.closing) throw new UdpUnderlayClosedError()
    this.deliver = deliver
  }

  /** Sends each datagram to `endpoint`; failures are counted, never thrown, because a dead path must not stop the dataplane. */
  send(endpoint: UdpEndpoint, datagrams: Uint8Array[]): void {
    if (this.closing) return
    const socket = endpoint.address.includes(':') ? this.v6 : this.v4
    if (!socket) {
      this.counters.wrongFamily += datagrams.length
      return
    }
    for (const datagram of datagrams) {
      try {
        socket.send(datagram, endpoint.port, endpoint.address, (error) => {
          if (error) this.counters.sendErrors++
          else this.counters.sent++
        })
      } catch {
        // An endpoint Node rejects outright (port out of range…) is a dead path like any other.
        this.counters.sendErrors++
      }
    }
  }

  endpointBytes(endpoint: UdpEndpoint): Uint8Array {
    let bytes = this.macBytes.get(endpoint)
    if (!bytes) this.macBytes.set(endpoint, (bytes = endpointBytes(endpoint)))
    return bytes
  }

  /** Stops delivering and closes the sockets (the dataplane driver calls this when the transport is removed). */
  stop(): void {
    void this.close()
  }

  /** Like `stop`, and resolves once both sockets are closed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.deliver = undefined
      this.lastSender.clear()
      this.pending = []
      await Promise.all([closeSocket(this.v4), this.v6 ? closeSocket(this.v6) : Promise.resolve()])
    })()
    return this.closing
  }
}
