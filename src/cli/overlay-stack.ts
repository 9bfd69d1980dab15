// Node glue: a userspace TCP/IP stack (src/overlay) whose packets travel through a UdpTunnelLoop.
import { StackHost } from '../overlay/host.ts'
import { Sockets } from '../overlay/sockets.ts'
import { Stack, type StackOptions } from '../overlay/stack.ts'
import type { UdpTunnelLoop } from '../underlay/udp/udp-tunnel-loop.ts'

export interface OverlayNode {
  stack: Stack
  host: StackHost
  sockets: Sockets
  /** Feed packets the tunnel delivered for the overlay here. */
  deliver: (packet: Uint8Array) => void
  /** Packets the tunnel refused to route (no AllowedIPs / no endpoint), for diagnostics. */
  unroutable: number
}

/**
 * Creates the stack; `loop()` is read lazily so the tunnel (whose onPacket calls `deliver`)
 * can be constructed after the node.
 */
export function createOverlayNode(options: StackOptions, loop: () => UdpTunnelLoop): OverlayNode {
  const stack = new Stack(options)
  const node: OverlayNode = {
    stack,
    host: undefined as unknown as StackHost,
    sockets: undefined as unknown as Sockets,
    deliver: (packet) => node.host.receive(packet),
    unroutable: 0,
  }
  node.host = new StackHost(stack, {
    sink: (packets) => {
      const tunnel = loop()
      for (const p of packets) if (tunnel.send(p) !== 'sent') node.unroutable++
    },
  })
  node.sockets = new Sockets(node.host)
  return node
}
