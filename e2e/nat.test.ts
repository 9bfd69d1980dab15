// A tab behind one home router and `burrow up` behind another (test/helpers/nat.ts: Linux
// MASQUERADE routers with a WAN firewall, relay + STUN on a small "internet" namespace, all
// test-made): the path goes direct through server-reflexive candidates from the relay's STUN,
// 20 MB cross it with the relay's counters flat, and when the router forgets its mappings
// mid-transfer the relay carries the same TCP connection until the direct path returns.
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BIG_BYTES, BLOB_BYTES, type NatBrowserSetup, patternSha256, startNatBrowser, waitForPath } from './helpers/nat-browser.ts'

let setup: NatBrowserSetup
let page: Page

beforeAll(async () => {
  setup = await startNatBrowser()
  page = await setup.startTab('tab')
}, 300_000)

afterAll(async () => {
  await setup?.close()
})

describe('a tab behind NAT A and burrow up behind NAT B', () => {
  it('go direct through server-reflexive candidates from the relay’s STUN, and 20 MB cross the direct path with the relay’s counters flat', async () => {
    await page.evaluate(() => window.burrowNodeE2E.waitForPeer('server', true, 30_000))
    await waitForPath(page, 'server', 'direct', 60_000)
    // The candidate types come from getStats() shortly after the channel opens.
    let server = (await page.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'server')!
    for (let i = 0; i < 50 && server.candidateType === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      server = (await page.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'server')!
    }
    // Neither side's own address is reachable from the other: only the NATs' mappings are.
    expect(['srflx', 'prflx']).toContain(server.candidateType)
    const before = await setup.relayForwardedBytes()
    const result = await page.evaluate(() => window.burrowNodeE2E.fetchDigest('http://server/blob'))
    const after = await setup.relayForwardedBytes()
    expect(result).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: patternSha256(BLOB_BYTES) })
    expect(after - before).toBeLessThan(BLOB_BYTES / 20)
  }, 180_000)

  it('when router A forgets its NAT mappings mid-transfer, the relay carries the same TCP connection (no reset), then the path is direct again', async () => {
    const { lab } = setup
    const transfer = page.evaluate(() => window.burrowNodeE2E.fetchDigest('http://server/big'))
    let finished = false
    void transfer.then(
      () => (finished = true),
      () => {},
    )
    await new Promise((resolve) => setTimeout(resolve, 500))
    // conntrack -F alone: the next packet out maps again (same port) and the path heals at once;
    // dropping the router's UDP forwarding while flushing makes the loss last.
    await lab.blockUdp(lab.a, true)
    await lab.flushNat(lab.a)
    try {
      await page.evaluate(() => window.burrowNodeE2E.waitForPath('server', 'relay', 30_000))
      // The relay took over while the connection was still moving data.
      expect(finished).toBe(false)
    } finally {
      await lab.blockUdp(lab.a, false)
    }
    const result = await transfer
    expect(result).toMatchObject({ status: 200, bytes: BIG_BYTES, sha256: patternSha256(BIG_BYTES) })
    await waitForPath(page, 'server', 'direct', 60_000)
  }, 240_000)
})
