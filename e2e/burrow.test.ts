// The public API as a web developer uses it: two browsers (separate profiles, so separate
// IndexedDB) call `Burrow.start` against a real `burrow relay` child process and talk over the
// overlay: ping, TCP both ways at once, fetch() to serve(), a relay restart mid-transfer, reloads,
// a closed tab going offline, and a wrong auth key.
import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { MB5, startTransfer, transferResult } from './helpers/page-transfer.ts'
import { type RelayProcess, startRelayProcess } from '../test/helpers/relay-process.ts'
import { launchChromium, REPO_ROOT, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'

let pages: PageServer
let browserA: LaunchedBrowser
let browserB: LaunchedBrowser
let relay: RelayProcess
let controlURL: string
let authKey: string
let pageA: Page
let pageB: Page
let addressA: string
let addressB: string

function createAuthKey(dataDir: string, ...flags: string[]): string {
  return execFileSync(process.execPath, ['bin/burrow.mjs', 'relay', 'authkey', 'create', ...flags, '--data-dir', dataDir], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
    .toString()
    .trim()
}

async function openPage(browser: LaunchedBrowser): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(`${pages.url}/e2e/pages/burrow.html`)
  await page
    .waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
    .catch((error: Error) => {
      throw new Error(`${error.message}; page errors: ${browser.errors.join(' | ')}`)
    })
  return page
}

// This file is about the relay path; direct paths (which now come up within a second) have
// e2e/burrow-direct.test.ts and e2e/direct-paths.test.ts.
async function start(page: Page, hostname: string, key?: string) {
  return page.evaluate(
    ([url, name, auth]) => window.burrowNodeE2E.start({ controlURL: url!, hostname: name!, ...(auth ? { authKey: auth } : {}), probeIntervalMs: 1000, direct: false }),
    [controlURL, hostname, key] as const,
  )
}

async function joined(page: Page, hostname: string, key?: string) {
  const result = await start(page, hostname, key)
  if (!result.ok) throw new Error(`Burrow.start failed: ${JSON.stringify(result.error)}`)
  return result
}

describe('Burrow.start in two browsers through a real relay', () => {
  beforeAll(async () => {
    relay = await startRelayProcess()
    controlURL = new URL(relay.url).origin
    authKey = createAuthKey(relay.dataDir, '--reusable')
    pages = await startPageServer()
    browserA = await launchChromium()
    browserB = await launchChromium()
  })

  afterAll(async () => {
    await browserA?.close()
    await browserB?.close()
    await pages?.close()
    await relay?.stop('SIGKILL')
  })

  it('both join, see each other online within 2 s, and ping', async () => {
    pageA = await openPage(browserA)
    pageB = await openPage(browserB)
    const a = await joined(pageA, 'tab-a', authKey)
    const b = await joined(pageB, 'tab-b', authKey)
    addressA = a.addresses[0]!
    addressB = b.addresses[0]!
    expect([a.state, b.state]).toEqual(['online', 'online'])
    expect(a.addresses).toHaveLength(2)
    expect(a.addresses[0]).toMatch(/^100\./)
    expect(b.addresses[1]).toMatch(/^fd/)
    expect(a.nodeKey).not.toBe(b.nodeKey)
    // The deadline: each sees the other online within 2 s (the wait rejects past it).
    await Promise.all([pageA.evaluate(() => window.burrowNodeE2E.waitForPeer('tab-b', true, 2000)), pageB.evaluate(() => window.burrowNodeE2E.waitForPeer('tab-a', true, 2000))])
    const rtt = await pageA.evaluate((address) => window.burrowNodeE2E.ping(address), addressB)
    expect(rtt).toBeGreaterThan(0)
    // By hostname and over IPv6 too.
    await pageB.evaluate(() => window.burrowNodeE2E.ping('tab-a'))
    await pageB.evaluate((address) => window.burrowNodeE2E.ping(address), a.addresses[1]!)
    const peersA = await pageA.evaluate(() => window.burrowNodeE2E.peers())
    expect(peersA).toHaveLength(1)
    expect(peersA[0]).toMatchObject({ hostname: 'tab-b', addresses: b.addresses, online: true, path: 'relay' })
    expect(peersA[0]!.rttMs).toBeGreaterThan(0)
  })

  it('moves 5 MB over TCP byte-exact in both directions at once', async () => {
    const ab = await startTransfer(pageA, pageB, addressB, 9001, 11)
    const ba = await startTransfer(pageB, pageA, addressA, 9002, 22)
    const [sentAB, sentBA] = await Promise.all([ab.sent, ba.sent])
    const [gotAB, gotBA] = await Promise.all([transferResult(pageB, ab.id), transferResult(pageA, ba.id)])
    expect(gotAB.done).toEqual({ bytes: MB5, sha256: sentAB.sha256 })
    expect(gotBA.done).toEqual({ bytes: MB5, sha256: sentBA.sha256 })
    expect(sentAB.sha256).not.toBe(sentBA.sha256)
  })

  it('fetch() from one tab gets a real Response from serve() in the other', async () => {
    await pageB.evaluate(() => window.burrowNodeE2E.serve(8080, 'hello from b'))
    const plain = await pageA.evaluate((url) => window.burrowNodeE2E.fetch(url), `http://${addressB}:8080/x`)
    expect(plain).toEqual({ status: 200, text: 'hello from b GET /x ', servedBy: 'tab-b', type: 'Response' })
    const posted = await pageA.evaluate(() => window.burrowNodeE2E.fetch('http://tab-b:8080/upload', { method: 'POST', body: 'payload' }))
    expect(posted.text).toBe('hello from b POST /upload payload')
    const streamed = await pageA.evaluate((url) => window.burrowNodeE2E.fetch(url), `http://${addressB}:8080/stream`)
    expect(streamed.text).toBe('chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n')
  })

  it('completes a 5 MB transfer intact while the relay is killed and restarted', async () => {
    const { id, sent } = await startTransfer(pageA, pageB, addressB, 9003, 33)
    await pageB.waitForFunction((i) => (window.burrowNodeE2E.progress(i)?.received ?? 0) > 1024 * 1024, id, { timeout: 30_000, polling: 20 })
    const { port, dataDir } = relay
    await relay.stop('SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 500))
    relay = await startRelayProcess([], { port, dataDir })
    const got = await transferResult(pageB, id, 90_000)
    expect(got.done).toEqual({ bytes: MB5, sha256: (await sent).sha256 })
    // The data path (DERP) may be back before the coordination session is; both come back.
    for (const page of [pageA, pageB]) {
      await page.waitForFunction(() => window.burrowNodeE2E.states().at(-1) === 'online', undefined, { timeout: 30_000, polling: 100 })
      expect(await page.evaluate(() => window.burrowNodeE2E.states())).toContain('reconnecting')
    }
  })

  it('keeps its node key and addresses across a reload; a closed tab goes offline for the other within 10 s', async () => {
    const before = await pageB.evaluate(() => window.burrowNodeE2E.peers())
    const nodeKeyA = before.find((p) => p.hostname === 'tab-a')!.nodeKey
    await pageA.reload()
    await pageA.waitForFunction(() => document.title === 'ready')
    // No auth key: the key kept in IndexedDB is already registered.
    const again = await joined(pageA, 'tab-a')
    expect(again.nodeKey).toBe(nodeKeyA)
    expect(again.addresses[0]).toBe(addressA)
    expect(again.hostname).toBe('tab-a')
    await pageA.evaluate(() => window.burrowNodeE2E.waitForPeer('tab-b', true, 5000))
    await pageA.evaluate((address) => window.burrowNodeE2E.ping(address), addressB)

    await pageA.close()
    // Rejects unless the closed tab is seen offline within 10 s.
    await pageB.evaluate(() => window.burrowNodeE2E.waitForPeer('tab-a', false, 10_000))
  })

  it('rejects Burrow.start with a clear error for a wrong auth key', async () => {
    const page = await openPage(browserA)
    const result = await page.evaluate(([url]) => window.burrowNodeE2E.start({ controlURL: url!, hostname: 'intruder', authKey: 'bwauth-wrong', storage: 'memory' }), [
      controlURL,
    ] as const)
    expect(result).toEqual({ ok: false, error: { name: 'BurrowError', code: 'unauthorized', status: 401, message: 'authKey is unknown or already used' } })
    await page.close()
  })

  it('reports no page errors', () => {
    expect(browserA.errors).toEqual([])
    expect(browserB.errors).toEqual([])
  })
})
