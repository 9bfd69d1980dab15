// Dataplane worker throughput in real Chromium (page ⇄ worker, and page → worker → worker → page).
import { launchChromium, startPageServer } from '../e2e/helpers/browser.ts'
import type { Bench, BenchResult } from './types.ts'

const bench: Bench = async () => {
  const server = await startPageServer()
  const browser = await launchChromium()
  try {
    const page = await browser.newPage()
    await page.goto(`${server.url}/e2e/pages/worker.html`)
    await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
    const transfer = await page.evaluate(() => window.burrowE2E.transferBench(3000, 64))
    const exchange = await page.evaluate(() => window.burrowE2E.exchange(10_000))
    const results: BenchResult[] = [
      {
        name: 'worker.transfer_packets_per_s',
        value: transfer.packetsPerSecond,
        unit: 'packets/s',
        note: `1420-byte packets, batches of 64, page → worker (core loopback) → page, transferred ArrayBuffers; ${transfer.packets} packets in ${transfer.elapsedMs.toFixed(0)} ms`,
      },
      {
        name: 'worker.tunnel_packets_per_s',
        value: (20_000 * 1000) / exchange.elapsedMs,
        unit: 'packets/s',
        note: '10 000 packets each way (8–1400 B payloads) page → worker → WireGuard → MessageChannel → worker → page, both directions at once',
      },
    ]
    return results
  } finally {
    await browser.close()
    await server.close()
  }
}

export default bench
