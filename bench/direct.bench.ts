// Direct paths through the public API, in Chromium inside a network namespace (where ICE finds a
// host candidate) against a real `burrow relay` process:
//   e2e.direct_tcp_mb_per_s   page → WebRTC datachannel → page TCP (20 MiB, default overlay MTU),
//                             baseline: a raw datachannel between two pages of the same browser in
//                             the same run, transferred to a worker at each end (as Burrow's is),
//                             configured as Burrow's, same message size (no Burrow code on it)
//   e2e.direct_tcp_mtu1420_mb_per_s  the same with `mtu: 1420` (one SCTP packet per datagram)
//   e2e.path_upgrade_ms       the second node's Burrow.start call until its peer is on the direct
//                             path (the first disco pong over the channel trusted it); the note and
//                             a table on stderr split it into phases (peer known, attempt, first
//                             signal out/in, ICE gathering done, channel open, first pong)
import { execFileSync } from 'node:child_process'
import type { Page } from 'playwright-core'
import { REPO_ROOT } from '../e2e/helpers/browser.ts'
import { launchChromiumInNamespace, type NamespacedBrowser } from '../e2e/helpers/netns-browser.ts'
import { DEFAULT_OVERLAY_MTU } from '../src/burrow.ts'
import { removeRelayDataDirs, startRelayProcess } from '../test/helpers/relay-process.ts'
import type { Bench, BenchResult } from './types.ts'

const TRANSFER_BYTES = 20 * 1024 * 1024
const ROUNDS = 3

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function openPage(env: NamespacedBrowser, path: string): Promise<Page> {
  const page = await env.browser.newPage()
  await page.goto(`${env.pagesUrl}${path}`)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 180_000 })
  return page
}

/**
 * MB/s delivered by a raw datachannel between two pages, no Burrow code: `reliable` is ordered
 * and reliable with 16 KiB messages; otherwise the kind Burrow uses (unordered, maxRetransmits 0)
 * with messages the size of a full WireGuard datagram at the default MTU. ≤ 1 MiB buffered.
 */
async function rawChannel(env: NamespacedBrowser, run: string, reliable: boolean, inWorker = false): Promise<number> {
  // The bench page signals over a BroadcastChannel and an offer that lands before the answering
  // page listens is lost, which hangs that attempt: give each one 30 s and try again.
  for (let attempt = 1; ; attempt++) {
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('raw datachannel attempt timed out')), 30_000).unref())
    try {
      return await Promise.race([rawChannelOnce(env, `${run}-${attempt}`, reliable, inWorker), timeout])
    } catch (error) {
      if (attempt >= 3) throw error
    }
  }
}

async function rawChannelOnce(env: NamespacedBrowser, run: string, reliable: boolean, inWorker: boolean): Promise<number> {
  const worker = inWorker ? '&worker=1' : ''
  const sender = await openPage(env, `/e2e/pages/webrtc-bench.html?run=${run}&role=offer${worker}`)
  const receiver = await openPage(env, `/e2e/pages/webrtc-bench.html?run=${run}&role=answer${worker}`)
  try {
    const init: RTCDataChannelInit = reliable ? { ordered: true } : { ordered: false, maxRetransmits: 0 }
    await Promise.all([sender.evaluate((i) => window.webrtcBench.connect(i), init), receiver.evaluate(() => window.webrtcBench.connect({}))])
    const size = reliable ? 16 * 1024 : DEFAULT_OVERLAY_MTU + 32
    const count = Math.ceil(TRANSFER_BYTES / size)
    await sender.evaluate(([n, s]) => window.webrtcBench.send(n, s, 1 << 20), [count, size] as const)
    // Until arrivals stop (the unreliable channel may lose some).
    let previous = -1
    let got = await receiver.evaluate(() => window.webrtcBench.received())
    while (got.messages !== previous && got.messages < count) {
      previous = got.messages
      await new Promise((resolve) => setTimeout(resolve, 300))
      got = await receiver.evaluate(() => window.webrtcBench.received())
    }
    return got.bytes / 1e6 / ((got.last - got.first) / 1000)
  } finally {
    await sender.close()
    await receiver.close()
  }
}

interface Pair {
  a: Page
  b: Page
  addressB: string
  nodeKeyB: string
  upgradeMs: number
  /** ms from the second node's Burrow.start to each upgrade phase it recorded for its peer. */
  phases: Record<string, number>
}

async function startPair(env: NamespacedBrowser, controlURL: string, authKey: string, tag: string, mtu?: number): Promise<Pair> {
  const a = await openPage(env, '/e2e/pages/burrow.html')
  const b = await openPage(env, '/e2e/pages/burrow.html')
  const start = (page: Page, hostname: string) =>
    page.evaluate(([url, key, name, m]) => window.burrowNodeE2E.start({ controlURL: url!, authKey: key!, hostname: name!, storage: 'memory', ...(m ? { mtu: Number(m) } : {}) }), [
      controlURL,
      authKey,
      hostname,
      mtu ? String(mtu) : '',
    ] as const)
  const ra = await start(a, `${tag}-a`)
  const rb = await start(b, `${tag}-b`)
  if (!ra.ok || !rb.ok) throw new Error(`Burrow.start failed: ${JSON.stringify(ra.ok ? rb : ra)}`)
  await b.evaluate((peer) => window.burrowNodeE2E.waitForPath(peer, 'direct', 30_000), `${tag}-a`)
  await a.evaluate((peer) => window.burrowNodeE2E.waitForPath(peer, 'direct', 30_000), `${tag}-b`)
  const upgradeMs = await b.evaluate((peer) => window.burrowNodeE2E.startToDirectMs(peer), `${tag}-a`)
  // The worker's phases are relative to the moment it knew the peer; the page's path event closes
  // the same interval, so "peer known" is the total minus the worker's known → trusted span.
  const info = await b.evaluate(() => window.burrowNodeE2E.direct())
  const relative = info.peers.find((p) => p.nodeKey === ra.nodeKey)?.phases ?? {}
  const phases: Record<string, number> = {}
  if (relative['trusted'] !== undefined) {
    const known = upgradeMs! - relative['trusted']
    phases['peer known'] = known
    for (const [name, at] of Object.entries(relative)) phases[name] = known + at
  }
  phases['path event (direct)'] = upgradeMs!
  return { a, b, addressB: rb.addresses[0]!, nodeKeyB: rb.nodeKey, upgradeMs: upgradeMs!, phases }
}

function phaseTable(phases: Record<string, number>): string {
  const rows = Object.entries(phases).sort((x, y) => x[1] - y[1])
  let previous = 0
  const lines = ['  | phase (second node) | ms after Burrow.start | Δ ms |', '  |---|---|---|']
  for (const [name, at] of rows) {
    lines.push(`  | ${name} | ${at.toFixed(0)} | ${(at - previous).toFixed(0)} |`)
    previous = at
  }
  return lines.join('\n')
}

/** MB/s of one 20 MiB TCP transfer a → b over the overlay, checked byte-exact. */
async function tcpTransfer(pair: Pair, round: number): Promise<{ rate: number; path: string; dropped: number }> {
  const id = 2000 + round
  const port = 9200 + round
  await pair.b.evaluate(([p, i]) => window.burrowNodeE2E.sink(p!, i!), [port, id] as const)
  const sending = pair.a.evaluate(([host, p, size, seed]) => window.burrowNodeE2E.send(host as string, p as number, size as number, seed as number), [
    pair.addressB,
    port,
    TRANSFER_BYTES,
    round + 1,
  ] as const)
  try {
    await pair.b.waitForFunction((i) => window.burrowNodeE2E.progress(i)?.done !== undefined || window.burrowNodeE2E.progress(i)?.error !== undefined, id, {
      timeout: 60_000,
      polling: 50,
    })
  } catch (error) {
    const received = await pair.b.evaluate((i) => window.burrowNodeE2E.progress(i)?.received, id)
    const info = await pair.a.evaluate(() => window.burrowNodeE2E.direct())
    const events = await pair.a.evaluate(() => window.burrowNodeE2E.pathEvents())
    throw new Error(`transfer ${round} stalled after ${received} bytes: ${JSON.stringify(info)} ${JSON.stringify(events)}`, { cause: error })
  }
  const sent = await sending
  const got = (await pair.b.evaluate((i) => window.burrowNodeE2E.progress(i), id))!
  if (got.done?.sha256 !== sent.sha256) throw new Error(`transfer ${round} corrupted: ${JSON.stringify(got)}`)
  const info = await pair.a.evaluate(() => window.burrowNodeE2E.direct())
  const peer = info.peers.find((p) => p.nodeKey === pair.nodeKeyB)
  return { rate: TRANSFER_BYTES / 1e6 / ((got.doneAt! - sent.startedAt) / 1000), path: peer?.path ?? 'none', dropped: peer?.channel?.dropped ?? 0 }
}

async function closePair(pair: Pair): Promise<void> {
  for (const page of [pair.a, pair.b]) {
    await page.evaluate(() => window.burrowNodeE2E.close()).catch(() => {})
    await page.close()
  }
}

const bench: Bench = async () => {
  const results: BenchResult[] = []
  const relay = await startRelayProcess()
  const env = await launchChromiumInNamespace()
  try {
    const exposed = await env.exposeToNamespace(relay.port)
    const controlURL = `http://${exposed.host}:${exposed.port}`
    const authKey = execFileSync(process.execPath, ['bin/burrow.mjs', 'relay', 'authkey', 'create', '--reusable', '--data-dir', relay.dataDir], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim()

    for (const mtu of process.env['DIRECT_BENCH_MTUS'] ? process.env['DIRECT_BENCH_MTUS'].split(',').map((m) => (m === 'default' ? undefined : Number(m))) : [undefined, 1420]) {
      const pair = await startPair(env, controlURL, authKey, mtu ? `m${mtu}` : 'dflt', mtu)
      const rates: number[] = []
      const baselines: number[] = []
      const reliables: number[] = []
      const pageBaselines: number[] = []
      const notes: string[] = []
      try {
        // Interleaved with the baseline so both see the same machine load.
        for (let round = 0; round < ROUNDS; round++) {
          const t = await tcpTransfer(pair, round)
          if (t.path !== 'direct')
            throw new Error(
              `round ${round} ended on the ${t.path} path: ${JSON.stringify(await pair.a.evaluate(() => window.burrowNodeE2E.direct()))} ${JSON.stringify(await pair.a.evaluate(() => window.burrowNodeE2E.pathEvents()))} rate ${t.rate}`,
            )
          rates.push(t.rate)
          notes.push(`${t.rate.toFixed(1)}${t.dropped ? ` (${t.dropped} dropped in the link queue)` : ''}`)
          if (mtu === undefined) {
            baselines.push(await rawChannel(env, `d${round}`, false, true))
            pageBaselines.push(await rawChannel(env, `p${round}`, false))
            reliables.push(await rawChannel(env, `r${round}`, true))
          }
        }
      } finally {
        await closePair(pair)
      }
      const rate = median(rates)
      if (mtu === undefined) {
        const baseline = median(baselines)
        results.push({
          name: 'e2e.direct_tcp_mb_per_s',
          value: rate,
          unit: 'MB/s',
          baseline,
          ratio: rate / baseline,
          note: `20 MiB page → WebRTC datachannel → page over overlay TCP (MTU ${DEFAULT_OVERLAY_MTU}), median of ${ROUNDS} (${notes.join(', ')}); baseline: raw datachannel between two pages of the same browser, transferred to a worker at each end which sends and counts, as Burrow configures it (unordered, maxRetransmits 0, ${DEFAULT_OVERLAY_MTU + 32}-byte messages), MB/s delivered (${baselines.map((r) => r.toFixed(1)).join(', ')}); the same channel driven from the pages' main threads: ${pageBaselines.map((r) => r.toFixed(1)).join(', ')}; a raw ordered reliable channel with 16 KiB messages: ${reliables.map((r) => r.toFixed(1)).join(', ')}`,
        })
        process.stderr.write(`  path upgrade phases:\n${phaseTable(pair.phases)}\n`)
        const phaseNote = Object.entries(pair.phases)
          .sort((x, y) => x[1] - y[1])
          .map(([name, at]) => `${name} ${at.toFixed(0)}`)
          .join(', ')
        results.push({
          name: 'e2e.path_upgrade_ms',
          value: pair.upgradeMs,
          unit: 'ms',
          note: `second node: Burrow.start call (fresh key, registration, DERP login) until its peer is on the direct path (WebRTC signalling over the relay, ICE, channel to the worker, first disco ping/pong over the channel); phases in ms after start: ${phaseNote}`,
        })
      } else {
        results.push({
          name: 'e2e.direct_tcp_mtu1420_mb_per_s',
          value: rate,
          unit: 'MB/s',
          note: `as e2e.direct_tcp_mb_per_s with mtu: 1420 (each WireGuard datagram fits one SCTP packet), median of ${ROUNDS} (${notes.join(', ')})`,
        })
      }
    }
    return results
  } finally {
    await env.close()
    await relay.stop('SIGKILL')
    removeRelayDataDirs()
  }
}

export default bench
