// `npm run bench -- --only relay`: DERP forwarding through a real `burrow relay` process, against
// the same bytes echoed by a plain `ws` server process, plus how many clients one relay holds.
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { generateKeyPair } from '../src/crypto/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { removeRelayDataDirs, startRelayProcess, waitFor } from '../test/helpers/relay-process.ts'
import { launchChromium, startPageServer } from '../e2e/helpers/browser.ts'
import { formatNodeKey } from '../src/crypto/index.ts'
import type { Bench, BenchResult } from './types.ts'

declare global {
  interface Window {
    derpBench(options: { url: string; destination: string; messageBytes: number; durationMs: number }): Promise<{ sent: number }>
  }
}

const PACKET = 1420
const FRAME = 5 + 32 + PACKET
const WINDOW = 512
const DURATION_MS = 2000
const ROUNDS = 3
const CLIENTS = Number(process.env.BURROW_BENCH_CLIENTS ?? 1000)

async function relayForward(url: string): Promise<number> {
  const a = generateKeyPair()
  const b = generateKeyPair()
  const dial = nodeWebSocketDialer()
  const ca = new DerpConnection({ url, privateKey: a.privateKey, dial }).start()
  const cb = new DerpConnection({ url, privateKey: b.privateKey, dial }).start()
  try {
    await waitFor('bench clients', () => ca.isConnected && cb.isConnected)
    const payload = new Uint8Array(PACKET).fill(7)
    let sent = 0
    let received = 0
    let measuring = true
    const pump = () => {
      while (measuring && sent - received < WINDOW) {
        ca.send(b.publicKey, payload)
        sent++
      }
    }
    cb.on('packet', () => {
      received++
      if (received % 64 === 0) pump()
    })
    pump()
    await sleep(500) // warm-up
    const startCount = received
    const start = performance.now()
    await sleep(DURATION_MS)
    const count = received - startCount
    const elapsed = performance.now() - start
    measuring = false
    return (count * PACKET) / 1e6 / (elapsed / 1000)
  } finally {
    ca.close()
    cb.close()
  }
}

/** The same 1457-byte frames, coalesced the same way, echoed by a bare `ws` server in its own process. */
async function wsEchoBaseline(): Promise<number> {
  const server = spawn(
    process.execPath,
    ['-e', "const {WebSocketServer}=require('ws');const s=new WebSocketServer({host:'127.0.0.1',port:0,perMessageDeflate:false});s.on('listening',()=>console.log(s.address().port));s.on('connection',w=>w.on('message',(d)=>w.send(d)))"],
    { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] },
  )
  try {
    const port = await new Promise<number>((resolve) => createInterface({ input: server.stdout! }).once('line', (l) => resolve(Number(l))))
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false })
    await new Promise((resolve) => ws.once('open', resolve))
    const framesPerMessage = Math.floor((64 * 1024) / FRAME)
    const message = new Uint8Array(framesPerMessage * FRAME).fill(7)
    let sentFrames = 0
    let receivedBytes = 0
    let measuring = true
    const pump = () => {
      while (measuring && sentFrames - receivedBytes / FRAME < WINDOW) {
        ws.send(message)
        sentFrames += framesPerMessage
      }
    }
    ws.on('message', (data: Buffer) => {
      receivedBytes += data.length
      pump()
    })
    pump()
    await sleep(500)
    const startBytes = receivedBytes
    const start = performance.now()
    await sleep(DURATION_MS)
    const frames = (receivedBytes - startBytes) / FRAME
    const elapsed = performance.now() - start
    measuring = false
    ws.close()
    return (frames * PACKET) / 1e6 / (elapsed / 1000)
  } finally {
    stop(server)
  }
}

async function clientsHeld(url: string): Promise<number> {
  const dial = nodeWebSocketDialer()
  const clients = Array.from({ length: CLIENTS }, () => new DerpConnection({ url, privateKey: generateKeyPair().privateKey, dial }).start())
  try {
    await waitFor('clients to log in', () => clients.every((c) => c.isConnected), 120_000).catch(() => {})
    await sleep(1000)
    return clients.filter((c) => c.isConnected).length
  } finally {
    for (const c of clients) c.close()
  }
}

/** MB/s a DERP client in a Chromium worker pushes through the relay to a Node client. */
async function browserForward(url: string, messageBytes: number): Promise<number> {
  const receiverKeys = generateKeyPair()
  const receiver = new DerpConnection({ url, privateKey: receiverKeys.privateKey, dial: nodeWebSocketDialer() }).start()
  const pages = await startPageServer()
  const browser = await launchChromium()
  try {
    await waitFor('receiver', () => receiver.isConnected)
    let count = 0
    let first = 0
    let last = 0
    receiver.on('packet', () => {
      const now = performance.now()
      if (count === 0) first = now
      last = now
      count++
    })
    const page = await browser.newPage()
    await page.goto(`${pages.url}/e2e/pages/derp-bench.html`)
    await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
    await page.evaluate((options) => window.derpBench(options), { url, destination: formatNodeKey(receiverKeys.publicKey), messageBytes, durationMs: DURATION_MS })
    await sleep(300)
    return count > 1 ? ((count - 1) * PACKET) / 1e6 / ((last - first) / 1000) : 0
  } finally {
    receiver.close()
    await browser.close()
    await pages.close()
  }
}

const bench: Bench = async () => {
  const results: BenchResult[] = []
  const relay = await startRelayProcess(['--queue-packets', '1024'])
  try {
    // Interleaved rounds, best of each: the machine is shared, so a single pass is at the mercy of neighbours.
    let forward = 0
    let baseline = 0
    for (let round = 0; round < ROUNDS; round++) {
      forward = Math.max(forward, await relayForward(relay.url))
      baseline = Math.max(baseline, await wsEchoBaseline())
    }
    results.push({
      name: 'relay.forward_mb_per_s',
      value: forward,
      unit: 'MB/s',
      baseline,
      ratio: forward / baseline,
      note: `two clients, ${PACKET}-byte packets, A→B through burrow relay; baseline: the same frames echoed by a plain ws server process; best of ${ROUNDS} interleaved rounds`,
    })
  } finally {
    await relay.stop('SIGKILL')
  }
  const browserRelay = await startRelayProcess(['--queue-packets', '4096'])
  try {
    const coalesced = await browserForward(browserRelay.url, 64 * 1024)
    const single = await browserForward(browserRelay.url, 1)
    results.push({
      name: 'relay.browser_forward_mb_per_s',
      value: coalesced,
      unit: 'MB/s',
      baseline: single,
      ratio: coalesced / single,
      note: 'Chromium worker → burrow relay → Node, 1420-byte packets coalesced into 64 KiB messages; baseline: one packet per WebSocket message',
    })
  } finally {
    await browserRelay.stop('SIGKILL')
  }
  const loadRelay = await startRelayProcess()
  try {
    results.push({ name: 'relay.clients_held', value: await clientsHeld(loadRelay.url), unit: 'clients', note: `${CLIENTS} WebSocket clients opened at once` })
  } finally {
    await loadRelay.stop('SIGKILL')
    removeRelayDataDirs()
  }
  return results
}

export default bench

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function stop(child: ChildProcess): void {
  if (child.exitCode === null) child.kill('SIGKILL')
}
