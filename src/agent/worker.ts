// The dedicated worker behind `Burrow.start` in a browser: the dataplane host plus the node
// agent (keys in IndexedDB, Burrow's coordination, DERP over the browser's WebSocket). Bundled
// by Vite from `new URL('./agent/worker.ts', import.meta.url)` in src/index.ts.
import { coordinationControlPlanes } from '../control/coordination-control-plane.ts'
import { IndexedDbKeyStore, KeyStoreError, MemoryKeyStore } from '../control/key-store.ts'
import { webSocketDialer } from '../underlay/derp/dialer.ts'
import type { WorkerMessage } from '../worker/protocol.ts'
import { NodeAgent } from './agent.ts'

const scope = globalThis as unknown as {
  postMessage(message: WorkerMessage): void
  addEventListener(type: 'message' | 'messageerror', listener: (event: MessageEvent) => void): void
  addEventListener(type: 'unhandledrejection', listener: (event: PromiseRejectionEvent) => void): void
}

const agent = new NodeAgent((message) => scope.postMessage(message), {
  dial: webSocketDialer(),
  dialRelayEarly: true,
  controlPlane: coordinationControlPlanes(),
  keyStore(options) {
    if (options.storage === 'memory') return new MemoryKeyStore()
    if (options.storage === 'indexeddb') return new IndexedDbKeyStore('burrow', 'keys')
    throw new KeyStoreError(`storage ${JSON.stringify(options.storage)} is not available in a browser (use "indexeddb" or "memory")`)
  },
})

scope.addEventListener('message', (event) => agent.handle(event.data))
scope.addEventListener('messageerror', () => agent.host.reportError(new Error('a message from the page could not be deserialized')))
scope.addEventListener('unhandledrejection', (event) => agent.host.reportError(event.reason))
