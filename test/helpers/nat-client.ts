// A Burrow node for the NAT lab (run inside a namespace: `node --import tsx nat-client.ts`):
// joins, waits until `peer` is online, keeps pinging it until the path is direct, then fetches
// `url` over the overlay and reports each step as one JSON line on stdout:
//   {"event":"direct","candidateType":"srflx","candidates":{…},"ms":…}
//   {"event":"fetched","bytes":…,"sha256":"…","ms":…,"path":"direct"}
// Arguments: controlURL authKey peerHostname url directTimeoutMs
import { createHash } from 'node:crypto'
import { Burrow } from '../../src/node.ts'

const [controlURL, authKey, peerName, url, directTimeout] = process.argv.slice(2)
const out = (event: Record<string, unknown>) => process.stdout.write(JSON.stringify(event) + '\n')

const started = performance.now()
const node = await Burrow.start({ controlURL: controlURL!, authKey: authKey!, hostname: 'nat-client', storage: 'memory' })
out({ event: 'up', addresses: node.addresses })
const deadline = performance.now() + Number(directTimeout ?? 30_000)
let peer = node.peers().find((p) => p.hostname === peerName)
while (performance.now() < deadline) {
  peer = node.peers().find((p) => p.hostname === peerName)
  if (peer?.online && peer.path === 'direct' && peer.candidateType) break
  if (peer?.online) await node.ping(peer.addresses[0]).catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 250))
}
out({
  event: peer?.path === 'direct' ? 'direct' : 'no-direct',
  candidateType: peer?.candidateType ?? null,
  candidates: peer?.candidates ?? null,
  ms: Math.round(performance.now() - started),
  ...(peer?.path === 'direct' ? {} : { debug: await node._debugDirect() }),
})
if (url) {
  const t0 = performance.now()
  const response = await node.fetch(url)
  const body = new Uint8Array(await response.arrayBuffer())
  const after = node.peers().find((p) => p.hostname === peerName)
  out({
    event: 'fetched',
    status: response.status,
    bytes: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    ms: Math.round(performance.now() - t0),
    path: after?.path,
    candidateType: after?.candidateType ?? null,
  })
}
await node.close()
process.exit(0)
