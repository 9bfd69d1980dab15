// Pages running e2e/pages/burrow-page.ts: one opened and started on a relay (no direct paths, a
// memory key), and bulk TCP transfers between two of them (its `sink`/`send`/`progress`).
import type { Page } from 'playwright-core'
import type { LaunchedBrowser } from './browser.ts'

export const MB5 = 5 * 1024 * 1024

/** A new tab of `browser` on burrow.html (from `pagesUrl`) whose node joined `controlURL` and homes in `homeRegion`. */
export async function openRelayTab(browser: LaunchedBrowser, pagesUrl: string, join: { controlURL: string; authKey: string; hostname: string; homeRegion: number }): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(`${pagesUrl}/e2e/pages/burrow.html`)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
  const started = await page.evaluate((options) => window.burrowNodeE2E.start({ ...options, direct: false, storage: 'memory' }), join)
  if (!started.ok) throw new Error(`Burrow.start failed in the page: ${JSON.stringify(started.error)}`)
  return page
}

let nextTransferId = 1

/** Starts a transfer of `size` bytes from `from` to `to` (listening on `port`); `sent` settles when the sender is done. */
export async function startTransfer(from: Page, to: Page, toAddress: string, port: number, seed: number, size = MB5) {
  const id = nextTransferId++
  await to.evaluate(([p, i]) => window.burrowNodeE2E.sink(p!, i!), [port, id] as const)
  const sent = from.evaluate(([host, p, s, sd]) => window.burrowNodeE2E.send(host as string, p as number, s as number, sd as number), [toAddress, port, size, seed] as const)
  return { id, sent }
}

/** Waits until the receiving page finished (or failed) transfer `id` and returns its progress record. */
export async function transferResult(to: Page, id: number, timeoutMs = 60_000) {
  await to.waitForFunction((i) => window.burrowNodeE2E.progress(i)?.done !== undefined || window.burrowNodeE2E.progress(i)?.error !== undefined, id, {
    timeout: timeoutMs,
    polling: 100,
  })
  return (await to.evaluate((i) => window.burrowNodeE2E.progress(i), id))!
}
