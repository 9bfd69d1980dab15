// `npm run bench -- --only relay`: DERP forwarding through a real `burrow relay` process, against
// the same client work through a plain `ws` server process that forwards between two sockets, plus
// how many clients one relay holds. BURROW_BENCH_RELAY_FORWARD_ONLY=1 stops after the first figure.
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { generateKeyPair } from '../src/crypto/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { FrameReader } from '../src/underlay/derp/frame-reader.ts'
import { FRAME_HEADER_LENGTH, FrameType, KEY_LENGTH, decodeFrame, writeHeader } from '../src/underlay/derp/frames.ts'
import { OutputBuffer } from '../src/underlay/derp/output-buffer.ts'
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
const RAMP_MS = 100
const SLICE_MS = 300
const SLICES = Number(process.env.BURROW_BENCH_RELAY_SLICES ?? 21)
/** USER_HZ: Linux reports process times in 1/100 s on every architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100
const CLIENTS = Number(process.env.BURROW_BENCH_CLIENTS ?? 1000)

/** One A→B flow kept at most WINDOW packets in flight while `pumping`; counts packets B received. */
interface Flow {
  pumping: boolean
  sent: number
  received: number
  pump(): void
  close(): void
  /** The server process the flow goes through, and its CPU time and packets over measured windows. */
  serverPid: number
  serverCpuMs: number
  measuredPackets: number
}

function windowedFlow(serverPid: number, send: () => void, close: () => void): Flow {
  const flow: Flow = {
    serverPid,
    serverCpuMs: 0,
    measuredPackets: 0,
    pumping: false,
    sent: 0,
    received: 0,
    pump() {
      while (flow.pumping && flow.sent - flow.received < WINDOW) {
        send()
        flow.sent++
      }
    },
    close,
  }
  return flow
}

/** Two DerpConnections through the relay under test. */
async function relayFlow(url: string, pid: number): Promise<Flow> {
  const a = generateKeyPair()
  const b = generateKeyPair()
  const dial = nodeWebSocketDialer()
  const ca = new DerpConnection({ url, privateKey: a.privateKey, dial }).start()
  const cb = new DerpConnection({ url, privateKey: b.privateKey, dial }).start()
  await waitFor('bench clients', () => ca.isConnected && cb.isConnected)
  const payload = new Uint8Array(PACKET).fill(7)
  const flow = windowedFlow(
    pid,
    () => ca.send(b.publicKey, payload),
    () => (ca.close(), cb.close()),
  )
  cb.on('packet', () => {
    flow.received++
    if (flow.received % 64 === 0) flow.pump()
  })
  return flow
}

/**
 * The same client work against a forwarding `ws` server process: the same dialer and `ws` client,
 * SendPacket frames coalesced by the same OutputBuffer on a microtask, the receiver parsing every
 * frame with the same FrameReader and decodeFrame.
 */
async function forwarderFlow(port: number, pid: number): Promise<Flow> {
  const dial = nodeWebSocketDialer()
  const pair = Math.random().toString(36).slice(2)
  const opened = { a: false, b: false }
  const reader = new FrameReader()
  const receiver = dial(`ws://127.0.0.1:${port}/?pair=${pair}`, {
    onOpen: () => (opened.b = true),
    onData: (bytes) => {
      reader.push(bytes)
      for (let raw = reader.next(); raw; raw = reader.next()) {
        if (decodeFrame(raw.type, raw.payload).type !== 'send-packet') continue
        // Frames only arrive once the sender below exists, after `flow` is made.
        flow.received++
        if (flow.received % 64 === 0) flow.pump()
      }
    },
    onClose: () => {},
  })
  await waitFor('baseline receiver', () => opened.b)
  const sender = dial(`ws://127.0.0.1:${port}/?pair=${pair}`, { onOpen: () => (opened.a = true), onData: () => {}, onClose: () => {} })
  await waitFor('baseline sender', () => opened.a)
  const destination = generateKeyPair().publicKey
  const payload = new Uint8Array(PACKET).fill(7)
  const output = new OutputBuffer()
  let flushQueued = false
  const flow: Flow = windowedFlow(
    pid,
    () => {
      const out = output.reserve(FRAME)
      writeHeader(out, 0, FrameType.SendPacket, KEY_LENGTH + PACKET)
      out.set(destination, FRAME_HEADER_LENGTH)
      out.set(payload, FRAME_HEADER_LENGTH + KEY_LENGTH)
      if (flushQueued) return
      flushQueued = true
      queueMicrotask(() => {
        flushQueued = false
        for (let message = output.take(); message; message = output.take()) sender.send(message)
      })
    },
    () => (sender.close(), receiver.close()),
  )
  return flow
}

/** MB/s of one slice: ramp up, count packets delivered over SLICE_MS, then let the window drain. */
async function slice(flow: Flow): Promise<number> {
  flow.pumping = true
  flow.pump()
  await sleep(RAMP_MS)
  const startCount = flow.received
  const startCpu = cpuMs(flow.serverPid)
  const start = performance.now()
  await sleep(SLICE_MS)
  const count = flow.received - startCount
  const elapsed = performance.now() - start
  flow.serverCpuMs += cpuMs(flow.serverPid) - startCpu
  flow.measuredPackets += count
  flow.pumping = false
  const drainBy = performance.now() + 2000
  while (flow.received < flow.sent && performance.now() < drainBy) await sleep(5)
  // Whatever was lost (a relay may drop under load) no longer counts against the window.
  flow.received = flow.sent
  return (count * PACKET) / 1e6 / (elapsed / 1000)
}

/**
 * Relay and baseline measured in alternating slices; each figure is its median slice, and the
 * ratio is the median of the ratios of adjacent slices, which a neighbour's load spike (it hits
 * both of a pair alike) disturbs least.
 */
async function forwardVsBaseline(
  relayServer: { url: string; pid: number },
  forwarderServer: { port: number; pid: number },
): Promise<{ forward: number; baseline: number; ratio: number; slices: number; relayCpuPerGb: number; forwarderCpuPerGb: number }> {
  const relay = await relayFlow(relayServer.url, relayServer.pid)
  const forwarder = await forwarderFlow(forwarderServer.port, forwarderServer.pid)
  try {
    await slice(relay)
    await slice(forwarder)
    for (const flow of [relay, forwarder]) {
      flow.serverCpuMs = 0
      flow.measuredPackets = 0
    }
    const rates: [number[], number[]] = [[], []]
    for (let i = 0; i < SLICES; i++) {
      // Alternate which goes first so neither always follows the other's drain.
      if (i % 2 === 0) {
        rates[0].push(await slice(relay))
        rates[1].push(await slice(forwarder))
      } else {
        rates[1].push(await slice(forwarder))
        rates[0].push(await slice(relay))
      }
    }
    if (process.env.BURROW_BENCH_VERBOSE) process.stderr.write(`  slices relay ${rates[0].map((r) => r.toFixed(0))} baseline ${rates[1].map((r) => r.toFixed(0))}\n`)
    const cpuPerGb = (flow: Flow) => flow.serverCpuMs / ((flow.measuredPackets * PACKET) / 1e9)
    return {
      forward: median(rates[0]),
      baseline: median(rates[1]),
      ratio: median(rates[0].map((r, i) => r / rates[1][i]!)),
      slices: SLICES,
      relayCpuPerGb: cpuPerGb(relay),
      forwarderCpuPerGb: cpuPerGb(forwarder),
    }
  } finally {
    relay.close()
    forwarder.close()
  }
}

async function startForwarder(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'ws-forward-server.mjs')], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve) => createInterface({ input: child.stdout! }).once('line', (l) => resolve(Number(l))))
  return { port, child }
}

/** CPU time (user + system) a process has used, from /proc (10 ms ticks; summed over many slices). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 and 15 of stat(5), counted after the command name: utime and stime in clock ticks.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[sorted.length >> 1]!
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
  const forwarder = await startForwarder()
  try {
    const cpu = await forwardVsBaseline({ url: relay.url, pid: relay.proc.pid! }, { port: forwarder.port, pid: forwarder.child.pid! })
    const { forward, baseline, ratio, slices } = cpu
    results.push({
      name: 'relay.forward_mb_per_s',
      value: forward,
      unit: 'MB/s',
      baseline,
      ratio,
      note: `two clients, ${PACKET}-byte packets, A→B through burrow relay; baseline: the same client work through a ws server process forwarding messages between two sockets; medians of ${slices} alternating ${SLICE_MS} ms slices each; ratio: median of the ${slices} adjacent-slice ratios`,
    })
    results.push({
      name: 'relay.forward_cpu_ms_per_gb',
      value: cpu.relayCpuPerGb,
      unit: 'CPU ms/GB',
      baseline: cpu.forwarderCpuPerGb,
      ratio: cpu.relayCpuPerGb / cpu.forwarderCpuPerGb,
      note: 'CPU time of the server process per GB of packets delivered during the measured slices (from /proc/<pid>/stat); neighbours slow a process down but do not add to its CPU time, so this is the steadier comparison',
    })
  } finally {
    stop(forwarder.child)
    await relay.stop('SIGKILL')
  }
  if (process.env.BURROW_BENCH_RELAY_FORWARD_ONLY) return results
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
      note: "Chromium worker → burrow relay → Node, 1420-byte packets coalesced into 64 KiB writes, which the WebSocket dialer sends as messages of at most 32 KiB (what Tailscale's derper reads); baseline: one packet per WebSocket message",
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
