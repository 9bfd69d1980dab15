// Relay regions with Chromium tabs: three real `burrow relay`s (two meshed in region 1, one in
// region 2, coordination with --relay-map on one of region 1's), two tabs homed in different
// regions and a Node peer. The tabs ping each other and the Node peer and move 5 MB byte-exact
// across the regions; then the relay the first
// tab is homed on is killed (SIGKILL) while the tab downloads 20 MB from the Node peer: the tab
// re-homes to region 1's other relay and the download completes byte-exact (same SHA-256).
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes, toHex } from '../src/crypto/index.ts'
import { Burrow } from '../src/node.ts'
import { patternBytes } from '../src/overlay/testing/pair.ts'
import { createAuthKey, type RelayProcess, removeRelayDataDirs, waitFor } from '../test/helpers/relay-process.ts'
import { launchChromium, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'
import { MB5, openRelayTab, startTransfer, transferResult } from './helpers/page-transfer.ts'
import { startTwoRegionRelays } from '../test/helpers/relay-map.ts'

const MESH_KEY = toHex(randomBytes(32))
const scratch = mkdtempSync(join(tmpdir(), 'burrow-e2e-regions-'))
const SIZE = 20 << 20
const BODY = patternBytes(SIZE, 61)
const BODY_SHA256 = createHash('sha256').update(BODY).digest('hex')
const relays: RelayProcess[] = []
let r1a: RelayProcess
let r1b: RelayProcess
let r2: RelayProcess
let pages: PageServer
let browser: LaunchedBrowser
let server: Awaited<ReturnType<typeof Burrow.start>>
let tab1: Page
let tab2: Page
/** Bytes of BODY the Node peer's response stream has handed to TCP so far. */
let pulled = 0
const derp = (port: number): string => `ws://127.0.0.1:${port}/derp`

beforeAll(async () => {
  ;({ r1a, r1b, r2 } = await startTwoRegionRelays(scratch, MESH_KEY, { coordination: '1b' }))
  relays.push(r1a, r1b, r2)
  const controlURL = `http://127.0.0.1:${r1b.port}`
  const authKey = createAuthKey(r1b.dataDir, '--reusable')
  server = await Burrow.start({ controlURL, authKey, hostname: 'server', storage: 'memory', direct: false, homeRegion: 2 })
  server.serve(8080, (request) => {
    // /5mb: the first 5 MB, for the pair transfers; anything else: all 20 MB, counted in `pulled`.
    if (new URL(request.url).pathname === '/5mb')
      return new Response(BODY.slice(0, 5 << 20) as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream' } })
    pulled = 0
    let at = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= SIZE) return controller.close()
        const chunk = BODY.subarray(at, at + 65536)
        at += chunk.length
        pulled = at
        controller.enqueue(chunk.slice())
      },
    })
    return new Response(body, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) } })
  })
  pages = await startPageServer()
  browser = await launchChromium()
  tab1 = await openRelayTab(browser, pages.url, { controlURL, authKey, hostname: 'tab1', homeRegion: 1 })
  tab2 = await openRelayTab(browser, pages.url, { controlURL, authKey, hostname: 'tab2', homeRegion: 2 })
  for (const tab of [tab1, tab2]) {
    await tab.evaluate(() => window.burrowNodeE2E.waitForPeer('server', true, 20_000))
    await tab.evaluate((other) => window.burrowNodeE2E.waitForPeer(other, true, 20_000), tab === tab1 ? 'tab2' : 'tab1')
  }
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await pages?.close()
  await server?.close().catch(() => {})
  for (const relay of relays) await relay.stop('SIGKILL')
  removeRelayDataDirs()
  rmSync(scratch, { recursive: true, force: true })
})

describe('relay regions in Chromium', () => {
  it('tabs home in the region they ask for, ping each other and a Node peer across regions, and move 5 MB byte-exact between them', async () => {
    expect(await tab1.evaluate(() => window.burrowNodeE2E.homeRelay())).toMatchObject({ region: 1, code: 'one', relayURL: derp(r1a.port) })
    expect(await tab2.evaluate(() => window.burrowNodeE2E.homeRelay())).toMatchObject({ region: 2, code: 'two', relayURL: derp(r2.port) })
    const peersOf1 = await tab1.evaluate(() => window.burrowNodeE2E.peers())
    expect(peersOf1.find((p) => p.hostname === 'tab2')).toMatchObject({ relayRegion: 2 })
    expect(peersOf1.find((p) => p.hostname === 'server')).toMatchObject({ relayRegion: 2 })
    expect(await tab1.evaluate(() => window.burrowNodeE2E.ping('tab2'))).toBeGreaterThan(0)
    expect(await tab2.evaluate(() => window.burrowNodeE2E.ping('tab1'))).toBeGreaterThan(0)
    expect(await tab2.evaluate(() => window.burrowNodeE2E.ping('server'))).toBeGreaterThan(0)
    await waitFor('the server to see tab1 in region 1', () => server.peers().some((p) => p.hostname === 'tab1' && p.relayRegion === 1))
    expect(await server.ping('tab1')).toBeGreaterThan(0)
    // 5 MB byte-exact across the regions: tab1 (region 1) → tab2 (region 2), and the Node peer (region 2) → tab2.
    const tab2Address = peersOf1.find((p) => p.hostname === 'tab2')!.addresses[0]
    const { id, sent } = await startTransfer(tab1, tab2, tab2Address, 9100, 5)
    const done = await transferResult(tab2, id)
    expect(done.error).toBeUndefined()
    expect(done.done).toEqual({ bytes: MB5, sha256: (await sent).sha256 })
    const fiveMb = await tab2.evaluate(() => window.burrowNodeE2E.fetchDigest('http://server:8080/5mb'))
    expect(fiveMb).toMatchObject({
      status: 200,
      bytes: 5 << 20,
      sha256: createHash('sha256')
        .update(BODY.subarray(0, 5 << 20))
        .digest('hex'),
    })
  }, 120_000)

  it('kill -9 of the tab’s home relay during a 20 MB download: the tab re-homes to its region’s other relay, the download is byte-exact', async () => {
    const download = tab1.evaluate(() => window.burrowNodeE2E.fetchDigest('http://server:8080/blob'))
    await waitFor('2 MB of the download to be under way', () => pulled >= 2 << 20, 60_000)
    expect(pulled).toBeLessThan(SIZE)
    await r1a.stop('SIGKILL')
    const result = await download
    expect(result).toMatchObject({ status: 200, bytes: SIZE, sha256: BODY_SHA256 })
    await tab1.waitForFunction((url) => window.burrowNodeE2E.homeRelay()?.relayURL === url, derp(r1b.port), { timeout: 30_000, polling: 100 })
    expect(await tab1.evaluate(() => window.burrowNodeE2E.homeRelay())).toMatchObject({ region: 1, code: 'one', relayURL: derp(r1b.port) })
    expect(await tab2.evaluate(() => window.burrowNodeE2E.ping('tab1'))).toBeGreaterThan(0)
  }, 120_000)
})
