// The bridge page (built into public/burrow-proxy.html): loaded in a hidden iframe on the proxy's
// origin by an embedding page on another origin. It registers the Service Worker there and passes
// it ports whose other end is in the embedding page, which owns the node. It accepts a connection
// only from the embedding origin named in its URL.
import { connectWorker } from './connect.ts'
import { normalizePrefix } from './paths.ts'

const params = new URLSearchParams(location.search)
const embedder = params.get('embedder')
const prefix = normalizePrefix(params.get('prefix') ?? '/.burrow/')

window.addEventListener('message', (event: MessageEvent) => {
  const data = event.data as { type?: string; control?: MessagePort }
  if (event.origin !== embedder || event.source !== window.parent || data?.type !== 'burrow-proxy-connect' || !(data.control instanceof MessagePort)) return
  const control = data.control
  const waiting: Array<(port: MessagePort) => void> = []
  control.onmessage = (message: MessageEvent) => {
    const port = (message.data as { port?: MessagePort })?.port
    if (port instanceof MessagePort) waiting.shift()?.(port)
  }
  const nextPort = (): Promise<MessagePort> =>
    new Promise((resolve) => {
      waiting.push(resolve)
      control.postMessage({ type: 'port' })
    })
  connectWorker(prefix, nextPort).then(
    () => control.postMessage({ type: 'ready' }),
    (error: unknown) => control.postMessage({ type: 'failed', message: (error as Error)?.message ?? String(error) }),
  )
})
window.parent.postMessage({ type: 'burrow-proxy-bridge-loaded' }, embedder ?? '*')
