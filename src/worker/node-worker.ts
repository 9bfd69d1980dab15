// The dedicated worker behind `Burrow.start` in a browser: the dataplane host plus the node
// runtime (keys in IndexedDB, coordination, DERP over the browser's WebSocket). Bundled by Vite
// from `new URL('./worker/node-worker.ts', import.meta.url)` in src/index.ts.
import { IndexedDbKeyStore, KeyStoreError, MemoryKeyStore } from '../control/key-store.ts'
import { webSocketDialer } from '../underlay/derp/dialer.ts'
import { NodeRuntime } from './node-runtime.ts'
import type { WorkerMessage } from './protocol.ts'

const scope = globalThis as unknown as {
  postMessage(message: WorkerMessage): void
  addEventListener(type: 'message' | 'messageerror', listener: (event: MessageEvent) => void): void
  addEventListener(type: 'unhandledrejection', listener: (event: PromiseRejectionEvent) => void): void
}

const runtime = new NodeRuntime((message) => scope.postMessage(message), {
  dial: webSocketDialer(),
  keyStore(options) {
    if (options.storage === 'memory') return new MemoryKeyStore()
    if (options.storage === 'indexeddb') return new IndexedDbKeyStore('burrow', 'keys')
    throw new KeyStoreError(`storage ${JSON.stringify(options.storage)} is not available in a browser (use "indexeddb" or "memory")`)
  },
})

scope.addEventListener('message', (event) => runtime.handle(event.data))
scope.addEventListener('messageerror', () => runtime.host.reportError(new Error('a message from the page could not be deserialized')))
scope.addEventListener('unhandledrejection', (event) => runtime.host.reportError(event.reason))
