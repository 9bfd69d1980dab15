// Direct paths through the public API: pages call `Burrow.start` against a real `burrow relay`
// child process, from Chromium inside a network namespace (headless Chromium gathers no ICE
// candidates on loopback alone). The peers start on the relay and move to a WebRTC datachannel;
// TCP keeps flowing when the channel closes (back to the relay) and when the relay dies (on the
// direct path), and a peer whose signalling is dropped stays on the relay and works.
//
// The pages share one browser profile, so each node keeps its identity in memory
// (`storage: 'memory'`): separate keys and disco keys per page, as separate profiles would have.
import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { MB5, startTransfer, transferResult } from './helpers/page-transfer.ts'
import { type RelayProcess, removeRelayDataDirs, startRelayProcess } from '../test/helpers/relay-process.ts'
import { REPO_ROOT } from './helpers/browser.ts'
import { launchChromiumInNamespace, type NamespacedBrowser } from './helpers/netns-browser.ts'

let env: NamespacedBrowser | undefined
let relay: RelayProcess | undefined
let controlURL: string
let authKey: string
let pageA: Page
let pageB: Page
let addressB: string

function createAuthKey(dataDir: string): string {
  return execFileSync(process.execPath, ['bin/burrow.mjs', 'relay', 'authkey', 'create', '--reusable', '--data-dir', dataDir], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'ignore'],
  })
    .toString()
    .trim()
}

/** The relay's count of forwarded packet bytes, from its /metrics. */
async function relayForwardedBytes(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${relay!.port}/metrics`)).text()
  const match = /^burrow_relay_bytes_forwarded_total (\d+)/m.exec(text)
  if (!match) throw new Error(`no burrow_relay_bytes_forwarded_total in /metrics:\n${text}`)
  return Number(match[1])
}

async function openPage(): Promise<Page> {
  const page = await env!.browser.newPage()
  await page.goto(`${env!.pagesUrl}/e2e/pages/burrow.html`)
  await page
    .waitForFunction(() => document.title === 'ready', undefined, { timeout: 120_000 })
    .catch((error: Error) => {
      throw new Error(`${error.message}\npage errors: ${env!.browser.errors.join('\n')}`)
    })
  return page
}

async function join(page: Page, hostname: string, extra: { dropSignals?: boolean } = {}) {
  const result = await page.evaluate(
    ([url, name, key, drop]) =>
      window.burrowNodeE2E.start({
        controlURL: url!,
        hostname: name!,
        authKey: key!,
        storage: 'memory',
        probeIntervalMs: 1000,
        ...(drop ? { _debugDropDirectSignals: true } : {}),
      }),
    [controlURL, hostname, authKey, extra.dropSignals === true] as const,
  )
  if (!result.ok) throw new Error(`Burrow.start failed: ${JSON.stringify(result.error)}`)
  return result
}

const waitForPath = (page: Page, hostname: string, path: 'direct' | 'relay', timeoutMs: number) =>
  page.evaluate(([h, p, t]) => window.burrowNodeE2E.waitForPath(h as string, p as 'direct' | 'relay', t as number), [hostname, path, timeoutMs] as const)

const directInfo = (page: Page) => page.evaluate(() => window.burrowNodeE2E.direct())

/** Datagrams sent plus received on the datachannel to the only (or the named) peer. */
async function channelDatagrams(page: Page): Promise<number> {
  const info = await directInfo(page)
  return info.peers.reduce((sum, p) => sum + (p.channel ? p.channel.sent + p.channel.received : 0), 0)
}

describe('Burrow.start with direct WebRTC paths (Chromium in a network namespace, real relay)', () => {
  beforeAll(async () => {
    relay = await startRelayProcess()
    authKey = createAuthKey(relay.dataDir)
    env = await launchChromiumInNamespace()
    const exposed = await env.exposeToNamespace(relay.port)
    controlURL = `http://${exposed.host}:${exposed.port}`
  })

  afterAll(async () => {
    await env?.close()
    await relay?.stop('SIGKILL')
    removeRelayDataDirs()
  })

  it('(a) two nodes join, go direct within 5 s, and TCP moves 5 MB over the datachannel, not the relay', async () => {
    pageA = await openPage()
    pageB = await openPage()
    await join(pageA, 'tab-a')
    const b = await join(pageB, 'tab-b')
    addressB = b.addresses[0]!
    // From the second join (the first moment both are in the network) to both sides trusting the path.
    // Rejects unless both sides report the direct path within 5 s.
    await Promise.all([waitForPath(pageA, 'tab-b', 'direct', 5000), waitForPath(pageB, 'tab-a', 'direct', 5000)])
    const peersA = await pageA.evaluate(() => window.burrowNodeE2E.peers())
    expect(peersA).toHaveLength(1)
    expect(peersA[0]).toMatchObject({ hostname: 'tab-b', path: 'direct' })
    // The RTT of a disco pong over the datachannel.
    expect(peersA[0]!.rttMs).toBeGreaterThanOrEqual(0)
    const events = await pageA.evaluate(() => window.burrowNodeE2E.pathEvents())
    expect(events.at(-1)).toMatchObject({ hostname: 'tab-b', path: 'direct' })

    const relayBefore = await relayForwardedBytes()
    const channelBefore = await channelDatagrams(pageA)
    const { id, sent } = await startTransfer(pageA, pageB, addressB, 9001, 11)
    const got = await transferResult(pageB, id, 90_000)
    expect(got.done).toEqual({ bytes: MB5, sha256: (await sent).sha256 })
    const relayDelta = (await relayForwardedBytes()) - relayBefore
    const channelDelta = (await channelDatagrams(pageA)) - channelBefore
    // Only signalling, disco and a few heartbeats' worth may cross the relay, not the data.
    expect(relayDelta).toBeLessThan(MB5 / 50)
    expect(channelDelta).toBeGreaterThan(MB5 / 16_500)
    expect(await pageA.evaluate(() => window.burrowNodeE2E.peers()[0]!.path)).toBe('direct')
  })

  it('(c) closing the datachannel mid-transfer moves traffic to the relay without a reset; the direct path comes back', async () => {
    const relayBefore = await relayForwardedBytes()
    const { id, sent } = await startTransfer(pageA, pageB, addressB, 9002, 22)
    await pageB.waitForFunction((i) => (window.burrowNodeE2E.progress(i)?.received ?? 0) > 512 * 1024, id, { timeout: 30_000, polling: 5 })
    const closed = await pageA.evaluate(() => window.burrowNodeE2E.closeDirect('tab-b'))
    expect(closed).toBe(true)
    const receivedAtClose = await pageB.evaluate((i) => window.burrowNodeE2E.progress(i)!.received, id)
    expect(receivedAtClose).toBeLessThan(MB5)
    const got = await transferResult(pageB, id, 90_000)
    expect(got.error).toBeUndefined()
    expect(got.done).toEqual({ bytes: MB5, sha256: (await sent).sha256 })
    // The rest of the transfer (or most of it) crossed the relay.
    expect((await relayForwardedBytes()) - relayBefore).toBeGreaterThan((MB5 - receivedAtClose) / 4)
    const events = await pageA.evaluate(() => window.burrowNodeE2E.pathEvents())
    expect(events.some((e) => e.hostname === 'tab-b' && e.path === 'relay')).toBe(true)
    // Re-established: the selector retries after its backoff and the probes keep the peer active.
    await waitForPath(pageA, 'tab-b', 'direct', 20_000)
    await waitForPath(pageB, 'tab-a', 'direct', 20_000)
  })

  it('(d) a peer whose WebRTC signals are dropped stays on the relay and works', async () => {
    const pageC = await openPage()
    try {
      const c = await join(pageC, 'tab-c', { dropSignals: true })
      await pageA.evaluate(() => window.burrowNodeE2E.waitForPeer('tab-c', true, 5000))
      const rtt = await pageA.evaluate((address) => window.burrowNodeE2E.ping(address), c.addresses[0]!)
      expect(rtt).toBeGreaterThan(0)
      const { id, sent } = await startTransfer(pageA, pageC, c.addresses[0]!, 9003, 33, 1024 * 1024)
      const got = await transferResult(pageC, id, 90_000)
      expect(got.done).toEqual({ bytes: 1024 * 1024, sha256: (await sent).sha256 })
      // Long enough for an attempt to have been made and refused (signals arrive within a second).
      await new Promise((resolve) => setTimeout(resolve, 3000))
      const infoC = await directInfo(pageC)
      expect(infoC.counters['droppedSignals']).toBeGreaterThan(0)
      // The offering side hands its (never opened) channel to the worker at once: it may exist, idle.
      expect(
        infoC.peers.every((p) => p.path === 'relay' && p.direct !== 'open' && (p.channel?.sent ?? 0) === 0 && (p.channel?.received ?? 0) === 0),
        JSON.stringify(infoC),
      ).toBe(true)
      const peersC = await pageC.evaluate(() => window.burrowNodeE2E.peers())
      expect(peersC.map((p) => [p.hostname, p.path]).sort()).toEqual([
        ['tab-a', 'relay'],
        ['tab-b', 'relay'],
      ])
      expect((await pageA.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'tab-c')!.path).toBe('relay')
      // A and B keep their direct path meanwhile.
      expect((await pageA.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'tab-b')!.path).toBe('direct')
      await pageC.evaluate(() => window.burrowNodeE2E.close())
    } finally {
      await pageC.close()
    }
  })

  it('(b) a transfer on the direct path completes after the relay process is killed', async () => {
    await waitForPath(pageA, 'tab-b', 'direct', 20_000)
    // 20 MB: 5 MB can finish on a datachannel before the kill lands.
    const size = 4 * MB5
    const { id, sent } = await startTransfer(pageA, pageB, addressB, 9004, 44, size)
    await pageB.waitForFunction((i) => (window.burrowNodeE2E.progress(i)?.received ?? 0) > 256 * 1024, id, { timeout: 30_000, polling: 5 })
    await relay!.stop('SIGKILL')
    const receivedAtKill = await pageB.evaluate((i) => window.burrowNodeE2E.progress(i)!.received, id)
    expect(receivedAtKill).toBeLessThan(size)
    const got = await transferResult(pageB, id, 90_000)
    expect(got.done).toEqual({ bytes: size, sha256: (await sent).sha256 })
    // Still direct, with the relay gone.
    expect((await pageA.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'tab-b')!.path).toBe('direct')
    expect(await pageA.evaluate(() => window.burrowNodeE2E.states())).toContain('reconnecting')
  })

  it('reports no page errors', () => {
    expect(env!.browser.errors).toEqual([])
  })
})
