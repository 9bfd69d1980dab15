// Two in-page endpoints, each with its own dataplane worker; the workers are wired back to back
// over a MessageChannel (the underlay). Exposes functions the Playwright test calls.
import { formatKey, generateKeyPair } from '../../src/crypto/index.ts'
import { BurrowWorker, type OverlayPort } from '../../src/worker/client.ts'
import { createDataplaneWorker } from '../../src/worker/launch.ts'
import { WorkerOperationError, sharedNow } from '../../src/worker/protocol.ts'
import { PROTO_UDP, buildIp, parseAddress } from '../../src/wire/index.ts'

interface Side {
  worker: BurrowWorker
  overlay: OverlayPort
  address: Uint8Array
  publicKey: string
  underlay: number
  errors: string[]
}

const ADDRESS_A = '10.77.0.1'
const ADDRESS_B = '10.77.0.2'

async function setUp(): Promise<{ a: Side; b: Side }> {
  const keysA = generateKeyPair()
  const keysB = generateKeyPair()
  const workerA = new BurrowWorker(createDataplaneWorker())
  const workerB = new BurrowWorker(createDataplaneWorker())
  const errorsA: string[] = []
  const errorsB: string[] = []
  workerA.addEventListener('error', (event) => errorsA.push((event as ErrorEvent).message))
  workerB.addEventListener('error', (event) => errorsB.push((event as ErrorEvent).message))
  const { publicKey: publicA } = await workerA.start({
    privateKey: keysA.privateKey,
    peers: [{ publicKey: formatKey(keysB.publicKey), allowedIps: [`${ADDRESS_B}/32`] }],
  })
  const { publicKey: publicB } = await workerB.start({
    privateKey: keysB.privateKey,
    peers: [{ publicKey: formatKey(keysA.publicKey), allowedIps: [`${ADDRESS_A}/32`] }],
  })
  const link = new MessageChannel()
  const underlayA = await workerA.addPortUnderlay(link.port1)
  const underlayB = await workerB.addPortUnderlay(link.port2)
  await workerA.setPeerRoute(publicB, underlayA)
  await workerB.setPeerRoute(publicA, underlayB)
  const overlayA = await workerA.attachOverlay([`${ADDRESS_A}/32`])
  const overlayB = await workerB.attachOverlay([`${ADDRESS_B}/32`])
  return {
    a: { worker: workerA, overlay: overlayA, address: parseAddress(ADDRESS_A), publicKey: publicA, underlay: underlayA, errors: errorsA },
    b: { worker: workerB, overlay: overlayB, address: parseAddress(ADDRESS_B), publicKey: publicB, underlay: underlayB, errors: errorsB },
  }
}

/** Packet `seq` from `from` to `to`: deterministic, so the receiver can rebuild and compare it. */
function packet(seq: number, from: Uint8Array, to: Uint8Array): Uint8Array {
  const length = 8 + ((seq * 7919) % 1392)
  const payload = new Uint8Array(length)
  new DataView(payload.buffer).setUint32(0, seq)
  let x = (seq + 1) * 2654435761
  for (let i = 4; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    payload[i] = x >>> 24
  }
  // UDP header with checksum 0 is not needed for routing; a valid UDP datagram is, for realism.
  const udp = new Uint8Array(8 + length)
  const view = new DataView(udp.buffer)
  view.setUint16(0, 40000)
  view.setUint16(2, 40001)
  view.setUint16(4, 8 + length)
  udp.set(payload, 8)
  return buildIp({ src: from, dst: to, protocol: PROTO_UDP, payload: udp })
}

function seqOf(ipPacket: Uint8Array): number {
  return new DataView(ipPacket.buffer, ipPacket.byteOffset).getUint32(20 + 8)
}

function equal(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

/** Collects packets on `side` until `count` distinct ones arrived; checks each byte for byte. */
function receiver(side: Side, from: Side, count: number) {
  const seen = new Set<number>()
  let mismatches = 0
  let duplicates = 0
  let done!: () => void
  const finished = new Promise<void>((resolve) => (done = resolve))
  side.overlay.onpackets = (packets) => {
    for (const received of packets) {
      const seq = seqOf(received)
      if (seen.has(seq)) duplicates++
      else if (!equal(received, packet(seq, from.address, side.address))) mismatches++
      seen.add(seq)
    }
    if (seen.size >= count) done()
  }
  return { finished, result: () => ({ received: seen.size, mismatches, duplicates }) }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))])
}

async function send(side: Side, to: Side, from: number, count: number, batch: number): Promise<{ notDetached: number }> {
  let notDetached = 0
  for (let start = from; start < from + count; start += batch) {
    const packets: Uint8Array[] = []
    for (let seq = start; seq < Math.min(from + count, start + batch); seq++) packets.push(packet(seq, side.address, to.address))
    side.overlay.send(packets)
    for (const sent of packets) if (sent.buffer.byteLength !== 0 || sent.byteLength !== 0) notDetached++
    // Let the ports breathe now and then, as a real sender paced by TCP would.
    if ((start / batch) % 16 === 15) await new Promise((resolve) => setTimeout(resolve, 0))
  }
  return { notDetached }
}

async function exchange(count: number) {
  const { a, b } = await setUp()
  // The first packet waits for the handshake; send one and see it through before the flood.
  const warmB = receiver(b, a, 1)
  a.overlay.send([packet(0, a.address, b.address)])
  await withTimeout(warmB.finished, 10_000, 'handshake warm-up')
  const toB = receiver(b, a, count)
  const toA = receiver(a, b, count)
  const started = performance.now()
  const [sentA, sentB] = await Promise.all([send(a, b, 1, count, 64), send(b, a, 1, count, 64)])
  await withTimeout(Promise.all([toB.finished, toA.finished]), 60_000, 'exchange')
  const elapsedMs = performance.now() - started
  const [statusA, statusB] = await Promise.all([a.worker.status(), b.worker.status()])
  a.worker.terminate()
  b.worker.terminate()
  return {
    atB: toB.result(),
    atA: toA.result(),
    notDetached: sentA.notDetached + sentB.notDetached,
    elapsedMs,
    statusA,
    statusB,
    errors: [...a.errors, ...b.errors],
  }
}

async function rejections() {
  const { a, b } = await setUp()
  const outcomes: Array<{ name: string; code?: string | undefined; message: string }> = []
  const attempts: Array<() => Promise<unknown>> = [
    () => a.worker.setPeerRoute(formatKey(generateKeyPair().publicKey), a.underlay),
    () => a.worker.attachOverlay(['10.1.2.300/32']),
    () => a.worker.setPeerRoute(b.publicKey, 999),
    () => a.worker.start({ privateKey: generateKeyPair().privateKey }),
    () => a.worker.addUnderlay({ kind: 'carrier-pigeon' }),
  ]
  for (const attempt of attempts) {
    try {
      await attempt()
      outcomes.push({ name: 'resolved', message: 'no error' })
    } catch (error) {
      const e = error as WorkerOperationError
      outcomes.push({ name: e.name, code: e.code, message: e.message })
    }
  }
  // A malformed packet message on the overlay port reaches the page as an `error` event.
  const errorEvent = new Promise<string>((resolve) => a.worker.addEventListener('error', (event) => resolve((event as ErrorEvent).message), { once: true }))
  ;(a.overlay as unknown as { port: MessagePort }).port.postMessage({ type: 'packets', buffers: 'nope' })
  const asyncError = await withTimeout(errorEvent, 5000, 'error event')
  const status = await a.worker.status()
  a.worker.terminate()
  b.worker.terminate()
  return { outcomes, asyncError, stillServing: status.started }
}

async function wake(delayMs: number) {
  const { a, b } = await setUp()
  const at = sharedNow() + delayMs
  const woke = await withTimeout(
    new Promise<number>((resolve) => {
      a.overlay.onwake = resolve
      a.overlay.wakeAt(at)
    }),
    5000,
    'wake',
  )
  a.worker.terminate()
  b.worker.terminate()
  return { at, woke, observedAfter: sharedNow() }
}

/**
 * Page ⇄ worker throughput: batches of `batch` packets addressed to the overlay's own address,
 * so the worker's core loops them straight back. The same buffers travel back and forth
 * (transferred both ways), with at most `window` batches worth of packets in flight.
 */
async function transferBench(durationMs: number, batch = 64, window = 8, size = 1420) {
  const keys = generateKeyPair()
  const worker = new BurrowWorker(createDataplaneWorker())
  await worker.start({ privateKey: keys.privateKey })
  const overlay = await worker.attachOverlay([`${ADDRESS_A}/32`])
  const self = parseAddress(ADDRESS_A)
  const template = buildIp({ src: self, dst: self, protocol: PROTO_UDP, payload: new Uint8Array(size - 20) })
  let returned = 0
  let inFlight = 0
  let stopAt = Infinity
  let finish!: () => void
  const finished = new Promise<void>((resolve) => (finish = resolve))
  // Counted in packets, not batches: the worker may coalesce several returned batches into one message.
  const sendBatch = (packets: Uint8Array[]) => {
    inFlight += packets.length
    overlay.send(packets)
  }
  overlay.onpackets = (packets) => {
    inFlight -= packets.length
    returned += packets.length
    if (performance.now() < stopAt) sendBatch(packets)
    else if (inFlight === 0) finish()
  }
  // Warm up, then measure.
  const start = performance.now()
  stopAt = start + durationMs
  for (let i = 0; i < window; i++) sendBatch(Array.from({ length: batch }, () => template.slice()))
  await finished
  const elapsed = performance.now() - start
  worker.terminate()
  return { packets: returned, elapsedMs: elapsed, packetsPerSecond: (returned * 1000) / elapsed }
}

declare global {
  interface Window {
    burrowE2E: { exchange: typeof exchange; rejections: typeof rejections; wake: typeof wake; transferBench: typeof transferBench }
  }
}
window.burrowE2E = { exchange, rejections, wake, transferBench }
document.title = 'ready'
