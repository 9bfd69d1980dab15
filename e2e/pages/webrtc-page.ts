// Test page: a WebRtcPageAgent (RTCPeerConnection lives here) serving the WebRTC underlay in
// its worker. `?bridge` forces the postMessage bridge instead of transferring the channel.
import { WebRtcPageAgent } from '../../src/underlay/webrtc/page-agent.ts'
import type { WorkerRequest, WorkerStats } from './webrtc-worker.ts'

const worker = new Worker(new URL('./webrtc-worker.ts', import.meta.url), { type: 'module' })
const { port1, port2 } = new MessageChannel()
const errors: string[] = []
const agent = new WebRtcPageAgent(port1, { forceBridge: location.search.includes('bridge'), onError: (error) => errors.push(error.message) })

let waiting: ((message: unknown) => void) | undefined
worker.onmessage = (event: MessageEvent) => {
  if (event.data?.type === 'error') errors.push(event.data.message)
  const resolve = waiting
  waiting = undefined
  resolve?.(event.data)
}

worker.onerror = (event) => errors.push(`worker error: ${event.message}`)

function ask<T>(request: WorkerRequest, transfer: Transferable[] = []): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not answer ${request.type} within 20 s; errors: ${errors.join('; ')}`)), 20_000)
    waiting = (message) => {
      clearTimeout(timer)
      resolve(message as T)
    }
    worker.postMessage(request, transfer)
  })
}

const api = {
  start: (relayUrl: string) => ask<{ type: 'ready'; nodeKey: string; discoKey: string }>({ type: 'start', relayUrl, control: port2 }, [port2]),
  setPeer: (nodeKey: string, discoKey: string) => ask({ type: 'peer', nodeKey, discoKey }),
  connect: () => ask({ type: 'connect' }),
  blast: (count: number, size: number, window?: number) => ask({ type: 'blast', count, size, ...(window ? { window } : {}) }),
  stats: async () => ({ ...(await ask<{ stats: WorkerStats }>({ type: 'stats' })).stats, handover: agent.lastHandover, errors }),
  /** Gathered host candidates need a real interface: report what this page can see. */
  closeAgent: () => agent.close(),
}

declare global {
  interface Window {
    webrtcE2E: typeof api
  }
}
window.webrtcE2E = api
document.title = 'ready'
