// Raw RTCDataChannel throughput between two pages of one Chromium (in a network namespace, where
// ICE finds a host candidate): the baseline for tunnelled TCP over a direct path
// (e2e.direct_tcp_mb_per_s). No Burrow code is on the data path.
import type { Page } from 'playwright-core'
import { launchChromiumInNamespace } from '../e2e/helpers/netns-browser.ts'
import { removeRelayDataDirs, startRelayProcess } from '../test/helpers/relay-process.ts'
import type { Bench, BenchResult } from './types.ts'

interface Case {
  name: string
  init: RTCDataChannelInit
  size: number
  count: number
  note: string
}

const CASES: Case[] = [
  {
    name: 'webrtc.datagram_mb_per_s',
    init: { ordered: false, maxRetransmits: 0 },
    size: 1452,
    count: 40_000,
    note: 'unordered, maxRetransmits 0 (what Burrow uses), 1452-byte messages (a full WireGuard data datagram), sender keeps ≤ 1 MiB buffered; MB/s delivered at the receiver',
  },
  {
    name: 'webrtc.reliable_mb_per_s',
    init: { ordered: true },
    size: 16 * 1024,
    count: 4_000,
    note: 'ordered reliable channel, 16 KiB messages, ≤ 1 MiB buffered; MB/s delivered at the receiver',
  },
]

async function open(env: Awaited<ReturnType<typeof launchChromiumInNamespace>>, run: string, role: string): Promise<Page> {
  const page = await env.browser.newPage()
  await page.goto(`${env.pagesUrl}/e2e/pages/webrtc-bench.html?run=${run}&role=${role}`)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
  return page
}

/**
 * The same datagrams through Burrow's WebRTC underlay: the channel transferred to a worker,
 * sent through ChannelLink (bounded queue, bufferedAmount backpressure), received in the other
 * page's worker. Signalling goes over a real relay as in e2e/webrtc.test.ts.
 */
async function underlayThroughput(env: Awaited<ReturnType<typeof launchChromiumInNamespace>>): Promise<BenchResult> {
  const relay = await startRelayProcess()
  try {
    const exposed = await env.exposeToNamespace(relay.port)
    const relayUrl = `http://${exposed.host}:${exposed.port}`
    const pages: Page[] = []
    for (let i = 0; i < 2; i++) {
      const page = await env.browser.newPage()
      await page.goto(`${env.pagesUrl}/e2e/pages/webrtc.html`)
      await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
      pages.push(page)
    }
    const [a, b] = pages as [Page, Page]
    const keysA = await a.evaluate((url) => window.webrtcE2E.start(url), relayUrl)
    const keysB = await b.evaluate((url) => window.webrtcE2E.start(url), relayUrl)
    await a.evaluate(([n, d]) => window.webrtcE2E.setPeer(n, d), [keysB.nodeKey, keysB.discoKey] as const)
    await b.evaluate(([n, d]) => window.webrtcE2E.setPeer(n, d), [keysA.nodeKey, keysA.discoKey] as const)
    await a.evaluate(() => window.webrtcE2E.connect())
    for (let i = 0; i < 200 && !((await a.evaluate(() => window.webrtcE2E.stats())).open && (await b.evaluate(() => window.webrtcE2E.stats())).open); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const count = 40_000
    await a.evaluate((n) => window.webrtcE2E.blast(n, 1452, 1 << 20), count)
    let previous = -1
    let got = await b.evaluate(() => window.webrtcE2E.stats())
    while (got.received !== previous && got.received < count) {
      previous = got.received
      await new Promise((resolve) => setTimeout(resolve, 300))
      got = await b.evaluate(() => window.webrtcE2E.stats())
    }
    const seconds = (got.lastAt - got.firstAt) / 1000
    for (const page of pages) await page.close()
    return {
      name: 'webrtc.underlay_mb_per_s',
      value: got.bytes / 1e6 / seconds,
      unit: 'MB/s',
      note: `Burrow's WebRTC underlay, worker to worker over a transferred channel, 1452-byte datagrams, sender keeps ≤ 1 MiB buffered like the raw case; the test worker also writes and checks a byte pattern in every datagram; ${got.received}/${count} arrived in ${(seconds * 1000).toFixed(0)} ms`,
    }
  } finally {
    await relay.stop('SIGKILL')
    removeRelayDataDirs()
  }
}

const bench: Bench = async () => {
  const env = await launchChromiumInNamespace()
  const results: BenchResult[] = []
  try {
    for (const [i, c] of CASES.entries()) {
      const sender = await open(env, `r${i}`, 'offer')
      const receiver = await open(env, `r${i}`, 'answer')
      await Promise.all([sender.evaluate((init) => window.webrtcBench.connect(init), c.init), receiver.evaluate(() => window.webrtcBench.connect({}))])
      await sender.evaluate(([count, size]) => window.webrtcBench.send(count, size, 1 << 20), [c.count, c.size] as const)
      // Wait until arrivals stop (the unreliable channel may lose some).
      let previous = -1
      let got = await receiver.evaluate(() => window.webrtcBench.received())
      while (got.messages !== previous && got.messages < c.count) {
        previous = got.messages
        await new Promise((resolve) => setTimeout(resolve, 300))
        got = await receiver.evaluate(() => window.webrtcBench.received())
      }
      const seconds = (got.last - got.first) / 1000
      results.push({
        name: c.name,
        value: got.bytes / 1e6 / seconds,
        unit: 'MB/s',
        note: `${c.note}; ${got.messages}/${c.count} messages arrived in ${(seconds * 1000).toFixed(0)} ms`,
      })
      await sender.close()
      await receiver.close()
    }
    results.push(await underlayThroughput(env))
    return results
  } finally {
    await env.close()
  }
}

export default bench
