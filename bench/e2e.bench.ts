// End-to-end figures of the public API in real Chromium through a real `burrow relay` process:
//   e2e.relay_tcp_mb_per_s      browser → relay → browser TCP (20 MiB, direct paths off so the relay carries it), baseline: the same browser's
//                               worker sealing 1420-byte packets with @noble ChaCha20-Poly1305
//   e2e.start_to_first_byte_ms  Burrow.start (fresh key, registration) until the first TCP byte from a peer
//   bundle.gzip_kb              production build of the library entry (page + worker), gzipped, lazy chunks apart
//   bundle.*_chunk_gzip_kb      the lazy chunks: simple-peer (webrtc), the tailnet client (tailnet), fzstd (zstd)
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'vite'
import { launchChromium, REPO_ROOT, startPageServer } from '../e2e/helpers/browser.ts'
import { DEFAULT_OVERLAY_MTU } from '../src/burrow.ts'
import { startRelayProcess } from '../test/helpers/relay-process.ts'
import type { Bench, BenchResult } from './types.ts'

const TRANSFER_BYTES = 20 * 1024 * 1024
const ROUNDS = 3

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
    const open = async (browser: typeof browserA) => {
      const page = await browser.newPage()
      await page.goto(`${pages.url}/e2e/pages/burrow.html`)
      // Vite transforms the page on first load; on a busy machine that alone can take a minute.
      await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 180_000 })
      return page
    }
    const pageA = await open(browserA)
    const pageB = await open(browserB)
    const start = (page: typeof pageA, hostname: string) =>
      page.evaluate(([url, key, name]) => window.burrowNodeE2E.start({ controlURL: url!, authKey: key!, hostname: name!, storage: 'memory', probeIntervalMs: 0, direct: false }), [
        controlURL,
        authKey,
        hostname,
      ] as const)
    const a = await start(pageA, 'bench-a')
    const b = await start(pageB, 'bench-b')
    if (!a.ok || !b.ok) throw new Error(`Burrow.start failed: ${JSON.stringify(a.ok ? b : a)}`)
    const addressB = b.addresses[0]!
    await pageA.evaluate(() => window.burrowNodeE2E.waitForPeer('bench-b', true, 10_000))
    await pageA.evaluate((address) => window.burrowNodeE2E.ping(address), addressB)

    // Throughput, interleaved with the baseline so both see the same machine load.
    const rates: number[] = []
    const baselines: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const id = 1000 + round
      const port = 9100 + round
      await pageB.evaluate(([p, i]) => window.burrowNodeE2E.sink(p!, i!), [port, id] as const)
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
      const got = (await pageB.evaluate((i) => window.burrowNodeE2E.progress(i), id))!
      if (got.done?.sha256 !== sent.sha256) throw new Error(`transfer ${round} corrupted: ${JSON.stringify(got)}`)
      rates.push(TRANSFER_BYTES / 1e6 / ((got.doneAt! - sent.startedAt) / 1000))
      baselines.push((await pageA.evaluate(() => window.burrowNodeE2E.sealBaseline(1000))) / 1e6)
    }
    const rate = median(rates)
    const baseline = median(baselines)
    results.push({
      name: 'e2e.relay_tcp_mb_per_s',
      value: rate,
      unit: 'MB/s',
      baseline,
      ratio: rate / baseline,
      note: `20 MiB browser → burrow relay → browser over TCP (overlay MTU ${DEFAULT_OVERLAY_MTU}), median of ${ROUNDS} (${rates.map((r) => r.toFixed(1)).join(', ')}); baseline: @noble ChaCha20-Poly1305 seal of 1420-byte packets in a worker of the same browser (${baselines.map((r) => r.toFixed(1)).join(', ')}); goal ratio ≥ 0.6`,
    })

    await pageB.evaluate(() => window.burrowNodeE2E.greeter(7))
    const pageC = await open(browserA)
    const firstByte: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      firstByte.push(
        await pageC.evaluate(([url, key, address]) => window.burrowNodeE2E.startToFirstByte({ controlURL: url!, authKey: key!, hostname: 'bench-c' }, address!, 7), [
          controlURL,
          authKey,
          addressB,
        ] as const),
      )
    }
    results.push({
      name: 'e2e.start_to_first_byte_ms',
      value: median(firstByte),
      unit: 'ms',
      note: `Burrow.start with a fresh key (registration, DERP login, handshake) until the first TCP byte from a peer, median of ${ROUNDS} (${firstByte.map((t) => t.toFixed(0)).join(', ')})`,
    })
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
