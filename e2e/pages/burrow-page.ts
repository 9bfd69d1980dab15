// The public `Burrow` API in a page, driven by the Playwright test through `window.burrowNodeE2E`.
import { Burrow, BurrowError, BurrowPathEvent, type BurrowPeer, type BurrowStartOptions } from '../../src/index.ts'

let node: Burrow | undefined
interface Transfer {
  received: number
  /** `sharedNow()`-style epoch ms of the first and last byte, for throughput across browsers. */
  firstAt?: number
  doneAt?: number
  done?: { bytes: number; sha256: string }
  error?: string
}
const transfers = new Map<number, Transfer>()
/** Every `state` event of the current node, in order. */
const states: string[] = []
/** Every `path` event of the current node, in order, with the page's clock. */
const pathEvents: Array<{ hostname: string; path: string; rttMs: number | null; at: number }> = []
/** Every AuthURL a tailnet's control server gave the nodes of this page (onAuthURL), in order. */
const authURLs: string[] = []
/** `performance.now()` when the current node's `Burrow.start` was called. */
let startCalledAt = 0
const epochNow = (): number => performance.timeOrigin + performance.now()

/**
 * The TCP segments of one connection as this page's packet tap sees them (the page's side of the
 * worker), for bench/e2e.bench.ts's latency trace: offsets are relative to the connection's ISN,
 * so the sender's and the receiver's records line up; times are epoch ms (comparable across browsers).
 */
interface SegmentTrace {
  port: number
  /** ISN of the data direction (from the SYN), once seen. */
  isn?: number
  /** Data segments: [offset, length, time] (first transmission and retransmissions alike). */
  data: Array<[number, number, number]>
  /** Pure or piggybacked ACKs of the data direction: [acked offset, time]. */
  acks: Array<[number, number]>
  /** App writes (sender only): [offset of the write's first byte, time `write` was called]. */
  writes: Array<[number, number]>
}
let trace: SegmentTrace | undefined

/** Records TCP segments to/from `trace.port` (IPv4 only: the bench connects to IPv4 addresses). */
function traceTap(packet: Uint8Array, direction: 'in' | 'out'): void {
  const t = trace
  if (!t || packet.length < 40 || packet[0]! >> 4 !== 4 || packet[9] !== 6) return
  const ihl = (packet[0]! & 15) * 4
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength)
  const src = view.getUint16(ihl)
  const dst = view.getUint16(ihl + 2)
  const seq = view.getUint32(ihl + 4)
  const ack = view.getUint32(ihl + 8)
  const flags = packet[ihl + 13]!
  const payload = view.getUint16(2) - ihl - (packet[ihl + 12]! >> 4) * 4
  const now = epochNow()
  // RFC 9293 3.1: SYN (0x02), ACK (0x10). The data direction is the one towards `port`.
  if (dst === t.port) {
    if (flags & 0x02 && !(flags & 0x10)) t.isn = seq
    else if (t.isn !== undefined && payload > 0) t.data.push([(seq - t.isn - 1) >>> 0, payload, now])
  } else if (src === t.port && t.isn !== undefined && flags & 0x10 && !(flags & 0x02)) {
    t.acks.push([(ack - t.isn - 1) >>> 0, now])
  }
  void direction
}

function hex(buffer: ArrayBuffer): string {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

/** `size` deterministic pseudo-random bytes (xorshift32 from `seed`). */
function payload(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size)
  const words = new Uint32Array(bytes.buffer, 0, size >>> 2)
  let x = seed >>> 0 || 1
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x >>> 0
  }
  return bytes
}

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
  /** `traced`: install the packet tap `traceOn` records with (it does nothing until then). */
  async start(options: BurrowStartOptions, traced = false) {
    try {
      startCalledAt = performance.now()
      const withAuth = { ...options, onAuthURL: (url: string) => authURLs.push(url) }
      node = await Burrow.start(traced ? { ...withAuth, capture: traceTap } : withAuth)
      const started = node
      started.addEventListener('state', () => states.push(started.state))
      started.addEventListener('path', (event) => {
        const { hostname, path, rttMs } = event as BurrowPathEvent
        pathEvents.push({ hostname, path, rttMs, at: performance.now() })
      })
      return { ok: true as const, nodeKey: node.nodeKey, hostname: node.hostname, addresses: node.addresses, state: node.state }
    } catch (error) {
      return { ok: false as const, error: describeError(error) }
    }
  },
  states(): string[] {
    return states
  },
  authURLs(): string[] {
    return authURLs
  },
  pathEvents() {
    return pathEvents
  },
  /** Resolves with the ms it took until the peer named `hostname` is on `path`. */
  waitForPath(hostname: string, path: 'direct' | 'relay', timeoutMs: number): Promise<number> {
    const started = performance.now()
    const n = current()
    const check = (): boolean => n.peers().some((p) => p.hostname === hostname && p.path === path)
    return new Promise((resolve, reject) => {
      if (check()) return resolve(0)
      const done = (): void => {
        clearTimeout(timer)
        n.removeEventListener('path', listener)
        n.removeEventListener('peers', listener)
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`peer ${hostname} not on the ${path} path after ${timeoutMs} ms: ${JSON.stringify(n.peers())}`))
      }, timeoutMs)
      const listener = (): void => {
        if (!check()) return
        done()
        resolve(performance.now() - started)
      }
      n.addEventListener('path', listener)
      n.addEventListener('peers', listener)
    })
  },
  /** ms from this node's `Burrow.start` call to the first `path` event making `hostname` direct, or null. */
  startToDirectMs(hostname: string): number | null {
    const event = pathEvents.find((e) => e.hostname === hostname && e.path === 'direct' && e.at >= startCalledAt)
    return event ? event.at - startCalledAt : null
  },
  direct() {
    return current()._debugDirect()
  },
  closeDirect(peer: string) {
    return current()._debugCloseDirect(peer)
  },
  peers(): BurrowPeer[] {
    return current().peers()
  },
  /** Resolves with the ms it took until a peer named `hostname` has `online`. */
  waitForPeer(hostname: string, online: boolean, timeoutMs: number): Promise<number> {
    const started = performance.now()
    const n = current()
    return new Promise((resolve, reject) => {
      const check = (): boolean => n.peers().some((p) => p.hostname === hostname && p.online === online)
      if (check()) return resolve(0)
      const timer = setTimeout(() => {
        n.removeEventListener('peers', listener)
        reject(new Error(`peer ${hostname} not ${online ? 'online' : 'offline'} after ${timeoutMs} ms: ${JSON.stringify(n.peers())}`))
      }, timeoutMs)
      const listener = (): void => {
        if (!check()) return
        clearTimeout(timer)
        n.removeEventListener('peers', listener)
        resolve(performance.now() - started)
      }
      n.addEventListener('peers', listener)
    })
  },
  status() {
    return current().status()
  },
  /** The node's home relay region and relay (`node.homeRelay`), null before it is known. */
  homeRelay() {
    return current().homeRelay
  },
  ping(target: string): Promise<number> {
    return current().ping(target, { timeout: 5000 })
  },
  /** Accepts one connection on `port`, reads it to the end, hashes it; progress under `id`. */
  async sink(port: number, id: number): Promise<void> {
    const server = current().listen(port)
    const { readable } = await server.opened
    const entry: Transfer = { received: 0 }
    transfers.set(id, entry)
    void (async () => {
      try {
        const { value: socket } = await readable.getReader().read()
        const { readable: data } = await socket!.opened
        const chunks: Uint8Array[] = []
        const reader = data.getReader()
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          entry.firstAt ??= epochNow()
          chunks.push(value)
          entry.received += value.length
        }
        entry.doneAt = epochNow()
        const all = new Uint8Array(entry.received)
        let offset = 0
        for (const chunk of chunks) {
          all.set(chunk, offset)
          offset += chunk.length
        }
        entry.done = { bytes: all.length, sha256: hex(await crypto.subtle.digest('SHA-256', all as Uint8Array<ArrayBuffer>)) }
        await socket!.close()
        await server.close()
      } catch (error) {
        entry.error = describeError(error).message
      }
    })()
  },
  progress(id: number) {
    return transfers.get(id) ?? null
  },
  /** Connects to `host:port` and sends `size` bytes made from `seed`; returns their SHA-256. */
  async send(host: string, port: number, size: number, seed: number) {
    const data = payload(size, seed)
    const sha256 = hex(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>))
    const started = performance.now()
    const startedAt = epochNow()
    const socket = current().connect(host, port)
    const { writable } = await socket.opened
    const writer = writable.getWriter()
    for (let offset = 0; offset < data.length; offset += 65536) {
      if (trace?.port === port) trace.writes.push([offset, epochNow()])
      await writer.write(data.slice(offset, offset + 65536))
    }
    await writer.close()
    return { sha256, ms: performance.now() - started, startedAt }
  },
  serve(port: number, greeting: string): void {
    current().serve(port, async (request) => {
      const url = new URL(request.url)
      if (url.pathname === '/stream') {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            for (let i = 0; i < 5; i++) controller.enqueue(new TextEncoder().encode(`chunk ${i}\n`))
            controller.close()
          },
        })
        return new Response(body, { headers: { 'content-type': 'text/plain' } })
      }
      const text = request.method === 'POST' ? await request.text() : ''
      return new Response(`${greeting} ${request.method} ${url.pathname} ${text}`, { headers: { 'content-type': 'text/plain', 'x-served-by': current().hostname } })
    })
  },
  /** GETs `url` over the overlay and reports its length and SHA-256, not the body (large downloads); `ms` is the download alone. */
  async fetchDigest(url: string) {
    const started = performance.now()
    const response = await current().fetch(url)
    const body = new Uint8Array(await response.arrayBuffer())
    const ms = performance.now() - started
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', body))
    return { status: response.status, bytes: body.length, sha256: [...digest].map((b) => b.toString(16).padStart(2, '0')).join(''), ms }
  },
  async fetch(url: string, init?: { method?: string; body?: string }) {
    const response = await current().fetch(url, init)
    return { status: response.status, text: await response.text(), servedBy: response.headers.get('x-served-by'), type: response.constructor.name }
  },
  /** Answers every connection on `port` with one byte, for start-to-first-byte measurements. */
  async greeter(port: number): Promise<void> {
    const { readable } = await current().listen(port).opened
    void (async () => {
      for (const reader = readable.getReader(); ;) {
        const { value: socket, done } = await reader.read()
        if (done) return
        void socket.opened.then(async ({ writable }) => {
          const writer = writable.getWriter()
          await writer.write(new Uint8Array([42]))
          await writer.close()
        })
      }
    })()
  },
  /**
   * ms from calling `Burrow.start` (fresh memory identity) to the first byte read from `address:port`,
   * and the phases on the way ([step, ms since the call]: the node's own, then connected and first byte).
   */
  async startToFirstByte(options: BurrowStartOptions, address: string, port: number): Promise<{ ms: number; phases: Array<[string, number]> }> {
    const started = performance.now()
    const fresh = await Burrow.start({ ...options, storage: 'memory', probeIntervalMs: 0 })
    try {
      const phases = fresh._debugStartPhases()
      phases.push(['Burrow.start resolved', performance.now() - started])
      const socket = fresh.connect(address, port)
      const { readable } = await socket.opened
      phases.push(['TCP connected (handshake, SYN, SYN-ACK)', performance.now() - started])
      const { value } = await readable.getReader().read()
      if (!value || value[0] !== 42) throw new Error('greeter sent no byte')
      const ms = performance.now() - started
      phases.push(['first byte', ms])
      return { ms, phases }
    } finally {
      await fresh.close()
    }
  },
  /** Starts recording the segments of the next connection to or from `port` (needs `start(…, true)`). */
  traceOn(port: number): void {
    trace = { port, data: [], acks: [], writes: [] }
  },
  /** What was recorded since `traceOn`, and stops recording. */
  traceOff(): SegmentTrace | undefined {
    const recorded = trace
    trace = undefined
    return recorded
  },
  /** Plaintext bytes per second @noble ChaCha20-Poly1305 seals in 1420-byte packets, in a worker. */
  sealBaseline(durationMs: number): Promise<number> {
    const worker = new Worker(new URL('./seal-worker.ts', import.meta.url), { type: 'module' })
    return new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<{ bytesPerSecond: number }>) => {
        worker.terminate()
        resolve(event.data.bytesPerSecond)
      }
      worker.onerror = (event) => reject(new Error(event.message))
      worker.postMessage({ durationMs })
    })
  },
  async close(): Promise<void> {
    await node?.close()
    node = undefined
  },
}

declare global {
  interface Window {
    burrowNodeE2E: typeof api
  }
}
window.burrowNodeE2E = api
document.title = 'ready'
