// Raw datachannel throughput between two pages of one browser (no Burrow code on the data path):
// the baseline that tunnelled TCP over a direct path is compared with. Pages find each other over
// a BroadcastChannel named by `?run=`; the one with `?role=offer` makes the offer.
const params = new URLSearchParams(location.search)
const signalling = new BroadcastChannel(`webrtc-bench-${params.get('run')}`)
const offerer = params.get('role') === 'offer'
let channel: RTCDataChannel | undefined
const received = { messages: 0, bytes: 0, first: 0, last: 0 }
/** `?worker=1`: the channel is transferred to a worker that sends and counts (Burrow's arrangement). */
const worker = params.get('worker') === '1' ? new Worker(new URL('./webrtc-bench-worker.ts', import.meta.url), { type: 'module' }) : undefined
const pending = new Map<number, (value: unknown) => void>()
let nextId = 1
let workerOpen: (() => void) | undefined
worker?.addEventListener('message', (event: MessageEvent) => {
  const m = event.data as { type: string; id?: number; value?: unknown }
  if (m.type === 'open') workerOpen?.()
  else if (m.type === 'result') {
    pending.get(m.id!)?.(m.value)
    pending.delete(m.id!)
  }
})
function askWorker<T>(message: Record<string, unknown>): Promise<T> {
  const id = nextId++
  return new Promise((resolve) => {
    pending.set(id, resolve as (value: unknown) => void)
    worker!.postMessage({ ...message, id })
  })
}

function connect(init: RTCDataChannelInit): Promise<void> {
  const pc = new RTCPeerConnection()
  let resend: ReturnType<typeof setInterval> | undefined
  pc.onicecandidate = (event) => {
    if (event.candidate) signalling.postMessage({ candidate: event.candidate.toJSON() })
  }
  signalling.onmessage = async (event: MessageEvent) => {
    const data = event.data as { sdp?: RTCSessionDescriptionInit; candidate?: RTCIceCandidateInit }
    if (data.sdp) {
      // The offer is re-sent until answered (an answering page may not have been listening yet).
      if (data.sdp.type === 'offer' && pc.remoteDescription) return
      if (data.sdp.type === 'answer') clearInterval(resend)
      await pc.setRemoteDescription(data.sdp)
      if (data.sdp.type === 'offer') {
        await pc.setLocalDescription(await pc.createAnswer())
        signalling.postMessage({ sdp: pc.localDescription!.toJSON() })
      }
    } else if (data.candidate) {
      await pc.addIceCandidate(data.candidate)
    }
  }
  return new Promise((resolve) => {
    const adopt = (ch: RTCDataChannel): void => {
      if (worker) {
        // In the task that made the channel: only then is it transferable.
        workerOpen = resolve
        worker.postMessage({ type: 'channel', channel: ch }, [ch as unknown as Transferable])
        return
      }
      channel = ch
      ch.binaryType = 'arraybuffer'
      ch.onmessage = (event: MessageEvent<ArrayBuffer>) => {
        const now = performance.now()
        if (received.messages === 0) received.first = now
        received.last = now
        received.messages++
        received.bytes += event.data.byteLength
      }
      if (ch.readyState === 'open') resolve()
      else ch.onopen = () => resolve()
    }
    if (offerer) {
      adopt(pc.createDataChannel('bench', init))
      void pc.createOffer().then(async (offer) => {
        await pc.setLocalDescription(offer)
        signalling.postMessage({ sdp: pc.localDescription!.toJSON() })
        resend = setInterval(() => signalling.postMessage({ sdp: pc.localDescription!.toJSON() }), 500)
      })
    } else {
      pc.ondatachannel = (event) => adopt(event.channel)
    }
  })
}

/** Sends `count` messages of `size` bytes, keeping at most `window` bytes buffered. */
async function send(count: number, size: number, window: number): Promise<number> {
  if (worker) return askWorker<number>({ type: 'send', count, size, window })
  const ch = channel!
  ch.bufferedAmountLowThreshold = window / 2
  const message = new Uint8Array(size)
  const start = performance.now()
  for (let sent = 0; sent < count;) {
    while (sent < count && ch.bufferedAmount < window) {
      ch.send(message)
      sent++
    }
    if (sent < count) await new Promise<void>((resolve) => ch.addEventListener('bufferedamountlow', () => resolve(), { once: true }))
  }
  return performance.now() - start
}

const api = {
  connect,
  send,
  received: () => (worker ? askWorker<typeof received>({ type: 'received' }) : Promise.resolve({ ...received })),
}

declare global {
  interface Window {
    webrtcBench: typeof api
  }
}
window.webrtcBench = api
document.title = 'ready'

export {}
