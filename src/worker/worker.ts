// The dedicated Web Worker entry. Bundled by Vite from `new URL('./worker.ts', import.meta.url)`.
// All logic lives in WorkerHost; this file only binds it to the worker global.
import { WorkerHost } from './host.ts'
import type { WorkerMessage } from './protocol.ts'

const scope = globalThis as unknown as {
  postMessage(message: WorkerMessage): void
  addEventListener(type: 'message' | 'messageerror', listener: (event: MessageEvent) => void): void
  addEventListener(type: 'error', listener: (event: ErrorEvent) => void): void
  addEventListener(type: 'unhandledrejection', listener: (event: PromiseRejectionEvent) => void): void
}

const host = new WorkerHost((message) => scope.postMessage(message))

scope.addEventListener('message', (event) => host.handle(event.data))
scope.addEventListener('messageerror', () => host.reportError(new Error('a message from the page could not be deserialized')))
scope.addEventListener('unhandledrejection', (event) => host.reportError(event.reason))
