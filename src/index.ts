// Burrow for web pages: `const node = await Burrow.start({ controlURL, authKey, hostname })`.
// The dataplane, the node key and the relay connections live in a dedicated worker; the TCP/IP
// stack runs in the page.
import { BurrowNode, startNode, type BurrowStartOptions, type NodeWorkerLink } from './burrow.ts'
import { WebRtcPageAgent } from './underlay/webrtc/page-agent.ts'
import { NODE_CONTROL_MESSAGE } from './agent/protocol.ts'

export {
  BurrowAuthURLEvent,
  BurrowError,
  BurrowErrorEvent,
  BurrowPathEvent,
  BurrowPeersEvent,
  BurrowStateEvent,
  type BurrowErrorCode,
  type BurrowIceServer,
  type BurrowHttpServer,
  type BurrowPeer,
  type BurrowStartOptions,
  type NodeState,
} from './burrow.ts'
export type { BurrowProxy, ProxyOptions } from './proxy/page.ts'
export type { TCPSocket, TCPServerSocket, UDPSocket, TcpConnectOptions, UdpOptions, UdpMessage } from './overlay/sockets.ts'

function launchWorker(options: BurrowStartOptions): NodeWorkerLink {
  // Written out literally so Vite (and other bundlers) bundle the worker.
  const worker = new Worker(new URL('./agent/worker.ts', import.meta.url), { type: 'module', name: 'burrow' })
  const control = new MessageChannel()
  // RTCPeerConnection exists only in windows: the page runs WebRTC signalling and hands each
  // datachannel to the worker, which moves the datagrams.
  let agent: WebRtcPageAgent | undefined
  if (options?.direct !== false && typeof RTCPeerConnection === 'function') {
    const webrtc = new MessageChannel()
    agent = new WebRtcPageAgent(webrtc.port1, { prefetch: true, ...(Array.isArray(options?.iceServers) ? { iceServers: options.iceServers } : {}) })
    worker.postMessage({ type: NODE_CONTROL_MESSAGE, port: control.port2, webrtcPort: webrtc.port2 }, [control.port2, webrtc.port2])
  } else {
    worker.postMessage({ type: NODE_CONTROL_MESSAGE, port: control.port2 }, [control.port2])
  }
  return {
    worker,
    control: control.port1,
    terminate: () => {
      agent?.close()
      worker.terminate()
    },
  }
}

export class Burrow extends BurrowNode {
  /** Starts a node and joins the network; rejects with a `BurrowError` (e.g. code `unauthorized`). */
  static start(options: BurrowStartOptions): Promise<Burrow> {
    return startNode((link) => new Burrow(link), launchWorker(options), options, { storage: 'indexeddb' })
  }
}
