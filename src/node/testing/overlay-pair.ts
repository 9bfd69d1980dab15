// Two overlay stacks wired back to back in memory on real time, for tests that mix the overlay
// with real Node sockets (the fake-time SocketTestbed cannot wait for the kernel).
import { Sockets, Stack, StackHost } from '../../overlay/index.ts'

export const CLIENT_ADDRESS = '100.64.0.1'
export const SERVER_ADDRESS = '100.64.0.2'
export const CLIENT_ADDRESS6 = 'fd7a:115c:a1e0::1'
export const SERVER_ADDRESS6 = 'fd7a:115c:a1e0::2'

export interface OverlayPair {
  client: Sockets
  server: Sockets
  clientHost: StackHost
  serverHost: StackHost
}

/** Packets cross on the next macrotask, so real socket I/O interleaves with the overlay. */
export function overlayPair(): OverlayPair {
  const deliver = (to: () => StackHost) => (packets: Uint8Array[]) => {
    setImmediate(() => to().receive(packets))
  }
  // Each sink looks the other host up only when it delivers, after both exist.
  const clientHost: StackHost = new StackHost(new Stack({ addresses: [CLIENT_ADDRESS, CLIENT_ADDRESS6] }), { sink: deliver(() => serverHost) })
  const serverHost: StackHost = new StackHost(new Stack({ addresses: [SERVER_ADDRESS, SERVER_ADDRESS6] }), { sink: deliver(() => clientHost) })
  return { client: new Sockets(clientHost), server: new Sockets(serverHost), clientHost, serverHost }
}
