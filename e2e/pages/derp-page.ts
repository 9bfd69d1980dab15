// Starts the DERP echo worker and exposes it to the Playwright test.
type Report = { type: 'ready'; publicKey: string; usesNativeWebSocket: boolean } | { type: 'stats'; echoed: number; messagesSent: number } | { type: 'failed'; message: string }

let worker: Worker | undefined
const waiters: Array<(report: Report) => void> = []

const api = {
  start(url: string): Promise<Report> {
    worker = new Worker(new URL('./derp-worker.ts', import.meta.url), { type: 'module' })
    worker.onmessage = (event: MessageEvent<Report>) => waiters.shift()?.(event.data)
    return api.request({ type: 'start', url })
  },
  stats(): Promise<Report> {
    return api.request({ type: 'stats' })
  },
  request(message: object): Promise<Report> {
    return new Promise((resolve) => {
      waiters.push(resolve)
      worker!.postMessage(message)
    })
  },
}

declare global {
  interface Window {
    derpE2E: typeof api
  }
}
window.derpE2E = api
document.title = 'ready'
