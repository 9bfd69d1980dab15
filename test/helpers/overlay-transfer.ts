// One verified download between two Burrow Node peers, for the relay-region and scale-out tests:
// `to` serves `size` pattern bytes on an overlay port and `from` fetches and checks every byte.
import { expect } from 'vitest'
import type { Burrow } from '../../src/node.ts'
import { patternBytes } from '../../src/overlay/testing/pair.ts'

type Node = Awaited<ReturnType<typeof Burrow.start>>

/** `during.run()` is called once `during.after` bytes have arrived (to kill a relay mid-transfer). */
export async function verifiedTransfer(from: Node, to: Node, size: number, seed: number, port: number, during?: { after: number; run: () => Promise<void> }): Promise<void> {
  const body = patternBytes(size, seed)
  const server = to.serve(port, () => new Response(body as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream' } }))
  await server.ready
  try {
    const response = await from.fetch(`http://${to.hostname}:${port}/`)
    expect(response.status).toBe(200)
    const reader = response.body!.getReader()
    const got = new Uint8Array(size)
    let at = 0
    let ran = false
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      expect(at + value.length).toBeLessThanOrEqual(size)
      got.set(value, at)
      at += value.length
      if (during && !ran && at >= during.after) {
        ran = true
        await during.run()
      }
    }
    expect(at).toBe(size)
    expect(Buffer.compare(got, body)).toBe(0)
    if (during) expect(ran).toBe(true)
  } finally {
    await server.close()
  }
}

/** Every pair pings both ways: `x` by `y`'s address, `y` by `x`'s name (MagicDNS-style lookup). */
export async function pingEachWay(pairs: ReadonlyArray<readonly [Node, Node]>): Promise<void> {
  for (const [x, y] of pairs) {
    expect(await x.ping(y.addresses[0]!)).toBeGreaterThan(0)
    expect(await y.ping(x.hostname)).toBeGreaterThan(0)
  }
}

export const peerOf = (node: Node, hostname: string) => node.peers().find((p) => p.hostname === hostname)
