// The dedicated worker behind `Burrow.start` in a browser: the dataplane host plus the node
// agent (keys in IndexedDB, Burrow's coordination or a tailnet's ts2021 control, DERP over the
// browser's WebSocket). Bundled by Vite from `new URL('./agent/worker.ts', import.meta.url)` in
// src/index.ts. The tailnet client is imported on the first tailnet join: a lazy chunk.
import { coordinationControlPlanes } from '../control/coordination-control-plane.ts'
import { DataplaneError } from '../dataplane/errors.ts'
import { IndexedDbKeyStore, KeyStoreError, MemoryKeyStore } from '../control/key-store.ts'
import { webSocketDialer } from '../underlay/derp/dialer.ts'
import type { WorkerMessage } from '../worker/protocol.ts'
import { NodeAgent } from './agent.ts'

const coordination = coordinationControlPlanes()
let tailnets: Promise<typeof import('../control/tailnet/tailnet-web.ts').webTailnetControlPlanes> | undefined

const scope = globalThis as unknown as {
  postMessage(message: WorkerMessage): void
  addEventListener(type: 'message' | 'messageerror', listener: (event: MessageEvent) => void): void
  addEventListener(type: 'unhandledrejection', listener: (event: PromiseRejectionEvent) => void): void
}

const agent = new NodeAgent((message) => scope.postMessage(message), {
  dial: webSocketDialer(),
  dialRelayEarly: true,
  async controlPlane(join, params) {
    if (join.control !== 'tailnet') return coordination(join, params)
    tailnets ??= import('../control/tailnet/tailnet-web.ts').then(
      (m) => m.webTailnetControlPlanes,
      (error: unknown) => {
        // A chunk that failed to load (a network hiccup) is fetched again by the next join.
        tailnets = undefined
        throw new Error(`the tailnet client (a lazily loaded chunk) did not load: ${(error as Error)?.message ?? String(error)}`)
      },
    )
    const make = await tailnets
    try {
      return make(join, params)
    } catch (error) {
      throw new DataplaneError('bad-config', (error as Error).message)
    }
  },
  keyStore(options) {
    if (options.storage === 'memory') return new MemoryKeyStore()
    if (options.storage === 'indexeddb') return new IndexedDbKeyStore('burrow', 'keys')
    throw new KeyStoreError(`storage ${JSON.stringify(options.storage)} is not available in a browser (use "indexeddb" or "memory")`)
  },
})

scope.addEventListener('message', (event) => agent.handle(event.data))
scope.addEventListener('messageerror', () => agent.host.reportError(new Error('a message from the page could not be deserialized')))
scope.addEventListener('unhandledrejection', (event) => agent.host.reportError(event.reason))
