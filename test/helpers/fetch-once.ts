// A one-shot Burrow Node peer for tests that need a separate process (its own environment, e.g.
// NODE_EXTRA_CA_CERTS for a relay with a test-made CA): joins, waits for HOST to be online, GETs
// URL over the overlay and prints one JSON line {status, bytes, sha256, relayURL}, or {error}.
// usage: node --import tsx test/helpers/fetch-once.ts CONTROL_URL AUTH_KEY HOST URL
import { createHash } from 'node:crypto'
import { Burrow } from '../../src/node.ts'

const [controlURL, authKey, host, url] = process.argv.slice(2) as [string, string, string, string]
let node: Burrow | undefined
try {
  node = await Burrow.start({ controlURL, authKey, hostname: 'fetch-once', storage: 'memory' })
  const deadline = Date.now() + 20_000
  while (!node.peers().some((p) => p.hostname === host && p.online)) {
    if (Date.now() > deadline) throw new Error(`${host} did not come online within 20 s`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const response = await node.fetch(url)
  const body = new Uint8Array(await response.arrayBuffer())
  console.log(JSON.stringify({ status: response.status, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), relayURL: node.relayURL }))
} catch (error) {
  console.log(JSON.stringify({ error: (error as Error).message, code: (error as { code?: string }).code }))
  process.exitCode = 1
} finally {
  await node?.close().catch(() => {})
}
