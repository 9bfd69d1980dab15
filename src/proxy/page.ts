// `node.proxy()`: makes every request under `<origin><prefix><peer>/<port>/<path>` run over the
// overlay. See src/proxy/README.md for the design (prefix scoping, cookies, sandbox, origins).
import { connectWorker, type WorkerConnection } from './connect.ts'
import { DEFAULT_PROXY_PREFIX, PROXY_BRIDGE_PATH } from './protocol.ts'
import { normalizePrefix, proxyPath } from './paths.ts'
import { serveProxyPort, type ProxySend, type ProxyTraffic } from './serve.ts'

export interface ProxyOptions {
  /** The path the proxy answers under. Default `/.burrow/`. */
  prefix?: string
  /**
   * The origin proxied apps are served from. Default: this page's origin. Another origin (e.g.
   * `http://localhost:5173` for a page on `http://127.0.0.1:5173`) keeps proxied apps away from this
   * page's DOM, storage and node; it must serve `/burrow-sw.js` and `/burrow-proxy.html`.
   */
  origin?: string
  /** How long to wait for the Service Worker (and bridge) to come up. Default 15000 ms. */
  timeoutMs?: number
}

export interface BurrowProxy {
  readonly prefix: string
  /** Where proxied apps live, e.g. `http://127.0.0.1:5173`. */
  readonly origin: string
  /** The URL that opens `path` of `peer:port` through the proxy. */
  url(peer: string, port: number, path?: string): string
  /** Requests answered and failed by this page so far. */
  readonly traffic: Readonly<ProxyTraffic>
  /** This page stops serving (another open page with a node may take over). */
  close(): void
}

export class ProxyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ProxyError'
  }
}

export async function startProxy(send: ProxySend, options: ProxyOptions = {}): Promise<BurrowProxy> {
  if (typeof window === 'undefined' || typeof document === 'undefined')
    throw new ProxyError('node.proxy() needs a web page (a Service Worker proxies the requests); in Node use node.fetch()')
  const prefix = normalizePrefix(options.prefix ?? DEFAULT_PROXY_PREFIX)
  let origin: string
  try {
    origin = new URL(options.origin ?? location.origin).origin
  } catch {
    throw new ProxyError(`proxy origin ${JSON.stringify(options.origin)} is not a URL origin`)
  }
  const timeoutMs = options.timeoutMs ?? 15_000
  const traffic: ProxyTraffic = { requests: 0, failures: 0 }
  const ports = new Set<MessagePort>()
  const nextPort = async (): Promise<MessagePort> => {
    const channel = new MessageChannel()
    serveProxyPort(channel.port1, send, traffic)
    ports.add(channel.port1)
    return channel.port2
  }
  let teardown: () => void
  const connecting = origin === location.origin ? sameOrigin(prefix, nextPort) : viaBridge(origin, prefix, nextPort)
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProxyError(`the proxy Service Worker on ${origin} did not come up within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    teardown = await Promise.race([connecting, timeout])
  } finally {
    clearTimeout(timer)
  }
  return {
    prefix,
    origin,
    traffic,
    url: (peer, port, path = '/') => `${origin}${proxyPath(prefix, { peer, port, path })}`,
    close() {
      teardown()
      for (const port of ports) port.close()
      ports.clear()
    },
  }
}

async function sameOrigin(prefix: string, nextPort: () => Promise<MessagePort>): Promise<() => void> {
  let connection: WorkerConnection
  try {
    connection = await connectWorker(prefix, nextPort)
  } catch (error) {
    throw new ProxyError((error as Error).message)
  }
  return () => connection.close()
}

/** Loads the bridge page of `origin` in a hidden iframe and serves through it. */
function viaBridge(origin: string, prefix: string, nextPort: () => Promise<MessagePort>): Promise<() => void> {
  const frame = document.createElement('iframe')
  frame.hidden = true
  frame.title = 'Burrow proxy bridge'
  frame.src = `${origin}${PROXY_BRIDGE_PATH}?prefix=${encodeURIComponent(prefix)}&embedder=${encodeURIComponent(location.origin)}`
  return new Promise((resolve, reject) => {
    const onMessage = (event: MessageEvent): void => {
      if (event.origin !== origin || event.source !== frame.contentWindow || (event.data as { type?: string })?.type !== 'burrow-proxy-bridge-loaded') return
      window.removeEventListener('message', onMessage)
      const control = new MessageChannel()
      control.port1.onmessage = (message: MessageEvent) => {
        const data = message.data as { type?: string; message?: string }
        if (data?.type === 'port') void nextPort().then((port) => control.port1.postMessage({ port }, [port]))
        else if (data?.type === 'ready')
          resolve(() => {
            control.port1.close()
            frame.remove()
          })
        else if (data?.type === 'failed') {
          frame.remove()
          reject(new ProxyError(`the proxy on ${origin} failed: ${data.message}`))
        }
      }
      frame.contentWindow!.postMessage({ type: 'burrow-proxy-connect', control: control.port2 }, origin, [control.port2])
    }
    window.addEventListener('message', onMessage)
    frame.onerror = () => reject(new ProxyError(`cannot load ${frame.src}`))
    document.body.append(frame)
  })
}
