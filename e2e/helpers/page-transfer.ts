// Bulk TCP transfers between two pages running e2e/pages/burrow-page.ts (its `sink`/`send`/`progress`).
import type { Page } from 'playwright-core'

export const MB5 = 5 * 1024 * 1024

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
