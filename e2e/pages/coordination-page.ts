// Runs the coordination client in a dedicated worker and exposes it to the Playwright test.
import type { PeerEntry } from '../../src/control/protocol.ts'
import { IndexedDbKeyStore, loadOrCreateKeyPair } from '../../src/control/key-store.ts'
import { toHex } from '../../src/crypto/index.ts'

type Outcome =
  | { type: 'ready'; self: PeerEntry; peers: PeerEntry[]; usesNativeWebSocket: boolean }
  | { type: 'failed'; error: { name?: string; status?: number; message?: string; fatal?: boolean } }

let worker: Worker | undefined
let latestPeers: PeerEntry[] = []
const peerWaiters: Array<() => void> = []

const api = {
  start(url: string, hostname: string, database: string, authKey?: string): Promise<Outcome> {
    worker?.terminate()
    worker = new Worker(new URL('./coordination-worker.ts', import.meta.url), { type: 'module' })
    return new Promise((resolve) => {
      worker!.onmessage = (event: MessageEvent) => {
        const data = event.data as Outcome | { type: 'peers'; peers: PeerEntry[] }
        if (data.type === 'peers') {
          latestPeers = data.peers
          for (const wake of peerWaiters.splice(0)) wake()
        } else {
          if (data.type === 'ready') latestPeers = data.peers
          resolve(data)
        }
      }
      worker!.postMessage({ type: 'start', url, hostname, database, ...(authKey !== undefined ? { authKey } : {}) })
    })
  },
  /** Resolves with the peer map once some peer has `hostname` (and `online` if given). */
  async waitForPeer(hostname: string, online?: boolean): Promise<PeerEntry[]> {
    const matches = (): boolean => latestPeers.some((p) => p.hostname === hostname && (online === undefined || p.online === online))
    while (!matches()) await new Promise<void>((wake) => peerWaiters.push(wake))
    return latestPeers
  },
  setHomeRelay(url: string, region: string): void {
    worker?.postMessage({ type: 'home-relay', homeRelay: { url, region } })
  },
  /** Several creators racing on an empty IndexedDB store; returns the public keys each got. */
  async raceKeys(database: string): Promise<string[]> {
    const pairs = await Promise.all([1, 2, 3].map(() => loadOrCreateKeyPair(new IndexedDbKeyStore(database), 'node')))
    return pairs.map((pair) => toHex(pair.publicKey))
  },
  stop(): void {
    worker?.terminate()
    worker = undefined
  },
}

declare global {
  interface Window {
    coordinationE2E: typeof api
  }
}
window.coordinationE2E = api
document.title = 'ready'
