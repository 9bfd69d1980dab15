/**
 * Polls `condition` on the event loop (not a timed sleep) until it holds; fails naming `what` after
 * `limitMs`, below the unit tests' 20 s timeout so the named failure is the one reported.
 */
export async function waitFor(what: string, condition: () => boolean, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
