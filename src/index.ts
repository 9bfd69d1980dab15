// Burrow for web pages: `const node = await Burrow.start({ controlURL, authKey, hostname })`.
// The dataplane, the node key and the relay connections live in a dedicated worker; the TCP/IP
// stack runs in the page.
import { BurrowNode, startNode, type BurrowStartOptions, type NodeWorkerLink } from './burrow.ts'
import { NODE_CONTROL_MESSAGE } from './worker/node-protocol.ts'

export {
  BurrowError,
  BurrowErrorEvent,
  BurrowPeersEvent,
  BurrowStateEvent,
  type BurrowErrorCode,
  type BurrowHttpServer,
  type BurrowPeer,
  type BurrowStartOptions,
  type NodeState,
} from './burrow.ts'
export type { TCPSocket, TCPServerSocket, UDPSocket, TcpConnectOptions, UdpOptions, UdpMessage } from './overlay/sockets.ts'

function launchWorker(): NodeWorkerLink {
  // Written out literally so Vite (and other bundlers) bundle the worker.
  const worker = new Worker(new URL('./worker/node-worker.ts', import.meta.url), { type: 'module', name: 'burrow' })
  const control = new MessageChannel()
  worker.postMessage({ type: NODE_CONTROL_MESSAGE, port: control.port2 }, [control.port2])
  return { worker, control: control.port1, terminate: () => worker.terminate() }
}

export class Burrow extends BurrowNode {
  /** Starts a node and joins the network; rejects with a `BurrowError` (e.g. code `unauthorized`). */
  static start(options: BurrowStartOptions): Promise<Burrow> {
    return startNode((link) => new Burrow(link), launchWorker(), options, { storage: 'indexeddb' })
  }
}
