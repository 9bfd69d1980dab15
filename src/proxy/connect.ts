// Registers the proxy's Service Worker in this document's origin and keeps it supplied with a
// port to a node: at start, and again whenever the worker asks (it forgets its ports when the
// browser stops it while idle). Runs in the embedding page itself (proxy on the page's origin) or
// in the bridge page (proxy on another origin).
import { PROXY_WORKER_PATH, type ServeMessage } from './protocol.ts'

export interface WorkerConnection {
  close(): void
}

/** `nextPort()` gives a fresh port whose other end serves requests. */
export async function connectWorker(prefix: string, nextPort: () => Promise<MessagePort>): Promise<WorkerConnection> {
  const container = navigator.serviceWorker
  if (!container) throw new Error('this page cannot use Service Workers (it needs a secure context such as https: or http://localhost, and no sandbox without allow-same-origin)')
  const registration = await container.register(`${PROXY_WORKER_PATH}?prefix=${encodeURIComponent(prefix)}`, { scope: '/', updateViaCache: 'none' })
  const active = await activeWorker(registration)
  let closed = false
  const offer = async (worker: ServiceWorker): Promise<void> => {
    const port = await nextPort()
    if (closed) return port.close()
    const message: ServeMessage = { type: 'burrow-proxy-serve', port }
    worker.postMessage(message, [port])
  }
  await offer(active)
  const onMessage = (event: MessageEvent): void => {
    if ((event.data as { type?: string })?.type !== 'burrow-proxy-need-server' || closed) return
    const worker = (event.source as ServiceWorker | null) ?? registration.active
    if (worker) void offer(worker).catch(() => {})
  }
  container.addEventListener('message', onMessage)
  // A page that is not controlled yet gets no messages from the worker until this is called.
  container.startMessages?.()
  // While a page keeps messaging it, the browser does not stop the worker (and lose its ports).
  const keepAlive = setInterval(() => registration.active?.postMessage({ type: 'burrow-proxy-keepalive' }), 20_000)
  return {
    close() {
      closed = true
      clearInterval(keepAlive)
      registration.active?.postMessage({ type: 'burrow-proxy-withdraw' })
      container.removeEventListener('message', onMessage)
    },
  }
}

function activeWorker(registration: ServiceWorkerRegistration): Promise<ServiceWorker> {
  if (registration.active) return Promise.resolve(registration.active)
  const pending = registration.installing ?? registration.waiting
  return new Promise((resolve, reject) => {
    if (!pending) return reject(new Error('the proxy Service Worker registered but never installed'))
    pending.addEventListener('statechange', () => {
      if (pending.state === 'activated') resolve(pending)
      else if (pending.state === 'redundant') reject(new Error(`the proxy Service Worker (${PROXY_WORKER_PATH}) failed to install; is it served at the root of this origin?`))
    })
  })
}
