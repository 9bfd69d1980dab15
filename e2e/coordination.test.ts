// The coordination client as the browser runs it: in a dedicated worker, with the browser's own
// WebSocket and the node key kept in IndexedDB, against a real relay coordination endpoint.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, type Server } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import { generateKeyPair } from '../src/crypto/index.ts'
import { CoordinationClient } from '../src/control/coordination-client.ts'
import { attachCoordination, type AttachedCoordination } from '../src/server/coordination/http.ts'
import { launchChromium, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'

let pages: PageServer
let browser: LaunchedBrowser
let relay: Server
let coordination: AttachedCoordination
let relayUrl: string
let dataDir: string
let nodeClient: CoordinationClient

async function openPage(): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(`${pages.url}/e2e/pages/coordination.html`)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
  return page
}

describe('coordination client in a Chromium worker', () => {
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'burrow-coord-e2e-'))
    relay = createServer()
    // The home relay the tab names must be on the operator's relay map (issue 17: nobody may make others dial any URL).
    coordination = await attachCoordination(relay, { dataDir, relayMap: [{ url: 'wss://relay.example/derp', region: 'e2e' }] })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    relayUrl = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`
    nodeClient = new CoordinationClient({
      url: relayUrl,
      nodeKeyPair: generateKeyPair(),
      discoPublicKey: generateKeyPair().publicKey,
      hostname: 'node-peer',
      authKey: await coordination.service.createAuthKey({}, Date.now()),
    })
    nodeClient.start()
    await nodeClient.ready()
    pages = await startPageServer()
    browser = await launchChromium()
  })

  afterAll(async () => {
    nodeClient?.stop()
    await browser?.close()
    await pages?.close()
    await coordination?.close()
    relay?.closeAllConnections()
    await new Promise<void>((resolve) => relay?.close(() => resolve()))
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('registers from the worker, sees the Node peer, is seen by it, and keeps its key in IndexedDB across reloads', async () => {
    const authKey = await coordination.service.createAuthKey({}, Date.now())
    let page = await openPage()
    const first = await page.evaluate(([url, key]) => window.coordinationE2E.start(url!, 'browser tab', 'burrow-e2e-a', key), [relayUrl, authKey])
    if (first.type !== 'ready') throw new Error(`registration failed: ${JSON.stringify(first)}`)
    expect(first.usesNativeWebSocket).toBe(true)
    expect(first.self.hostname).toBe('browser-tab')
    expect(first.peers.map((p) => p.hostname)).toEqual(['node-peer'])

    const seen = new Promise<void>((resolve) => {
      const check = (): boolean => nodeClient.peers().some((p) => p.nodeKey === first.self.nodeKey && p.homeRelay?.region === 'e2e')
      const off = nodeClient.on('peers', () => {
        if (check()) {
          off()
          resolve()
        }
      })
    })
    await page.evaluate(() => window.coordinationE2E.setHomeRelay('wss://relay.example/derp', 'e2e'))
    await seen

    await page.close()
    page = await openPage()
    // No auth key this time: the key in IndexedDB is already registered.
    const second = await page.evaluate(([url]) => window.coordinationE2E.start(url!, 'browser tab', 'burrow-e2e-a'), [relayUrl])
    if (second.type !== 'ready') throw new Error(`reconnect failed: ${JSON.stringify(second)}`)
    expect(second.self.nodeKey).toBe(first.self.nodeKey)
    expect(second.self.addresses).toEqual(first.self.addresses)
    await page.close()
    expect(browser.errors).toEqual([])
  })

  it('agrees on one node key when several creators race on an empty IndexedDB', async () => {
    const page = await openPage()
    const keys = await page.evaluate(() => window.coordinationE2E.raceKeys('burrow-e2e-race'))
    expect(keys).toHaveLength(3)
    expect(new Set(keys).size).toBe(1)
    await page.close()
  })

  it('surfaces a wrong auth key as a 401 with the server message', async () => {
    const page = await openPage()
    const outcome = await page.evaluate(([url]) => window.coordinationE2E.start(url!, 'intruder', 'burrow-e2e-b', 'bwauth-wrong'), [relayUrl])
    expect(outcome).toEqual({
      type: 'failed',
      error: { name: 'CoordinationClientError', status: 401, message: 'authKey is unknown or already used', fatal: true },
    })
    await page.close()
  })
})
