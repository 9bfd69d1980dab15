// The whole direct-path story in a browser: two pages, each with the real dataplane worker, a
// WireGuard tunnel between them over a real `burrow relay`, and DirectPaths moving it to a
// WebRTC datachannel (signals as sealed disco over the relay) once pings prove it; dropping the
// channel falls back to the relay without losing the flow, and the path comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { type RelayProcess, removeRelayDataDirs, startRelayProcess } from '../test/helpers/relay-process.ts'
import { launchChromiumInNamespace, openReadyPage, type NamespacedBrowser } from './helpers/netns-browser.ts'
import { until } from './helpers/until.ts'

let env: NamespacedBrowser | undefined
let relay: RelayProcess | undefined

function openPage(): Promise<Page> {
  return openReadyPage(env!, 'e2e/pages/direct.html')
}

describe('direct paths with the dataplane worker (Chromium in a network namespace)', () => {
  beforeAll(async () => {
    relay = await startRelayProcess()
    env = await launchChromiumInNamespace()
  })

  afterAll(async () => {
    await relay?.stop('SIGKILL')
    removeRelayDataDirs()
    await env?.close()
  })

  it('starts on the relay, moves to WebRTC, falls back when the channel drops, and comes back', async () => {
    const exposed = await env!.exposeToNamespace(relay!.port)
    const relayUrl = `http://${exposed.host}:${exposed.port}`
    const a = await openPage()
    const b = await openPage()
    const keysA = await a.evaluate(() => window.directE2E.keys())
    const keysB = await b.evaluate(() => window.directE2E.keys())
    await a.evaluate(([url, peer]) => window.directE2E.start(url, '10.77.0.1', peer), [relayUrl, { ...keysB, address: '10.77.0.2' }] as const)
    await b.evaluate(([url, peer]) => window.directE2E.start(url, '10.77.0.2', peer), [relayUrl, { ...keysA, address: '10.77.0.1' }] as const)
    const status = (page: Page) => page.evaluate(() => window.directE2E.status())
    const received = (page: Page) => page.evaluate(() => window.directE2E.received())

    // Packets flow (over the relay first), then both sides trust the direct path.
    await until(
      'packets through the tunnel',
      () => received(b),
      (r) => r.count > 5,
    )
    const direct = await until(
      'the direct path',
      async () => [await status(a), await status(b)] as const,
      ([x, y]) => x.status.path === 'direct' && y.status.path === 'direct',
    )
    expect(direct[0].counters.pongsMatched).toBeGreaterThan(0)
    expect(direct[0].counters.signalsSent + direct[1].counters.signalsSent).toBeGreaterThanOrEqual(2)
    expect(direct[0].counters.discoRejected).toBe(0)

    // On the direct path, datagrams go on the channel and nothing more is copied to the relay.
    const before = await status(a)
    const receivedBefore = (await received(b)).count
    await until(
      'traffic on the channel',
      () => status(a),
      (s) => s.link !== null && s.link.sent > before.link.sent + 40,
    )
    const after = await status(a)
    expect(after.status.path).toBe('direct')
    expect(after.counters.mirroredToRelay).toBe(before.counters.mirroredToRelay)
    expect((await received(b)).count).toBeGreaterThan(receivedBefore + 20)

    // Drop the channel: traffic carries on over the relay, then a new session takes over again.
    await a.evaluate(() => window.directE2E.dropChannel())
    await until(
      'B back on the relay',
      () => status(b),
      (s) => s.status.direct !== 'open',
    )
    const duringFallback = (await received(b)).count
    await until(
      'packets during the fallback',
      () => received(b),
      (r) => r.count > duringFallback + 10,
    )
    const again = await until(
      'the direct path again',
      async () => [await status(a), await status(b)] as const,
      ([x, y]) => x.status.path === 'direct' && y.status.path === 'direct',
      60_000,
    )
    expect(again[0].pathChanges).toEqual(['direct', 'relay', 'direct'])

    // Every packet A sent arrived at B once (sequence numbers 0..n with no gap beyond the tail).
    await a.evaluate(() => window.directE2E.stop())
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const final = await received(b)
    expect(final.errors).toEqual([])
    expect(final.handover).toBe('transferred')
    expect(final.count).toBeGreaterThan(50)
    // Datagram paths may lose a few packets while switching; most must arrive.
    expect(final.count).toBeGreaterThanOrEqual(Math.floor((final.last + 1) * 0.9))
  }, 240_000)
})
