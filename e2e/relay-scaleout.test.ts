// Scale-out (issue 15) with Chromium tabs: three real `burrow relay`s — two meshed in region 1,
// one in region 2 — all serving the coordination from one real PostgreSQL (--database, the same
// --relay-map on each). A Node peer registers through relay 1a, tab1 through relay 1b, tab2
// through the region 2 relay. tab2 shows up in the Node peer's map (polled), and every pair
// pings and moves 5 MB byte-exact. No timing is asserted: each step waits for its condition.
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes, toHex } from '../src/crypto/index.ts'
import { Burrow } from '../src/node.ts'
import { patternBytes } from '../src/overlay/testing/pair.ts'
import { startPostgres, type PostgresServer } from '../test/helpers/postgres.ts'
import { createAuthKey, type RelayProcess, removeRelayDataDirs, waitFor } from '../test/helpers/relay-process.ts'
import { launchChromium, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'
import { MB5, openRelayTab, startTransfer, transferResult } from './helpers/page-transfer.ts'
import { startTwoRegionRelays } from '../test/helpers/relay-map.ts'

const MESH_KEY = toHex(randomBytes(32))
const scratch = mkdtempSync(join(tmpdir(), 'burrow-e2e-scaleout-'))
const BODY = patternBytes(MB5, 83)
const BODY_SHA256 = createHash('sha256').update(BODY).digest('hex')
const relays: RelayProcess[] = []
let postgres: PostgresServer
let r1a: RelayProcess
let r1b: RelayProcess
let r2: RelayProcess
let authKey: string
let pages: PageServer
let browser: LaunchedBrowser
let server: Awaited<ReturnType<typeof Burrow.start>>
let tab1: Page
let tab2: Page
const derp = (port: number): string => `ws://127.0.0.1:${port}/derp`

beforeAll(async () => {
  postgres = await startPostgres()
  const database = await postgres.createDatabase(`e2e_scaleout_${process.pid}`)
  ;({ r1a, r1b, r2 } = await startTwoRegionRelays(scratch, MESH_KEY, { coordination: 'all', shared: ['--database', database] }))
  relays.push(r1a, r1b, r2)
  authKey = createAuthKey(r1a.dataDir, '--reusable', '--database', database)
  server = await Burrow.start({ controlURL: `http://127.0.0.1:${r1a.port}`, authKey, hostname: 'server', storage: 'memory', direct: false, homeRegion: 1 })
  server.serve(8080, () => new Response(BODY as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream' } }))
  pages = await startPageServer()
  browser = await launchChromium()
  tab1 = await openRelayTab(browser, pages.url, { controlURL: `http://127.0.0.1:${r1b.port}`, authKey, hostname: 'tab1', homeRegion: 1 })
  tab2 = await openRelayTab(browser, pages.url, { controlURL: `http://127.0.0.1:${r2.port}`, authKey, hostname: 'tab2', homeRegion: 2 })
}, 240_000)

afterAll(async () => {
  await browser?.close()
  await pages?.close()
  await server?.close().catch(() => {})
  for (const relay of relays) await relay.stop('SIGKILL')
  removeRelayDataDirs()
  await postgres?.stop()
  rmSync(scratch, { recursive: true, force: true })
})

describe('three relays on one PostgreSQL, with Chromium tabs', () => {
  it('a tab registered through the region 2 relay appears in the peer map of a Node peer registered through relay 1a; the tabs and the Node peer ping each other and move 5 MB byte-exact', async () => {
    await waitFor('tab2 online and homed in region 2 in the server’s map', () => server.peers().some((p) => p.hostname === 'tab2' && p.online && p.relayRegion === 2), 60_000)
    expect(server.peers().find((p) => p.hostname === 'tab2')).toMatchObject({ relayURL: derp(r2.port) })
    await waitFor('tab1 online in the server’s map', () => server.peers().some((p) => p.hostname === 'tab1' && p.online && p.relayRegion === 1), 60_000)
    for (const [tab, others] of [
      [tab1, ['server', 'tab2']],
      [tab2, ['server', 'tab1']],
    ] as const)
      for (const other of others) await tab.evaluate((name) => window.burrowNodeE2E.waitForPeer(name, true, 60_000), other)
    expect(await tab1.evaluate(() => window.burrowNodeE2E.homeRelay())).toMatchObject({ region: 1, code: 'one' })
    expect(await tab2.evaluate(() => window.burrowNodeE2E.homeRelay())).toMatchObject({ region: 2, code: 'two', relayURL: derp(r2.port) })
    expect(await tab1.evaluate(() => window.burrowNodeE2E.ping('tab2'))).toBeGreaterThan(0)
    expect(await tab2.evaluate(() => window.burrowNodeE2E.ping('tab1'))).toBeGreaterThan(0)
    expect(await tab1.evaluate(() => window.burrowNodeE2E.ping('server'))).toBeGreaterThan(0)
    expect(await tab2.evaluate(() => window.burrowNodeE2E.ping('server'))).toBeGreaterThan(0)
    expect(await server.ping('tab1')).toBeGreaterThan(0)
    expect(await server.ping('tab2')).toBeGreaterThan(0)
    // tab1 (relay 1b's registration, region 1) → tab2 (region 2): 5 MB over TCP, byte-exact.
    const tab2Address = (await tab1.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'tab2')!.addresses[0]!
    const { id, sent } = await startTransfer(tab1, tab2, tab2Address, 9200, 5)
    const done = await transferResult(tab2, id, 120_000)
    expect(done.error).toBeUndefined()
    expect(done.done).toEqual({ bytes: MB5, sha256: (await sent).sha256 })
    // The Node peer → each tab: 5 MB, byte-exact.
    for (const tab of [tab1, tab2])
      expect(await tab.evaluate(() => window.burrowNodeE2E.fetchDigest('http://server:8080/'))).toMatchObject({ status: 200, bytes: MB5, sha256: BODY_SHA256 })
  }, 240_000)
})
