// Burrow for Node.js: the same API as in browsers, plus `stateDir` for the key files. The worker
// side (dataplane host and node agent) runs in-process behind a MessageChannel, exactly the code
// a browser runs in its dedicated worker; DERP and coordination use the `ws` package.
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
import type { WorkerLike } from './worker/client.ts'

export {
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

function launchInProcess(): NodeWorkerLink {
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
  })
  main.port2.onmessage = (event: MessageEvent) => agent.handle(event.data)
  agent.attachControl(control.port2)
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
    return startNode((link) => new Burrow(link), launchInProcess(), options, {
      storage: 'file',
      ...(options?.stateDir !== undefined ? { stateDir: options.stateDir } : {}),
    })
  }
}
