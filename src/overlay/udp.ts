import type { IpAddress } from '../wire/index.ts'

export interface UdpDatagramIn {
  data: Uint8Array
  remoteAddress: IpAddress
  remotePort: number
}

/** What a UDP endpoint needs from the stack. */
export interface UdpHost {
  sendUdp(endpoint: UdpEndpoint, data: Uint8Array, remoteAddress: IpAddress, remotePort: number): void
  releaseUdp(endpoint: UdpEndpoint): void
}

/** A bound UDP port. Datagrams are delivered synchronously to `onDatagram`. */
export class UdpEndpoint {
  onDatagram: ((datagram: UdpDatagramIn) => void) | undefined
  closed = false
  received = 0

  constructor(
    private readonly host: UdpHost,
    readonly port: number,
    /** Largest payload that fits the tunnel MTU for IPv4 and IPv6 destinations. */
    readonly maxPayload: { v4: number; v6: number },
  ) {}

  send(data: Uint8Array, remoteAddress: IpAddress, remotePort: number): void {
    if (this.closed) throw new Error(`UDP port ${this.port} is closed`)
    if (!Number.isInteger(remotePort) || remotePort < 1 || remotePort > 0xffff) throw new RangeError(`bad UDP destination port ${remotePort}`)
    const max = remoteAddress.length === 4 ? this.maxPayload.v4 : this.maxPayload.v6
    if (data.length > max) throw new RangeError(`UDP payload of ${data.length} bytes exceeds the ${max}-byte limit of the tunnel MTU`)
    this.host.sendUdp(this, data, remoteAddress, remotePort)
  }

  deliver(datagram: UdpDatagramIn): void {
    this.received++
    this.onDatagram?.(datagram)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.host.releaseUdp(this)
  }
}
