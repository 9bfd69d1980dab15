// A dedicated worker that does what the dataplane worker does for coordination: keeps the node
// key in IndexedDB, registers, and reports its own entry, peer map changes and errors.
import { CoordinationClient } from '../../src/control/coordination-client.ts'
import { IndexedDbKeyStore, loadOrCreateKeyPair } from '../../src/control/key-store.ts'
import type { HomeRelay } from '../../src/control/protocol.ts'

export interface StartRequest {
  type: 'start'
  url: string
  authKey?: string
  hostname: string
  database: string
}

let client: CoordinationClient | undefined

self.onmessage = async (event: MessageEvent<StartRequest | { type: 'home-relay'; homeRelay: HomeRelay }>) => {
  const request = event.data
  if (request.type === 'home-relay') {
    client?.setHomeRelay(request.homeRelay)
    return
  }
  try {
    const store = new IndexedDbKeyStore(request.database)
    const nodeKeyPair = await loadOrCreateKeyPair(store, 'node')
    const disco = await loadOrCreateKeyPair(store, 'disco')
    client = new CoordinationClient({
      url: request.url,
      nodeKeyPair,
      discoPublicKey: disco.publicKey,
      hostname: request.hostname,
      ...(request.authKey !== undefined ? { authKey: request.authKey } : {}),
    })
    client.on('peers', (peers) => postMessage({ type: 'peers', peers }))
    client.start()
    const self = await client.ready()
    postMessage({ type: 'ready', self, peers: client.peers(), usesNativeWebSocket: typeof WebSocket === 'function' })
  } catch (error) {
    const e = error as { name?: string; status?: number; message?: string; fatal?: boolean }
    postMessage({ type: 'failed', error: { name: e.name, status: e.status, message: e.message, fatal: e.fatal } })
  }
}
