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
  let clientHost!: StackHost
  let serverHost!: StackHost
  const deliver = (to: () => StackHost) => (packets: Uint8Array[]) => {
    setImmediate(() => to().receive(packets))
  }
  clientHost = new StackHost(new Stack({ addresses: [CLIENT_ADDRESS, CLIENT_ADDRESS6] }), { sink: deliver(() => serverHost) })
  serverHost = new StackHost(new Stack({ addresses: [SERVER_ADDRESS, SERVER_ADDRESS6] }), { sink: deliver(() => clientHost) })
  return { client: new Sockets(clientHost), server: new Sockets(serverHost), clientHost, serverHost }
}
