// The page half of the relay-path plumbing bench (see plumbing-worker.ts): `send` writes chunks to
// its worker while fewer than `windowBytes` are unacknowledged (a credit window the size of
// TCP's), `receive` counts what arrives and returns credit for every batch at once, as a TCP
// receiver that reads everything it is given would open its window. Both sides keep the
// per-hop latencies the packets' timestamps give, for bench/e2e.bench.ts's latency table.
import { HEADER_BYTES, type FromWorker, type ToWorker } from './plumbing-protocol.ts'
import { sharedNow } from '../../src/worker/protocol.ts'

const worker = new Worker(new URL('./plumbing-worker.ts', import.meta.url), { type: 'module' })
const toWorker = (message: ToWorker, transfer: Transferable[] = []): void => worker.postMessage(message, transfer)

/** Latency samples (ms) per hop, by name. */
type Samples = Record<string, number[]>
const samples: Samples = {}
const sample = (hop: string, ms: number): void => void (samples[hop] ??= []).push(ms)

let ready: ((key: string) => void) | undefined
let onCredit: ((bytes: number) => void) | undefined
let packetPayload = 0
let receiving: { total: number; received: number; doneAt?: number; resolve: (doneAt: number) => void } | undefined

worker.onmessage = (event: MessageEvent<FromWorker>) => {
  const message = event.data
  const now = sharedNow()
  switch (message.type) {
    case 'ready':
      ready?.(message.publicKey)
      return
    case 'error':
      throw new Error(`plumbing worker: ${message.message}`)
    case 'credit':
      sample('credit: page → worker (postMessage)', message.t6 - message.t5)
      sample('credit: worker → WebSocket → relay → WebSocket → worker', message.t7 - message.t6)
      sample('credit: worker → page (postMessage)', now - message.t7)
      onCredit?.(message.bytes)
      return
    case 'packets': {
      const state = receiving
      if (!state) return
      const view = new DataView(message.buffer)
      let offset = 0
      let bytes = 0
      for (const length of message.lengths) {
        const payload = view.getUint32(offset + 1, true)
        const t0 = view.getFloat64(offset + 8, true)
        const t1 = view.getFloat64(offset + 16, true)
        sample('data: page → worker (postMessage)', t1 - t0)
        sample('data: worker → WebSocket → relay → WebSocket → worker', message.t3 - t1)
        sample('data: sender bufferedAmount at send (KiB, not ms)', view.getFloat64(offset + 24, true) / 1024)
        sample('data: worker → page (postMessage, batched per task)', now - message.t3)
        sample('data: page write → receiving page', now - t0)
        bytes += payload
        offset += length
      }
      state.received += bytes
      toWorker({ type: 'credit', bytes, t5: sharedNow() })
      if (state.received >= state.total && state.doneAt === undefined) {
        state.doneAt = sharedNow()
        state.resolve(state.doneAt)
      }
      return
    }
  }
}

function summary(values: number[]): { n: number; mean: number; p50: number; p90: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  return { n: sorted.length, mean: sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1), p50: at(0.5), p90: at(0.9), max: sorted.at(-1) ?? 0 }
}

const api = {
  /** Connects the worker to the relay; resolves with its DERP public key. */
  start(url: string, packetBytes: number, payloadBytes: number): Promise<string> {
    return new Promise((resolve) => {
      ready = resolve
      packetPayload = payloadBytes
      toWorker({ type: 'start', url, packetBytes: Math.max(packetBytes, HEADER_BYTES), payloadBytes })
    })
  },
  peer(key: string): void {
    toWorker({ type: 'peer', key })
  },
  /** Expects `total` bytes; `done()` resolves with the epoch ms of the last one. */
  receive(total: number): void {
    for (const key of Object.keys(samples)) delete samples[key]
    let resolve!: (doneAt: number) => void
    const done = new Promise<number>((r) => (resolve = r))
    receiving = { total, received: 0, resolve }
    receivingDone = done
  },
  done(): Promise<number> {
    return receivingDone!
  },
  /** Sends `total` bytes in `chunkBytes` writes, at most `windowBytes` unacknowledged; resolves with the epoch ms it started and the share of time the window was full. */
  send(total: number, windowBytes: number, chunkBytes: number): Promise<{ startedAt: number; windowFullShare: number }> {
    for (const key of Object.keys(samples)) delete samples[key]
    const source = new Uint8Array(chunkBytes).fill(0x5a)
    const startedAt = sharedNow()
    let sent = 0
    let acked = 0
    let fullSince: number | undefined
    let fullMs = 0
    return new Promise((resolve) => {
      const pump = (): void => {
        while (sent < total && sent - acked < windowBytes) {
          const length = Math.min(chunkBytes, total - sent, windowBytes - (sent - acked))
          // No runt packets: wait for room for a full one (TCP's sender-side silly window avoidance, RFC 9293 3.8.6.2.1).
          if (length < Math.min(packetPayload, total - sent)) break
          // A fresh buffer per write, as burrow-page's send slices one per write.
          const chunk = source.slice(0, length)
          toWorker({ type: 'data', buffer: chunk.buffer, t0: sharedNow() }, [chunk.buffer])
          sent += length
        }
        if (sent < total && fullSince === undefined) fullSince = sharedNow()
      }
      onCredit = (bytes) => {
        acked += bytes
        if (fullSince !== undefined) {
          fullMs += sharedNow() - fullSince
          fullSince = undefined
        }
        if (acked >= total) {
          onCredit = undefined
          resolve({ startedAt, windowFullShare: fullMs / (sharedNow() - startedAt) })
          return
        }
        pump()
      }
      pump()
    })
  },
  /** The hop latencies of the last transfer (this page's side of it). */
  trace() {
    return Object.fromEntries(Object.entries(samples).map(([hop, values]) => [hop, summary(values)]))
  },
}
let receivingDone: Promise<number> | undefined

declare global {
  interface Window {
    burrowPlumbing: typeof api
  }
}
window.burrowPlumbing = api
document.title = 'ready'
