// A Burrow Node peer for the plain-UDP direct-path tests (run inside a namespace:
// `node --import tsx udp-client.ts`). Joins, keeps pinging `peer` until it is direct, fetches `url`
// over the overlay and reports each step as one JSON line on stdout:
//   {"event":"direct","transport":"udp","endpoint":"198.51.100.6:41641","candidateType":"srflx",…}
//   {"event":"path","path":"relay"}                      every path event of the peer
//   {"event":"progress","received":…}                    once `pauseAt` bytes arrived; reading then
//                                                        waits for a "resume" line on stdin
//   {"event":"fetched","bytes":…,"sha256":"…","path":…}
//   {"event":"direct-again","endpoint":…}                with `awaitDirect`: the peer is back on UDP
// Arguments: controlURL authKey peerHostname url directTimeoutMs [pauseAtBytes] [awaitDirect]
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { Burrow, type BurrowPathEvent } from '../../src/node.ts'

const [controlURL, authKey, peerName, url, directTimeout, pauseAt, awaitDirect] = process.argv.slice(2)
const out = (event: Record<string, unknown>) => process.stdout.write(JSON.stringify(event) + '\n')
const stdinLines: string[] = []
let lineArrived: (() => void) | undefined
createInterface({ input: process.stdin }).on('line', (line) => {
  stdinLines.push(line.trim())
  lineArrived?.()
})
const nextLine = async (): Promise<string> => {
  while (stdinLines.length === 0) await new Promise<void>((resolve) => (lineArrived = resolve))
  return stdinLines.shift()!
}

const started = performance.now()
const node = await Burrow.start({ controlURL: controlURL!, authKey: authKey!, hostname: `udp-client-${process.pid}`, storage: 'memory' })
out({ event: 'up', addresses: node.addresses })
const find = () => node.peers().find((p) => p.hostname === peerName)
node.addEventListener('path', (event) => {
  const { hostname, path } = event as BurrowPathEvent
  if (hostname === peerName) out({ event: 'path', path })
})
const deadline = performance.now() + Number(directTimeout ?? 30_000)
let peer = find()
while (performance.now() < deadline) {
  peer = find()
  // WebRTC may open first; UDP takes the peer over once a probe pong proves it.
  if (peer?.online && peer.path === 'direct' && peer.directTransport === 'udp' && peer.candidateType) break
  if (peer?.online) await node.ping(peer.addresses[0]).catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 250))
}
out({
  event: peer?.path === 'direct' ? 'direct' : 'no-direct',
  transport: peer?.directTransport ?? null,
  endpoint: peer?.endpoint ?? null,
  candidateType: peer?.candidateType ?? null,
  candidates: peer?.candidates ?? null,
  ms: Math.round(performance.now() - started),
  debug: await node._debugDirect(),
})
if (url) {
  const t0 = performance.now()
  const response = await node.fetch(url)
  const reader = response.body!.getReader()
  const hash = createHash('sha256')
  let bytes = 0
  let paused = pauseAt === undefined || pauseAt === '' || pauseAt === '0'
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    hash.update(value)
    bytes += value.length
    if (!paused && bytes >= Number(pauseAt)) {
      paused = true
      out({ event: 'progress', received: bytes })
      while ((await nextLine()) !== 'resume');
    }
  }
  const after = find()
  out({
    event: 'fetched',
    status: response.status,
    bytes,
    sha256: hash.digest('hex'),
    ms: Math.round(performance.now() - t0),
    path: after?.path,
    transport: after?.directTransport ?? null,
  })
}
if (awaitDirect === 'await-direct') {
  for (;;) {
    const p = find()
    if (p?.path === 'direct' && p.directTransport === 'udp') {
      out({ event: 'direct-again', endpoint: p.endpoint })
      break
    }
    if (p?.online) await node.ping(p.addresses[0]).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
await node.close()
process.exit(0)
