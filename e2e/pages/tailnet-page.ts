// A tab that joins a Tailscale-protocol tailnet (Headscale) with the public `Burrow` API, driven by
// e2e/tailnet.test.ts through `window.tailnetE2E`. One node per tab.
import { Burrow, BurrowError, type BurrowPeer, type BurrowStartOptions } from '../../src/index.ts'

let node: Burrow | undefined
/** Every AuthURL the node was given (onAuthURL), in order. */
const authURLs: string[] = []
/** Every `auth-url` event the node dispatched after it started. */
const authEvents: string[] = []

function describeError(error: unknown): { name: string; code?: string; status?: number; message: string } {
  if (error instanceof BurrowError) return { name: error.name, code: error.code, ...(error.status !== undefined ? { status: error.status } : {}), message: error.message }
  const e = error as Error
  return { name: e?.name ?? 'Error', message: e?.message ?? String(error) }
}

function current(): Burrow {
  if (!node) throw new Error('not started')
  return node
}

const api = {
  async start(options: Omit<BurrowStartOptions, 'onAuthURL'>) {
    try {
      node = await Burrow.start({ ...options, onAuthURL: (url) => authURLs.push(url) })
      node.addEventListener('auth-url', (event) => authEvents.push((event as Event & { url: string }).url))
      return { ok: true as const, nodeKey: node.nodeKey, hostname: node.hostname, addresses: node.addresses, state: node.state }
    } catch (error) {
      return { ok: false as const, error: describeError(error) }
    }
  },
  authURLs(): string[] {
    return authURLs
  },
  peers(): BurrowPeer[] {
    return current().peers()
  },
  state(): string {
    return current().state
  },
  async fetchDigest(url: string) {
    const response = await current().fetch(url)
    const body = new Uint8Array(await response.arrayBuffer())
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body))
    return { status: response.status, bytes: body.length, sha256: [...digest].map((b) => b.toString(16).padStart(2, '0')).join('') }
  },
  async ping(target: string): Promise<{ ok: true; rttMs: number } | { ok: false; error: string }> {
    try {
      return { ok: true, rttMs: await current().ping(target, { timeout: 5000 }) }
    } catch (error) {
      return { ok: false, error: describeError(error).message }
    }
  },
  async close(): Promise<void> {
    await node?.close()
    node = undefined
  },
}

declare global {
  interface Window {
    tailnetE2E: typeof api
  }
}
window.tailnetE2E = api
document.title = 'ready'
