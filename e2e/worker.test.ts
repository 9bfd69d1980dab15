// The dataplane worker in real Chromium: two workers back to back, packets from the page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { launchChromium, startBuiltPageServer, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'

let server: PageServer
let browser: LaunchedBrowser

async function openTestPage(base = server): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(`${base.url}/e2e/pages/worker.html`)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
  return page
}

describe('dataplane worker in Chromium', () => {
  beforeAll(async () => {
    server = await startPageServer()
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
  })

  it('carries 10 000 packets each way between two workers, byte-exact, transferring the page buffers', async () => {
    const page = await openTestPage()
    const result = await page.evaluate(() => window.burrowE2E.exchange(10_000))
    expect(result.errors).toEqual([])
    expect(result.atB).toEqual({ received: 10_000, mismatches: 0, duplicates: 0 })
    expect(result.atA).toEqual({ received: 10_000, mismatches: 0, duplicates: 0 })
    expect(result.notDetached).toBe(0)
    const peerOfA = result.statusA.peers[0]!
    expect(peerOfA.txPackets).toBe(10_001)
    expect(peerOfA.rxPackets).toBe(10_000)
    expect(peerOfA.lastHandshake).toBeGreaterThan(Date.now() - 120_000)
    expect(peerOfA.lastHandshake).toBeLessThanOrEqual(Date.now() + 1000)
    expect(result.statusA.driver?.errors).toBe(0)
    expect(result.statusB.driver?.errors).toBe(0)
    console.log(`10 000 packets each way in ${result.elapsedMs.toFixed(0)} ms`)
    expect(browser.errors).toEqual([])
    await page.close()
  })

  it('rejects bad operations with the reason, reports async errors as events, and keeps serving', async () => {
    const page = await openTestPage()
    const result = await page.evaluate(() => window.burrowE2E.rejections())
    const [unknownPeer, badAddress, unknownUnderlay, doubleStart, unknownKind] = result.outcomes
    expect(unknownPeer).toMatchObject({ name: 'DataplaneError', code: 'unknown-peer' })
    expect(badAddress).toMatchObject({ name: 'WireError', code: 'bad-address' })
    expect(badAddress!.message).toMatch(/^attach-overlay: /)
    expect(unknownUnderlay).toMatchObject({ name: 'DataplaneError', code: 'unknown-transport' })
    expect(doubleStart!.message).toMatch(/already started/)
    expect(unknownKind!.message).toMatch(/unknown underlay kind "carrier-pigeon"/)
    expect(result.asyncError).toMatch(/overlay port: "packets" message without an array of ArrayBuffers/)
    expect(result.stillServing).toBe(true)
    await page.close()
  })

  it('wakes the page at the deadline it asked for, not before', async () => {
    const page = await openTestPage()
    const result = await page.evaluate(() => window.burrowE2E.wake(40))
    expect(result.woke).toBeGreaterThanOrEqual(result.at)
    expect(result.observedAfter).toBeGreaterThanOrEqual(result.woke)
    await page.close()
  })

  it('works from a plain `vite build` (the worker is bundled with no configuration)', async () => {
    const built = await startBuiltPageServer(['e2e/pages/worker.html'])
    try {
      const page = await openTestPage(built)
      const result = await page.evaluate(() => window.burrowE2E.exchange(500))
      expect(result.errors).toEqual([])
      expect(result.atB).toEqual({ received: 500, mismatches: 0, duplicates: 0 })
      expect(result.atA).toEqual({ received: 500, mismatches: 0, duplicates: 0 })
      expect(result.notDetached).toBe(0)
      const workerScripts = await page.evaluate(() =>
        performance
          .getEntriesByType('resource')
          .map((entry) => entry.name)
          .filter((name) => /\/assets\/worker-[^/]+\.js$/.test(name)),
      )
      expect(workerScripts.length).toBeGreaterThan(0)
      await page.close()
    } finally {
      await built.close()
    }
  })
})
