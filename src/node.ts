// Burrow for Node.js: the same API as in browsers, plus `stateDir` for the key files. The worker
// side (dataplane host and node agent) runs in-process behind a MessageChannel, exactly the code
// a browser runs in its dedicated worker; DERP and coordination use the `ws` package.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { homedir } from 'node:os'
import { BurrowNode, startNode, type BurrowStartOptions, type NodeWorkerLink } from './burrow.ts'
import { BurrowError } from './burrow-errors.ts'
import { NodeAgent } from './agent/agent.ts'
import { coordinationControlPlanes } from './control/coordination-control-plane.ts'
import { tailnetControlPlanes } from './control/tailnet/control-plane.ts'
import { httpUpgradeDialer } from './control/tailnet/dial-node.ts'
import { KeyStoreError, MemoryKeyStore } from './control/key-store.ts'
import { FileKeyStore } from './control/key-store-node.ts'
import { nodeWebSocketDialer } from './underlay/derp/node.ts'
import { WebRtcPageAgent, type SimplePeerConstructor, type WrtcImplementation } from './underlay/webrtc/page-agent.ts'
import type { WorkerLike } from './worker/client.ts'
import { udpDirectFactory } from './node/udp-direct.ts'

export {
  BurrowAuthURLEvent,
  BurrowError,
  BurrowErrorEvent,
  BurrowPathEvent,
  BurrowPeersEvent,
  BurrowStateEvent,
  type BurrowErrorCode,
  type BurrowHttpServer,
  type BurrowPeer,
  type NodeState,
} from './burrow.ts'
export type { TCPSocket, TCPServerSocket, UDPSocket, TcpConnectOptions, UdpOptions, UdpMessage } from './overlay/sockets.ts'

export interface BurrowNodeStartOptions extends BurrowStartOptions {
  /** Where key files live with `storage: 'file'` (the default in Node). Default `~/.local/state/burrow`. */
  stateDir?: string
}

export function defaultStateDir(): string {
  return join(process.env['XDG_STATE_HOME'] ?? join(homedir(), '.local', 'state'), 'burrow')
}

const coordination = coordinationControlPlanes()
const tailnets = tailnetControlPlanes(httpUpgradeDialer())

/** Whether direct WebRTC paths can run in this process, and if not, why (the binding did not load). */
export type NodeWebRtcSupport = { available: true } | { available: false; reason: string }

let webrtcModules: { wrtc: WrtcImplementation; SimplePeer: SimplePeerConstructor } | { error: string } | undefined

/**
 * Loads @roamhq/wrtc (libwebrtc's prebuilt Node binding, from the npm registry) and simple-peer
 * once per process. Where the binding does not load (no prebuilt for this platform, a missing
 * system library) nodes run relay-only and say why.
 */
function loadWebRtc(): typeof webrtcModules {
  if (webrtcModules) return webrtcModules
  const require = createRequire(import.meta.url)
  try {
    const wrtc = require('@roamhq/wrtc') as WrtcImplementation
    const SimplePeer = require('simple-peer') as SimplePeerConstructor
    webrtcModules = { wrtc, SimplePeer }
  } catch (error) {
    webrtcModules = { error: (error as Error).message.split('\n')[0]! }
  }
  return webrtcModules
}

export function nodeWebRtcSupport(): NodeWebRtcSupport {
  const loaded = loadWebRtc()!
  return 'error' in loaded ? { available: false, reason: `@roamhq/wrtc did not load: ${loaded.error}` } : { available: true }
}

let warnedNoWebRtc = false

function launchInProcess(options: BurrowNodeStartOptions): NodeWorkerLink {
  const main = new MessageChannel()
  const control = new MessageChannel()
  const agent = new NodeAgent((message) => main.port2.postMessage(message), {
    dial: nodeWebSocketDialer(),
    controlPlane: (join, params) => (join.control === 'tailnet' ? tailnets(join, params) : coordination(join, params)),
    keyStore(options) {
      if (options.storage === 'memory') return new MemoryKeyStore()
      if (options.storage === 'file') return new FileKeyStore(options.stateDir ?? defaultStateDir())
      throw new KeyStoreError(`storage ${JSON.stringify(options.storage)} is not available in Node (use "file" or "memory")`)
    },
    // Between two Node peers the direct path is plain UDP (STUN, CallMeMaybe, disco pings), not WebRTC.
    ...(options?.direct !== false ? { udpDirect: udpDirectFactory() } : {}),
  })
  main.port2.onmessage = (event: MessageEvent) => agent.handle(event.data)
  agent.attachControl(control.port2)
  // Direct paths as in a browser tab: simple-peer over node-webrtc runs the connections, the
  // node agent (the worker side) moves the datagrams over the channels it is handed (bridged over a
  // MessagePort: a native channel object cannot be posted).
  let webrtcAgent: WebRtcPageAgent | undefined
  if (options?.direct !== false) {
    const loaded = loadWebRtc()!
    if ('error' in loaded) {
      if (!warnedNoWebRtc) console.warn(`burrow: direct paths are off, every peer stays on its relay: @roamhq/wrtc did not load (${loaded.error})`)
      warnedNoWebRtc = true
    } else {
      const webrtc = new MessageChannel()
      webrtcAgent = new WebRtcPageAgent(webrtc.port1, {
        ...(Array.isArray(options.iceServers) ? { iceServers: options.iceServers } : {}),
        wrtc: loaded.wrtc,
        loadSimplePeer: () => Promise.resolve(loaded.SimplePeer),
        prefetch: true,
      })
      agent.attachWebRtc(webrtc.port2)
    }
  }
  const page = main.port1
  const worker: WorkerLike = {
    postMessage: (message, transfer) => page.postMessage(message, transfer as Transferable[]),
    addEventListener: (type, listener) => page.addEventListener(type, listener),
  }
  page.start()
  return {
    worker,
    control: control.port1,
    terminate() {
      agent.dispose()
      // The last datagrams (a FIN, the byes) are still crossing the bridge ports to the channels;
      // closing the connections now would drop them. One short turn later nothing is in flight.
      if (webrtcAgent) setTimeout(() => webrtcAgent.close(), 200)
      main.port1.close()
      main.port2.close()
      control.port2.close()
    },
  }
}

export class Burrow extends BurrowNode {
  /** Starts a node and joins the network; rejects with a `BurrowError` (e.g. code `unauthorized`). */
  static start(options: BurrowNodeStartOptions): Promise<Burrow> {
    if (options?.stateDir !== undefined && typeof options.stateDir !== 'string') {
      return Promise.reject(new BurrowError('bad-options', 'stateDir must be a directory path'))
    }
    return startNode((link) => new Burrow(link), launchInProcess(options), options, {
      storage: 'file',
      ...(options?.stateDir !== undefined ? { stateDir: options.stateDir } : {}),
    })
  }
}
