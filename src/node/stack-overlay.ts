// Burrow's userspace TCP/IP stack as the dataplane's local side, in the same Node process: the
// dataplane hands it the packets addressed to our overlay addresses, and whatever the stack
// produces (TCP, UDP, ICMP echo replies, its own pings) goes back into the dataplane.
import type { OverlayTransport } from '../dataplane/transport.ts'
import { Sockets, Stack, StackHost, type StackOptions } from '../overlay/index.ts'
import type { Prefix } from '../wire/index.ts'

export type CaptureDirection = 'in' | 'out'

export interface StackOverlayOptions extends StackOptions {
  /**
   * Sees every IP packet between the dataplane and this side, like a packet capture on an
   * interface: 'in' before the stack handles it, 'out' as it leaves. Must not keep or change it.
   */
  capture?: (packet: Uint8Array, direction: CaptureDirection) => void
}

export class StackOverlay implements OverlayTransport {
  readonly stack: Stack
  readonly host: StackHost
  readonly sockets: Sockets
  /** Packets produced while no dataplane was listening (before `start`, after `stop`). */
  dropped = 0
  private deliver: ((packets: Uint8Array[]) => void) | undefined
  private readonly capture: StackOverlayOptions['capture']

  constructor(options: StackOverlayOptions) {
    const { capture, ...stackOptions } = options
    this.capture = capture
    this.stack = new Stack(stackOptions)
    this.host = new StackHost(this.stack, { sink: (packets) => this.inject(packets) })
    this.sockets = new Sockets(this.host)
  }

  /** The stack's addresses as host routes (/32, /128): what the dataplane should deliver here. */
  get prefixes(): Prefix[] {
    return this.stack.addresses.map((address) => ({ address, bits: address.length * 8 }))
  }

  start(deliver: (packets: Uint8Array[]) => void): void {
    this.deliver = deliver
  }

  /** Packets from the dataplane for our addresses. */
  send(packets: Uint8Array[]): void {
    if (this.capture) for (const packet of packets) this.capture(packet, 'in')
    this.host.receive(packets)
  }

  stop(): void {
    this.deliver = undefined
  }

  /**
   * Sends IP packets into the overlay as if the stack had produced them: for tools that build
   * their own packets (ping(8)-style probes whose replies they read through `capture`).
   */
  inject(packets: Uint8Array[]): void {
    if (!this.deliver) {
      this.dropped += packets.length
      return
    }
    if (this.capture) for (const packet of packets) this.capture(packet, 'out')
    this.deliver(packets)
  }
}
