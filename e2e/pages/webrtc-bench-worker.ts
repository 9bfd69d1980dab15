// The worker end of the raw-datachannel baseline: the page transfers the channel here (as Burrow
// transfers its datagram channel to the dataplane worker), and the sending and counting happen
// off the page's main thread, like Burrow's.
const scope = globalThis as unknown as { postMessage(message: unknown): void; onmessage: ((event: MessageEvent) => void) | null }
let channel: RTCDataChannel | undefined
const received = { messages: 0, bytes: 0, first: 0, last: 0 }

async function send(count: number, size: number, window: number): Promise<number> {
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

scope.onmessage = (event: MessageEvent) => {
  const m = event.data as { type: string; id?: number; channel?: RTCDataChannel; count?: number; size?: number; window?: number }
  if (m.type === 'channel') {
    const ch = (channel = m.channel!)
    ch.binaryType = 'arraybuffer'
    ch.onmessage = (e: MessageEvent<ArrayBuffer>) => {
      const now = performance.now()
      if (received.messages === 0) received.first = now
      received.last = now
      received.messages++
      received.bytes += e.data.byteLength
    }
    if (ch.readyState === 'open') scope.postMessage({ type: 'open' })
    else ch.onopen = () => scope.postMessage({ type: 'open' })
  } else if (m.type === 'send') {
    void send(m.count!, m.size!, m.window!).then((ms) => scope.postMessage({ type: 'result', id: m.id, value: ms }))
  } else if (m.type === 'received') {
    scope.postMessage({ type: 'result', id: m.id, value: { ...received } })
  }
}

export {}
