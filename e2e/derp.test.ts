// Burrow's DERP client as the browser runs it: in a dedicated worker over Chromium's own
// WebSocket, through a real `burrow relay` process, exchanging packets with a Node client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair, parseKey } from '../src/crypto/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from '../test/helpers/relay-process.ts'
import { launchChromium, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'

let pages: PageServer
let browser: LaunchedBrowser
let relay: RelayProcess
let node: DerpConnection | undefined

describe('DERP client in a Chromium worker', () => {
  beforeAll(async () => {
    relay = await startRelayProcess()
    pages = await startPageServer()
    browser = await launchChromium()
  })

  afterAll(async () => {
    node?.close()
    await browser?.close()
    await pages?.close()
    await relay?.stop('SIGKILL')
    removeRelayDataDirs()
  })

  it('logs in over the native WebSocket, echoes 2000 packets, and coalesces its writes', async () => {
    const page = await browser.newPage()
    await page.goto(`${pages.url}/e2e/pages/derp.html`)
    await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
    const ready = await page.evaluate((url) => window.derpE2E.start(url), relay.url)
    if (ready.type !== 'ready') throw new Error(`worker failed: ${JSON.stringify(ready)}`)
    expect(ready.usesNativeWebSocket).toBe(true)
    const browserKey = parseKey(ready.publicKey)

    const me = generateKeyPair()
    node = new DerpConnection({ url: relay.url, privateKey: me.privateKey, dial: nodeWebSocketDialer() }).start()
    await waitFor('the Node client', () => node!.isConnected)
    const echoes: number[] = []
    node.on('packet', (_source, packet) => echoes.push(new DataView(packet.buffer, packet.byteOffset).getUint32(0)))
    for (let i = 0; i < 2000; i++) {
      const packet = new Uint8Array(1200)
      new DataView(packet.buffer).setUint32(0, i)
      node.send(browserKey, packet)
      if (i % 200 === 199) await waitFor('echoes', () => echoes.length === i + 1)
    }
    expect(echoes).toEqual(Array.from({ length: 2000 }, (_, i) => i))
    const stats = await page.evaluate(() => window.derpE2E.stats())
    if (stats.type !== 'stats') throw new Error(JSON.stringify(stats))
    expect(stats.echoed).toBe(2000)
    // Echoes of packets that arrive together leave together: far fewer messages than packets.
    expect(stats.messagesSent).toBeLessThan(1000)
    expect(browser.errors).toEqual([])
  })
})
