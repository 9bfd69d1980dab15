// End-to-end figures of the public API in real Chromium through a real `burrow relay` process:
//   e2e.relay_tcp_mb_per_s        browser → relay → browser TCP (20 MiB, direct paths off so the relay carries it), baseline: the same browser's
//                                 worker sealing 1420-byte packets with @noble ChaCha20-Poly1305; also its ratio to the plumbing ceiling below
//   e2e.relay_plumbing_mb_per_s   the relay path's hops without WireGuard or TCP (e2e/pages/plumbing-*.ts): page → worker (postMessage,
//                                 transferred) → WebSocket → burrow relay → WebSocket → worker → page, raw bytes in packets of the relay
//                                 path's size, a credit window of TCP's size; the ceiling the TCP figure is held against
//   e2e.*_cpu_ms_per_mb           CPU time of every Chromium process of both browsers and of the relay during a transfer (/proc/<pid>/stat),
//                                 per MB moved, for Burrow and for the plumbing
//   e2e.relay_trace               (printed table) where a segment waits between the app's write and its ACK, from packet taps on both pages,
//                                 and the plumbing's per-hop latencies
//   e2e.start_to_first_byte_ms    Burrow.start (fresh key, registration) until the first TCP byte from a peer, page from Vite's dev server;
//                                 baseline: a fresh WebSocket from the same page to the relay until its first frame
//   e2e.start_to_first_byte_built_ms  the same from a production build, with its phases (e2e.start_phase.*)
//   bundle.gzip_kb                production build of the library entry (page + worker), gzipped, lazy chunks apart
//   bundle.*_chunk_gzip_kb        the lazy chunks: simple-peer (webrtc), the tailnet client (tailnet), fzstd (zstd)
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'vite'
import { launchChromium, REPO_ROOT, startBuiltPageServer, startPageServer } from '../e2e/helpers/browser.ts'
import { DEFAULT_OVERLAY_MTU } from '../src/burrow.ts'
import { startRelayProcess } from '../test/helpers/relay-process.ts'
import { chainCpu } from './proc-cpu.ts'
import type { Bench, BenchResult } from './types.ts'

const TRANSFER_BYTES = 20 * 1024 * 1024
const ROUNDS = 3
/** A WireGuard data message around an IP packet: type/reserved/receiver/counter (16) + Poly1305 tag (16), WireGuard whitepaper 5.4.6. */
const WIREGUARD_OVERHEAD = 32
/** IPv4 (20) + TCP (20) headers: the app bytes of a full-size relay-path segment are the MTU minus these. */
const TCP_IP_HEADERS = 40
/** The overlay TCP's receive buffer (src/overlay/tcp/config.ts receiveBufferSize): the window the plumbing's credits mimic. */
const TCP_WINDOW_BYTES = 1 << 20

interface HopSummary {
  n: number
  mean: number
  p50: number
  p90: number
  max: number
}

function summarize(values: number[]): HopSummary {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  return { n: sorted.length, mean: sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1), p50: at(0.5), p90: at(0.9), max: sorted.at(-1) ?? 0 }
}

function describe(s: HopSummary): string {
  return `n ${s.n}, mean ${s.mean.toFixed(2)}, p50 ${s.p50.toFixed(2)}, p90 ${s.p90.toFixed(2)}, max ${s.max.toFixed(2)}`
}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/\([^)]*\)/g, '')
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_|_$/g, '')
}

function formatTable(table: Record<string, HopSummary>): string {
  const rows = [
    ['hop', 'n', 'mean', 'p50', 'p90', 'max'],
    ...Object.entries(table).map(([hop, s]) => [hop, String(s.n), ...[s.mean, s.p50, s.p90, s.max].map((v) => v.toFixed(2))]),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  return rows.map((row) => `  | ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`).join('\n')
}

interface SegmentTrace {
  isn?: number
  data: Array<[number, number, number]>
  acks: Array<[number, number]>
  writes: Array<[number, number]>
}

/** First index in `acks` (sorted by time, offsets non-decreasing) whose offset reaches `end`, from `from`. */
function firstAck(acks: Array<[number, number]>, end: number, from: number): number {
  let i = from
  while (i < acks.length && acks[i]![0] < end) i++
  return i
}

/**
 * Where each data segment of a traced transfer waited, from the sender's and the receiver's packet
 * taps (offsets relative to the ISN on both): the app's write → segment leaves the sender's stack →
 * reaches the receiver's stack → the ACK covering it leaves the receiver → reaches the sender.
 */
function segmentTable(sender: SegmentTrace, receiver: SegmentTrace): Record<string, HopSummary> {
  const hops: Record<string, number[]> = {
    'app write → segment leaves the sending stack (send buffer, window)': [],
    'sending page → receiving page (postMessage, worker, WebSocket, relay, worker, postMessage)': [],
    'receiving stack holds the ACK (delayed ACK)': [],
    'ACK: receiving page → sending page': [],
    'segment out → its ACK in (RTT at the sender)': [],
    'bytes in flight at the sender when a segment leaves (KiB)': [],
  }
  const received = new Map<number, number>()
  for (const [offset, , at] of receiver.data) if (!received.has(offset)) received.set(offset, at)
  const ackIn = new Map<number, number>()
  for (const [offset, at] of sender.acks) if (!ackIn.has(offset)) ackIn.set(offset, at)
  const sent = new Set<number>()
  let write = 0
  let receiverAck = 0
  let senderAck = 0
  for (const [offset, length, at] of sender.data) {
    if (sent.has(offset)) continue // a retransmission: the first copy is the one traced
    sent.add(offset)
    while (write + 1 < sender.writes.length && sender.writes[write + 1]![0] <= offset) write++
    const writtenAt = sender.writes[write]?.[1]
    if (writtenAt !== undefined) hops['app write → segment leaves the sending stack (send buffer, window)']!.push(at - writtenAt)
    const end = offset + length
    // The highest ACK the sender had seen when this segment left.
    while (senderAck < sender.acks.length && sender.acks[senderAck]![1] <= at) senderAck++
    const acked = sender.acks[senderAck - 1]?.[0] ?? 0
    hops['bytes in flight at the sender when a segment leaves (KiB)']!.push((offset - Math.min(offset, acked)) / 1024)
    const arrived = received.get(offset)
    if (arrived === undefined) continue
    hops['sending page → receiving page (postMessage, worker, WebSocket, relay, worker, postMessage)']!.push(arrived - at)
    receiverAck = firstAck(receiver.acks, end, receiverAck)
    const ack = receiver.acks[receiverAck]
    if (!ack) continue
    hops['receiving stack holds the ACK (delayed ACK)']!.push(ack[1] - arrived)
    const back = ackIn.get(ack[0])
    if (back === undefined) continue
    hops['ACK: receiving page → sending page']!.push(back - ack[1])
    hops['segment out → its ACK in (RTT at the sender)']!.push(back - at)
  }
  return Object.fromEntries(Object.entries(hops).map(([hop, values]) => [hop, summarize(values)]))
}

/** `promise`, or an error naming `what` after `ms` (page.evaluate itself never gives up). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms)))
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** CPU ms per MB moved between two chainCpu snapshots. */
function cpuPerMb(before: ReturnType<typeof chainCpu>, after: ReturnType<typeof chainCpu>): { totalMsPerMb: number; browserMsPerMb: number; relayMsPerMb: number } {
  const mb = TRANSFER_BYTES / 1e6
  const browserMs = after.browserMs - before.browserMs
  const relayMs = after.relayMs - before.relayMs
  return { totalMsPerMb: (browserMs + relayMs) / mb, browserMsPerMb: browserMs / mb, relayMsPerMb: relayMs / mb }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

interface ChunkSize {
  kb: number
  rawKb: number
  files: string[]
}

/** The chunks a page fetches only on demand, each left out of `bundle.gzip_kb` and reported on its own. */
const LAZY_CHUNKS: Array<{ name: 'webrtc' | 'tailnet' | 'zstd'; matches: (file: string, bytes: Buffer) => boolean }> = [
  // simple-peer, imported on the first direct-path attempt.
  { name: 'webrtc', matches: (file) => /simplepeer/i.test(file) },
  // The tailnet client (src/control/tailnet/tailnet-web.ts), imported by the worker on a tailnet join.
  { name: 'tailnet', matches: (file) => /tailnet-web/.test(file) },
  // fzstd, imported by the tailnet client when a map message is a zstd frame (its chunk is named after fzstd's esm/ folder).
  { name: 'zstd', matches: (_file, bytes) => bytes.includes('invalid zstd data') },
]

/** Gzipped size of everything a production build of `src/index.ts` emits (the entry, its chunks, the worker), lazy chunks apart. */
async function bundleGzipKb(): Promise<{ kb: number; files: number; rawKb: number; lazy: Record<(typeof LAZY_CHUNKS)[number]['name'], ChunkSize> }> {
  const outDir = mkdtempSync(join(tmpdir(), 'burrow-bundle-'))
  try {
    await build({
      configFile: false,
      root: REPO_ROOT,
      logLevel: 'error',
      build: {
        outDir,
        emptyOutDir: true,
        target: 'es2022',
        minify: true,
        rollupOptions: { input: { burrow: join(REPO_ROOT, 'src/index.ts') }, preserveEntrySignatures: 'strict' },
      },
      worker: { format: 'es' },
    })
    const files = filesUnder(outDir).filter((f) => f.endsWith('.js'))
    let gz = 0
    let raw = 0
    let mainFiles = 0
    const lazy = Object.fromEntries(LAZY_CHUNKS.map((chunk) => [chunk.name, { kb: 0, rawKb: 0, files: [] as string[] }])) as Record<(typeof LAZY_CHUNKS)[number]['name'], ChunkSize>
    for (const file of files) {
      const bytes = readFileSync(file)
      const size = gzipSync(bytes, { level: 9 }).length
      const chunk = LAZY_CHUNKS.find((c) => c.matches(file, bytes))
      if (chunk) {
        const entry = lazy[chunk.name]
        entry.files.push(file.slice(outDir.length + 1))
        entry.kb += size / 1024
        entry.rawKb += bytes.length / 1024
        continue
      }
      mainFiles++
      raw += bytes.length
      gz += size
    }
    return { kb: gz / 1024, files: mainFiles, rawKb: raw / 1024, lazy }
  } finally {
    rmSync(outDir, { recursive: true, force: true })
  }
}

const bench: Bench = async () => {
  const results: BenchResult[] = []
  const relay = await startRelayProcess()
  const pages = await startPageServer()
  const browserA = await launchChromium()
  const browserB = await launchChromium()
  try {
    const controlURL = new URL(relay.url).origin
    const authKey = execFileSync(process.execPath, ['bin/burrow.mjs', 'relay', 'authkey', 'create', '--reusable', '--data-dir', relay.dataDir], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim()
    const open = async (browser: typeof browserA, path = 'burrow.html') => {
      const page = await browser.newPage()
      await page.goto(`${pages.url}/e2e/pages/${path}`)
      // Vite transforms the page on first load; on a busy machine that alone can take a minute.
      await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 180_000 })
      return page
    }
    const pageA = await open(browserA)
    const pageB = await open(browserB)
    // The packet tap the latency trace reads is installed on both (it returns at once until `traceOn`).
    const start = (page: typeof pageA, hostname: string) =>
      page.evaluate(
        ([url, key, name]) => window.burrowNodeE2E.start({ controlURL: url!, authKey: key!, hostname: name!, storage: 'memory', probeIntervalMs: 0, direct: false }, true),
        [controlURL, authKey, hostname] as const,
      )
    const a = await start(pageA, 'bench-a')
    const b = await start(pageB, 'bench-b')
    if (!a.ok || !b.ok) throw new Error(`Burrow.start failed: ${JSON.stringify(a.ok ? b : a)}`)
    const addressB = b.addresses[0]!
    await pageA.evaluate(() => window.burrowNodeE2E.waitForPeer('bench-b', true, 10_000))
    await pageA.evaluate((address) => window.burrowNodeE2E.ping(address), addressB)

    // The plumbing: the same two browsers, a page each, DERP keys of their own on the same relay.
    const plumbA = await open(browserA, 'plumbing.html')
    const plumbB = await open(browserB, 'plumbing.html')
    const wirePacket = DEFAULT_OVERLAY_MTU + WIREGUARD_OVERHEAD
    const payload = DEFAULT_OVERLAY_MTU - TCP_IP_HEADERS
    const keyA = await plumbA.evaluate(([url, p, l]) => window.burrowPlumbing.start(url!, p!, l!), [relay.url, wirePacket, payload] as const)
    const keyB = await plumbB.evaluate(([url, p, l]) => window.burrowPlumbing.start(url!, p!, l!), [relay.url, wirePacket, payload] as const)
    await plumbA.evaluate((key) => window.burrowPlumbing.peer(key), keyB)
    await plumbB.evaluate((key) => window.burrowPlumbing.peer(key), keyA)

    const tcpTransfer = async (round: number, traced = false) => {
      const id = 1000 + round
      const port = 9100 + round
      if (traced) for (const page of [pageA, pageB]) await page.evaluate((p) => window.burrowNodeE2E.traceOn(p), port)
      await pageB.evaluate(([p, i]) => window.burrowNodeE2E.sink(p!, i!), [port, id] as const)
      const cpuBefore = chainCpu(relay.proc.pid!)
      const sent = await pageA.evaluate(([host, p, size, seed]) => window.burrowNodeE2E.send(host as string, p as number, size as number, seed as number), [
        addressB,
        port,
        TRANSFER_BYTES,
        round + 1,
      ] as const)
      await pageB.waitForFunction((i) => window.burrowNodeE2E.progress(i)?.done !== undefined || window.burrowNodeE2E.progress(i)?.error !== undefined, id, {
        timeout: 120_000,
        polling: 50,
      })
      const cpuAfter = chainCpu(relay.proc.pid!)
      const got = (await pageB.evaluate((i) => window.burrowNodeE2E.progress(i), id))!
      if (got.done?.sha256 !== sent.sha256) throw new Error(`transfer ${round} corrupted: ${JSON.stringify(got)}`)
      const traces = traced ? await Promise.all([pageA, pageB].map((page) => page.evaluate(() => window.burrowNodeE2E.traceOff()))) : undefined
      return {
        rate: TRANSFER_BYTES / 1e6 / ((got.doneAt! - sent.startedAt) / 1000),
        cpu: cpuPerMb(cpuBefore, cpuAfter),
        traces,
      }
    }
    const plumbingTransfer = async () => {
      await plumbB.evaluate((total) => window.burrowPlumbing.receive(total), TRANSFER_BYTES)
      const cpuBefore = chainCpu(relay.proc.pid!)
      const sent = await plumbA.evaluate(([total, windowBytes, chunk]) => window.burrowPlumbing.send(total!, windowBytes!, chunk!), [
        TRANSFER_BYTES,
        TCP_WINDOW_BYTES,
        65536,
      ] as const)
      const doneAt = await plumbB.evaluate(() => window.burrowPlumbing.done())
      const cpuAfter = chainCpu(relay.proc.pid!)
      const trace = { ...(await plumbB.evaluate(() => window.burrowPlumbing.trace())), ...(await plumbA.evaluate(() => window.burrowPlumbing.trace())) }
      return { rate: TRANSFER_BYTES / 1e6 / ((doneAt - sent.startedAt) / 1000), cpu: cpuPerMb(cpuBefore, cpuAfter), windowFullShare: sent.windowFullShare, trace }
    }

    // Throughput, interleaved with the ceiling and the baseline so all three see the same machine load.
    const rates: number[] = []
    const tcpCpu: number[] = []
    const cpuSplit: string[] = []
    const plumbingRates: number[] = []
    const plumbingCpu: number[] = []
    const windowFull: number[] = []
    const baselines: number[] = []
    let plumbingTrace: Record<string, HopSummary> = {}
    for (let round = 0; round < ROUNDS; round++) {
      const tcp = await tcpTransfer(round)
      rates.push(tcp.rate)
      tcpCpu.push(tcp.cpu.totalMsPerMb)
      cpuSplit.push(`TCP browsers ${tcp.cpu.browserMsPerMb.toFixed(1)} + relay ${tcp.cpu.relayMsPerMb.toFixed(1)}`)
      const plumbing = await plumbingTransfer()
      plumbingRates.push(plumbing.rate)
      plumbingCpu.push(plumbing.cpu.totalMsPerMb)
      cpuSplit.push(`plumbing browsers ${plumbing.cpu.browserMsPerMb.toFixed(1)} + relay ${plumbing.cpu.relayMsPerMb.toFixed(1)}`)
      windowFull.push(plumbing.windowFullShare)
      plumbingTrace = plumbing.trace
      baselines.push((await pageA.evaluate(() => window.burrowNodeE2E.sealBaseline(1000))) / 1e6)
    }
    const rate = median(rates)
    const baseline = median(baselines)
    const plumbingRate = median(plumbingRates)
    results.push({
      name: 'e2e.relay_tcp_mb_per_s',
      value: rate,
      unit: 'MB/s',
      baseline,
      ratio: rate / baseline,
      note: `20 MiB browser → burrow relay → browser over TCP (overlay MTU ${DEFAULT_OVERLAY_MTU}), median of ${ROUNDS} (${rates.map((r) => r.toFixed(1)).join(', ')}); baseline: @noble ChaCha20-Poly1305 seal of 1420-byte packets in a worker of the same browser (${baselines.map((r) => r.toFixed(1)).join(', ')}); goal ratio ≥ 0.6; against the plumbing ceiling: ${(rate / plumbingRate).toFixed(2)} (goal ≥ 0.75)`,
    })
    results.push({
      name: 'e2e.relay_tcp_vs_plumbing',
      value: rate / plumbingRate,
      unit: 'ratio',
      baseline: plumbingRate,
      ratio: rate / plumbingRate,
      note: `e2e.relay_tcp_mb_per_s / e2e.relay_plumbing_mb_per_s, same run; goal ≥ 0.75`,
    })
    results.push({
      name: 'e2e.relay_plumbing_mb_per_s',
      value: plumbingRate,
      unit: 'MB/s',
      baseline,
      ratio: plumbingRate / baseline,
      note: `20 MiB page → worker → WebSocket → burrow relay → WebSocket → worker → page, ${wirePacket}-byte packets carrying ${payload} bytes each, credit window ${TCP_WINDOW_BYTES / 1024} KiB (TCP's receive buffer), no WireGuard, no TCP; median of ${ROUNDS} (${plumbingRates.map((r) => r.toFixed(1)).join(', ')}); window full ${windowFull.map((w) => (w * 100).toFixed(0) + ' %').join(', ')} of the time; baseline: noble seal as above`,
    })
    const tcpCpuMedian = median(tcpCpu)
    const plumbingCpuMedian = median(plumbingCpu)
    results.push({
      name: 'e2e.relay_tcp_cpu_ms_per_mb',
      value: tcpCpuMedian,
      unit: 'ms/MB',
      baseline: plumbingCpuMedian,
      ratio: tcpCpuMedian / plumbingCpuMedian,
      note: `CPU (user + system) of every Chromium process of both browsers and of the relay during each TCP transfer, per MB; median of ${ROUNDS} (${tcpCpu.map((c) => c.toFixed(1)).join(', ')}); baseline: the same for the plumbing (${plumbingCpu.map((c) => c.toFixed(1)).join(', ')}); by round: ${cpuSplit.join('; ')}`,
    })
    results.push({
      name: 'e2e.relay_plumbing_cpu_ms_per_mb',
      value: plumbingCpuMedian,
      unit: 'ms/MB',
      note: `as e2e.relay_tcp_cpu_ms_per_mb, for the plumbing transfers`,
    })

    // One traced TCP transfer: where each segment waited.
    const traced = await tcpTransfer(ROUNDS, true)
    const [senderTrace, receiverTrace] = traced.traces!
    const table = segmentTable(senderTrace!, receiverTrace!)
    process.stderr.write(
      `\n  latency trace of one relay-path TCP transfer (${traced.rate.toFixed(1)} MB/s, packet taps on both pages; ms unless stated):\n${formatTable(table)}\n` +
        `  the plumbing's hops (last plumbing transfer, packet timestamps):\n${formatTable(plumbingTrace)}\n\n`,
    )
    for (const [hop, summary] of Object.entries(table))
      results.push({ name: `e2e.relay_trace.${slug(hop)}_p50_ms`, value: summary.p50, unit: 'ms', note: `${hop}: ${describe(summary)}` })
    for (const [hop, summary] of Object.entries(plumbingTrace))
      results.push({ name: `e2e.plumbing_trace.${slug(hop)}_p50_ms`, value: summary.p50, unit: hop.includes('KiB') ? 'KiB' : 'ms', note: `${hop}: ${describe(summary)}` })

    // Start-up twice: the page as Vite's dev server serves it (every module its own request, as
    // before), and as a production build serves it (one worker bundle: what a user's tab loads).
    const startUp = async (page: typeof pageA, label: string) => {
      const firstByte: number[] = []
      const phaseRuns: Array<Array<[string, number]>> = []
      const floors: number[] = []
      for (let round = 0; round < ROUNDS; round++) {
        // The baseline, in the same page just before: a fresh WebSocket to the relay until its first
        // frame (DERP's ServerKey), the least network round trip any start needs.
        floors.push(
          await withTimeout(
            page.evaluate(async (url) => {
              const started = performance.now()
              const ws = new WebSocket(url, 'derp')
              ws.binaryType = 'arraybuffer'
              await new Promise((resolve, reject) => {
                ws.onmessage = resolve
                ws.onerror = () => reject(new Error(`WebSocket to ${url} failed`))
              })
              const ms = performance.now() - started
              ws.close()
              return ms
            }, relay.url),
            60_000,
            `relay WebSocket baseline ${round} (${label})`,
          ),
        )
        const run = await withTimeout(
          page.evaluate(([url, key, address]) => window.burrowNodeE2E.startToFirstByte({ controlURL: url!, authKey: key!, hostname: 'bench-c' }, address!, 7), [
            controlURL,
            authKey,
            addressB,
          ] as const),
          60_000,
          `start-up round ${round} (${label})`,
        )
        firstByte.push(run.ms)
        phaseRuns.push(run.phases)
      }
      const value = median(firstByte)
      const phases = phaseRuns[firstByte.indexOf(value)]!
      const phaseText = phases.map(([step, at], i) => `${step} +${(at - (phases[i - 1]?.[1] ?? 0)).toFixed(1)}`).join(', ')
      process.stderr.write(`\n  start-up phases, ${label}, median run (ms after the previous step): ${phaseText}\n`)
      return { value, firstByte, phases, phaseText, floor: median(floors), floors }
    }
    for (const r of results) process.stderr.write(`  ${r.name}: ${r.value.toFixed(3)} ${r.unit}${r.note ? ` — ${r.note}` : ''}\n`)
    await pageB.evaluate(() => window.burrowNodeE2E.greeter(7))
    const dev = await startUp(await open(browserA), 'dev server')
    results.push({
      name: 'e2e.start_to_first_byte_ms',
      value: dev.value,
      unit: 'ms',
      baseline: dev.floor,
      ratio: dev.value / dev.floor,
      note: `Burrow.start with a fresh key (registration, DERP login, handshake) until the first TCP byte from a peer, page from Vite's dev server, median of ${ROUNDS} (${dev.firstByte.map((t) => t.toFixed(0)).join(', ')}); phases of the median run: ${dev.phaseText}; baseline: a fresh WebSocket from the same page to the relay until its first frame, median of ${ROUNDS} (${dev.floors.map((t) => t.toFixed(1)).join(', ')})`,
    })
    const built = await startBuiltPageServer(['e2e/pages/burrow.html'])
    try {
      const page = await browserA.newPage()
      await page.goto(`${built.url}/e2e/pages/burrow.html`)
      await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 180_000 })
      const prod = await startUp(page, 'production build')
      results.push({
        name: 'e2e.start_to_first_byte_built_ms',
        value: prod.value,
        unit: 'ms',
        baseline: prod.floor,
        ratio: prod.value / prod.floor,
        note: `as e2e.start_to_first_byte_ms, the page and worker from a production build (vite build, served by vite preview), median of ${ROUNDS} (${prod.firstByte.map((t) => t.toFixed(0)).join(', ')}); goal ≤ 100; phases: ${prod.phaseText}; baseline: a fresh relay WebSocket until its first frame, as above (${prod.floors.map((t) => t.toFixed(1)).join(', ')})`,
      })
      for (const [i, [step, at]] of prod.phases.entries())
        results.push({
          name: `e2e.start_phase.${slug(step)}_ms`,
          value: at - (prod.phases[i - 1]?.[1] ?? 0),
          unit: 'ms',
          note: `production build, median run: ${step}, ms after the previous step (${at.toFixed(1)} ms after Burrow.start)`,
        })
    } finally {
      await built.close()
    }
  } finally {
    await browserA.close()
    await browserB.close()
    await pages.close()
    await relay.stop('SIGKILL')
  }

  const bundle = await bundleGzipKb()
  results.push({
    name: 'bundle.gzip_kb',
    value: bundle.kb,
    unit: 'KiB',
    note: `vite build of src/index.ts (page + worker, minified, ${bundle.files} files, ${bundle.rawKb.toFixed(0)} KiB raw), gzip -9, without the lazy WebRTC, tailnet and zstd chunks; goal ≤ 120`,
  })
  const lazyNotes = {
    webrtc: 'the simple-peer chunk the page fetches when its first direct path is attempted',
    tailnet: 'the tailnet client chunk (ts2021, HTTP/2, netmap) the worker fetches on a tailnet join',
    zstd: 'the fzstd chunk the tailnet client fetches when a control server sends a zstd map message',
  }
  for (const [name, note] of Object.entries(lazyNotes) as Array<[keyof typeof lazyNotes, string]>) {
    const chunk = bundle.lazy[name]
    results.push({
      name: `bundle.${name}_chunk_gzip_kb`,
      value: chunk.kb,
      unit: 'KiB',
      note: `${note} (${chunk.files.join(', ') || 'not found'}, ${chunk.rawKb.toFixed(0)} KiB raw), gzip -9`,
    })
  }
  return results
}

export default bench
