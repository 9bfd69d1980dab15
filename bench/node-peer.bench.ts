// `npm run bench -- --only node-peer`: downloading from a Node HTTP server exposed by a real
// `burrow up` process, fetched by a Burrow peer in this process through a local `burrow relay`
// (DERP over WebSocket), against the same download straight from the HTTP server in the same run;
// and node_peer.udp_direct_mb_per_s: the same download from a second `burrow up` (direct paths on)
// by a second Burrow peer over the plain-UDP direct path, against the relay figure of the same run
// (rounds interleaved); node_peer.udp_upgrade_ms: that second peer's Burrow.start until it is on
// the UDP path, against until its peer is online. NODE_PEER_BENCH_NO_BROWSER=1 skips the browser
// part (directFetch).
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Burrow } from '../src/node.ts'
import { BLOB_BYTES, patternSha256, startNatBrowser, waitForPath } from '../e2e/helpers/nat-browser.ts'
import { createAuthKey, removeRelayDataDirs, startRelayProcess, waitFor } from '../test/helpers/relay-process.ts'
import type { Bench, BenchResult } from './types.ts'

const ROOT = join(import.meta.dirname, '..')
const BODY_BYTES = 16 << 20
const ROUNDS = 5

async function download(fetcher: (url: string) => Promise<Response>, url: string): Promise<number> {
  const start = performance.now()
  const response = await fetcher(url)
  const reader = response.body!.getReader()
  let bytes = 0
  for (let r = await reader.read(); !r.done; r = await reader.read()) bytes += r.value.length
  const seconds = (performance.now() - start) / 1000
  if (bytes !== BODY_BYTES) throw new Error(`downloaded ${bytes} bytes, expected ${BODY_BYTES}`)
  return bytes / 1e6 / seconds
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/**
 * node_peer.direct_fetch_mb_per_s: a tab behind NAT A downloading from `burrow up` behind NAT B
 * (e2e/helpers/nat-browser.ts) over the direct path, next to a second tab of the same browser whose
 * WebRTC signals are dropped (so it stays on the relay), interleaved in the same run.
 */
async function directFetch(): Promise<BenchResult> {
  const setup = await startNatBrowser()
  try {
    const direct = await setup.startTab('tab-direct')
    const relayed = await setup.startTab('tab-relay', { dropDirectSignals: true })
    for (const page of [direct, relayed]) await page.evaluate(() => window.burrowNodeE2E.waitForPeer('server', true, 30_000))
    await waitForPath(direct, 'server', 'direct', 60_000)
    const fetchRate = async (page: typeof direct, path: 'direct' | 'relay'): Promise<number> => {
      const r = await page.evaluate(() => window.burrowNodeE2E.fetchDigest('http://server/blob'))
      if (r.bytes !== BLOB_BYTES || r.sha256 !== patternSha256(BLOB_BYTES)) throw new Error(`download over the ${path} path was not byte-exact: ${JSON.stringify(r)}`)
      const peer = (await page.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'server')
      if (peer?.path !== path) throw new Error(`expected the ${path} path, the peer is on ${peer?.path}`)
      return BLOB_BYTES / 1e6 / (r.ms / 1000)
    }
    await fetchRate(direct, 'direct')
    await fetchRate(relayed, 'relay')
    const viaDirect: number[] = []
    const viaRelay: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      viaDirect.push(await fetchRate(direct, 'direct'))
      viaRelay.push(await fetchRate(relayed, 'relay'))
    }
    const value = median(viaDirect)
    const baseline = median(viaRelay)
    const candidate = (await direct.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'server')?.candidateType
    return {
      name: 'node_peer.direct_fetch_mb_per_s',
      value: Math.round(value * 10) / 10,
      unit: 'MB/s',
      baseline: Math.round(baseline * 10) / 10,
      ratio: Math.round((value / baseline) * 1000) / 1000,
      note: `median of ${ROUNDS} fetch() downloads of ${BLOB_BYTES >> 20} MiB by a tab behind NAT A from burrow up behind NAT B over the direct path (${candidate ?? '?'} candidates; ${viaDirect.map((r) => r.toFixed(1)).join(', ')}); baseline: the same download by a second tab of the same browser kept on the relay (${viaRelay.map((r) => r.toFixed(1)).join(', ')})`,
    }
  } finally {
    await setup.close()
  }
}

const bench: Bench = async () => [...(await relayFetch()), ...(process.env['NODE_PEER_BENCH_NO_BROWSER'] ? [] : [await directFetch()])]

/** `burrow up --serve 80=127.0.0.1:<httpPort>`; resolves with the process and its overlay IPv4 address. */
async function startUp(controlURL: string, key: string, hostname: string, stateDir: string, httpPort: number, extra: string[]): Promise<{ up: ChildProcess; address: string }> {
  const up = spawn(
    process.execPath,
    ['bin/burrow.mjs', 'up', '--control', controlURL, '--authkey', key, '--hostname', hostname, '--state-dir', stateDir, '--serve', `80=127.0.0.1:${httpPort}`, ...extra],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let address: string | undefined
  createInterface({ input: up.stdout! }).on('line', (line) => {
    const entry = JSON.parse(line) as { msg?: string; addresses?: string[] }
    if (entry.msg === 'up') address = entry.addresses![0]
  })
  await waitFor(`burrow up (${hostname}) to join`, () => address !== undefined, 30_000)
  return { up, address: address! }
}

async function stopUp(up: ChildProcess | undefined): Promise<void> {
  if (!up || up.exitCode !== null) return
  const exited = new Promise((resolve) => up.once('exit', resolve))
  up.kill('SIGTERM')
  await exited
}

async function relayFetch(): Promise<BenchResult[]> {
  const relay = await startRelayProcess()
  const body = new Uint8Array(BODY_BYTES).fill(0x5a)
  const http = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length })
    response.end(body)
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const httpPort = (http.address() as AddressInfo).port
  const stateDir = mkdtempSync(join(tmpdir(), 'burrow-bench-up-'))
  const udpStateDir = mkdtempSync(join(tmpdir(), 'burrow-bench-up-udp-'))
  let up: ChildProcess | undefined
  let upUdp: ChildProcess | undefined
  let node: Burrow | undefined
  let udpNode: Burrow | undefined
  try {
    const key = createAuthKey(relay.dataDir, '--reusable')
    const controlURL = `http://127.0.0.1:${relay.port}`
    const relayed = await startUp(controlURL, key, 'bench-server', stateDir, httpPort, ['--no-direct'])
    up = relayed.up
    const address = relayed.address
    const udpServer = await startUp(controlURL, key, 'bench-server-udp', udpStateDir, httpPort, [])
    upUdp = udpServer.up
    node = await Burrow.start({ controlURL, authKey: key, hostname: 'bench-client', storage: 'memory', probeIntervalMs: 0, direct: false })
    await waitFor('the server peer', () => node!.peers().some((p) => p.hostname === 'bench-server' && p.online))
    const udpStartedAt = performance.now()
    udpNode = await Burrow.start({ controlURL, authKey: key, hostname: 'bench-client-udp', storage: 'memory' })
    const udpPeer = () => udpNode!.peers().find((p) => p.hostname === 'bench-server-udp')
    await waitFor('the server peer online', () => udpPeer()?.online === true, 30_000)
    const onlineMs = performance.now() - udpStartedAt
    await waitFor('the UDP direct path', () => udpPeer()?.path === 'direct' && udpPeer()?.directTransport === 'udp', 30_000)
    const upgradeMs = performance.now() - udpStartedAt
    const udpURL = `http://${udpServer.address}/`
    const udpFetch = (url: string) => udpNode!.fetch(url)
    const overlayURL = `http://${address}/`
    const directURL = `http://127.0.0.1:${httpPort}/`
    const overlayFetch = (url: string) => node!.fetch(url)
    // Warm-up: handshakes, TCP windows, JIT.
    await download(overlayFetch, overlayURL)
    await download(fetch, directURL)
    await download(udpFetch, udpURL)
    const overlay: number[] = []
    const direct: number[] = []
    const overUdp: number[] = []
    // Interleaved so that the other engineers' load on the shared machine hits all alike.
    for (let i = 0; i < ROUNDS; i++) {
      overlay.push(await download(overlayFetch, overlayURL))
      direct.push(await download(fetch, directURL))
      overUdp.push(await download(udpFetch, udpURL))
      if (udpPeer()?.directTransport !== 'udp') throw new Error(`the UDP pair left its direct path: ${JSON.stringify(udpPeer())}`)
    }
    const value = median(overlay)
    const baseline = median(direct)
    const results: BenchResult[] = [
      {
        name: 'node_peer.fetch_mb_per_s',
        value: Math.round(value * 10) / 10,
        unit: 'MB/s',
        baseline: Math.round(baseline * 10) / 10,
        ratio: Math.round((value / baseline) * 1000) / 1000,
        note: `median of ${ROUNDS} downloads of ${BODY_BYTES >> 20} MiB: Burrow peer → local relay (DERP/WebSocket) → burrow up → node:http; baseline is fetch() straight from the same server`,
      },
      {
        name: 'node_peer.udp_direct_mb_per_s',
        value: Math.round(median(overUdp) * 10) / 10,
        unit: 'MB/s',
        baseline: Math.round(value * 10) / 10,
        ratio: Math.round((median(overUdp) / value) * 1000) / 1000,
        note: `median of ${ROUNDS} downloads of ${BODY_BYTES >> 20} MiB: Burrow peer → plain UDP direct path (${udpPeer()?.endpoint}) → burrow up → node:http (${overUdp.map((r) => r.toFixed(1)).join(', ')}); baseline is node_peer.fetch_mb_per_s of the same run, over the relay (${overlay.map((r) => r.toFixed(1)).join(', ')})`,
      },
      {
        name: 'node_peer.udp_upgrade_ms',
        value: Math.round(upgradeMs),
        unit: 'ms',
        baseline: Math.round(onlineMs),
        ratio: Math.round((upgradeMs / onlineMs) * 1000) / 1000,
        note: 'a fresh Burrow peer: Burrow.start call until burrow up is its peer on the plain-UDP direct path (STUN, CallMeMaybe over the relay, probe pong), read every 10 ms; baseline: the same call until that peer is in its map and online (registration, DERP login)',
      },
    ]
    return results
  } finally {
    await node?.close()
    await udpNode?.close()
    await stopUp(up)
    await stopUp(upUdp)
    await relay.stop('SIGTERM')
    removeRelayDataDirs()
    http.closeAllConnections()
    http.close()
    rmSync(stateDir, { recursive: true, force: true })
    rmSync(udpStateDir, { recursive: true, force: true })
  }
}

export default bench
