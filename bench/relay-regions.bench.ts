// `npm run bench -- --only relay-regions`: relay regions between real `burrow relay` processes.
//  - relay.mesh_forward_mb_per_s: a client on relay A sends to a client on relay B of the same
//    region (A hands the packets to B over the mesh, ForwardPacket); baseline: both clients on A.
//    Alternating slices in the same run, medians.
//  - relay.failover_ms: two Burrow nodes, one homed on a relay of a two-relay region; that relay
//    is killed (SIGKILL) and the time until a ping between the nodes answers again is measured
//    (a ping every 20 ms after the last one failed, each with a 100 ms timeout: the figure has that resolution). Baseline: one ping round trip in the same
//    setup before the kill.
//  - relay.failover_region_ms: the same with the home region's only relay killed: the node
//    re-homes to another region and its peer learns the new home through the coordination.
import { randomBytes, generateKeyPair, toHex } from '../src/crypto/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { Burrow } from '../src/node.ts'
import { createAuthKey, removeRelayDataDirs, startRelayProcess, waitFor, type RelayProcess } from '../test/helpers/relay-process.ts'
import { freePort } from '../test/helpers/tailscale-go.ts'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Bench, BenchResult } from './types.ts'

const PACKET = 1420
const WINDOW = 512
const SLICE_MS = 500
const SLICES = Number(process.env.BURROW_BENCH_REGIONS_SLICES ?? 7)
const FAILOVERS = Number(process.env.BURROW_BENCH_FAILOVERS ?? 3)

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** MB/s from a client on `fromUrl` to one on `toUrl` over one slice, at most WINDOW packets in flight. */
async function slice(fromUrl: string, toUrl: string): Promise<number> {
  const a = generateKeyPair()
  const b = generateKeyPair()
  const dial = nodeWebSocketDialer()
  const ca = new DerpConnection({ url: fromUrl, privateKey: a.privateKey, dial }).start()
  const cb = new DerpConnection({ url: toUrl, privateKey: b.privateKey, dial }).start()
  try {
    await waitFor('bench clients', () => ca.isConnected && cb.isConnected)
    const payload = new Uint8Array(PACKET).fill(7)
    // The far relay learns of B through the mesh watch: wait until a probe packet arrives.
    let received = 0
    cb.on('packet', () => {
      received++
      if (received % 64 === 0) pump()
    })
    let sent = 0
    let pumping = false
    const pump = (): void => {
      while (pumping && sent - received < WINDOW) {
        ca.send(b.publicKey, payload)
        sent++
      }
    }
    const deadline = Date.now() + 5000
    while (received === 0 && Date.now() < deadline) {
      ca.send(b.publicKey, payload)
      sent++
      await sleep(20)
    }
    if (received === 0) throw new Error(`no packet from ${fromUrl} reached ${toUrl}`)
    sent = received
    pumping = true
    const start = performance.now()
    const startReceived = received
    pump()
    await sleep(SLICE_MS)
    pumping = false
    const elapsed = performance.now() - start
    return ((received - startReceived) * PACKET) / 1e6 / (elapsed / 1000)
  } finally {
    ca.close()
    cb.close()
  }
}

async function meshForward(a: RelayProcess, b: RelayProcess): Promise<BenchResult> {
  const mesh: number[] = []
  const single: number[] = []
  for (let i = 0; i < SLICES; i++) {
    single.push(await slice(a.url, a.url))
    mesh.push(await slice(a.url, b.url))
  }
  const value = median(mesh)
  const baseline = median(single)
  return {
    name: 'relay.mesh_forward_mb_per_s',
    value,
    unit: 'MB/s',
    baseline,
    ratio: value / baseline,
    note: `${PACKET}-byte packets, client on relay A → client on relay B of the same region (mesh ForwardPacket); baseline: both clients on relay A; medians of ${SLICES} alternating ${SLICE_MS} ms slices`,
  }
}

async function failover(): Promise<BenchResult[]> {
  const scratch = mkdtempSync(join(tmpdir(), 'burrow-bench-regions-'))
  const relays: RelayProcess[] = []
  const nodes: Array<Awaited<ReturnType<typeof Burrow.start>>> = []
  try {
    const meshKey = toHex(randomBytes(32))
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()]
    const [pControl, p3, ...region2] = ports as [number, number, number, number]
    const mapFile = join(scratch, 'map.json')
    writeFileSync(
      mapFile,
      JSON.stringify({
        regions: [
          { id: 1, code: 'control', nodes: [{ url: `http://127.0.0.1:${pControl}` }] },
          { id: 2, code: 'pair', nodes: region2.map((p) => ({ url: `http://127.0.0.1:${p}` })) },
          { id: 3, code: 'single', nodes: [{ url: `http://127.0.0.1:${p3}` }] },
        ],
      }),
    )
    const control = await startRelayProcess(['--stun-port', '0', '--relay-map', mapFile], { port: pControl })
    relays.push(control)
    const key = createAuthKey(control.dataDir, '--reusable')
    const controlURL = `http://127.0.0.1:${pControl}`
    const times: number[] = []
    const regionTimes: number[] = []
    const rtts: number[] = []
    /** Kills a's home relay (of `region`) and returns ms until b's pings to a answer again. */
    const killAndWait = async (a: Awaited<ReturnType<typeof Burrow.start>>, b: Awaited<ReturnType<typeof Burrow.start>>, home: RelayProcess): Promise<number> => {
      const killedAt = performance.now()
      await home.stop('SIGKILL')
      for (;;) {
        const ok = await b.ping(a.addresses[0]!, { timeout: 100 }).then(
          () => true,
          () => false,
        )
        if (ok) return performance.now() - killedAt
        if (performance.now() - killedAt > 30_000) throw new Error('traffic did not flow again within 30 s')
        await sleep(20)
      }
    }
    for (let round = 0; round < FAILOVERS; round++) {
      // Fresh relays each round (the killed ones are gone for good): a meshed pair for region 2, one for region 3.
      const pair: RelayProcess[] = []
      for (const [i, port] of region2.entries()) {
        const other = region2[1 - i]!
        pair.push(await startRelayProcess(['--stun-port', '0', '--mesh-key', meshKey, '--mesh-with', `127.0.0.1:${other}`], { port }))
      }
      const single = await startRelayProcess(['--stun-port', '0'], { port: p3 })
      relays.push(...pair, single)
      await waitFor('the region 2 mesh', () => pair.every((r) => r.logs.some((l) => l.msg === 'mesh peer connected')), 20_000)
      const a = await Burrow.start({ controlURL, authKey: key, hostname: `fa${round}`, storage: 'memory', direct: false, homeRegion: 2 })
      const c = await Burrow.start({ controlURL, authKey: key, hostname: `fc${round}`, storage: 'memory', direct: false, homeRegion: 3 })
      const b = await Burrow.start({ controlURL, authKey: key, hostname: `fb${round}`, storage: 'memory', direct: false, homeRegion: 1 })
      nodes.push(a, b, c)
      await waitFor('the peers', () => [a, c].every((n) => b.peers().some((p) => p.hostname === n.hostname && p.online && p.relayRegion === n.homeRelay?.region)), 20_000)
      await b.ping(a.addresses[0]!, { timeout: 5000 })
      await b.ping(c.addresses[0]!, { timeout: 5000 })
      rtts.push(await b.ping(a.addresses[0]!, { timeout: 5000 }))
      const home = pair.find((r) => a.relayURL === `ws://127.0.0.1:${r.port}/derp`)
      if (!home) throw new Error(`node a is not on region 2's relays: ${a.relayURL}`)
      times.push(await killAndWait(a, b, home))
      regionTimes.push(await killAndWait(c, b, single))
      for (const n of [a, b, c]) await n.close()
      for (const r of [...pair, single]) await r.stop('SIGKILL')
    }
    const regionResult: BenchResult = {
      name: 'relay.failover_region_ms',
      value: median(regionTimes),
      unit: 'ms',
      baseline: median(rtts),
      ratio: median(regionTimes) / median(rtts),
      note: `the home region's only relay killed with SIGKILL → the node re-homes to another region, its peer learns it via the coordination → first answered ping; median of ${FAILOVERS} (all: ${regionTimes.map((t) => t.toFixed(0)).join(', ')} ms); baseline: a ping round trip before the kill`,
    }
    const inRegion: BenchResult = {
      name: 'relay.failover_ms',
      value: median(times),
      unit: 'ms',
      baseline: median(rtts),
      ratio: median(times) / median(rtts),
      note: `home relay (one of two meshed relays of its region) killed with SIGKILL → first answered ping between the two nodes; median of ${FAILOVERS} (all: ${times.map((t) => t.toFixed(0)).join(', ')} ms); baseline: a ping round trip before the kill`,
    }
    return [inRegion, regionResult]
  } finally {
    for (const n of nodes) await n.close().catch(() => {})
    for (const r of relays) await r.stop('SIGKILL')
    rmSync(scratch, { recursive: true, force: true })
  }
}

const bench: Bench = async () => {
  const results: BenchResult[] = []
  const meshKey = toHex(randomBytes(32))
  const [pa, pb] = [await freePort(), await freePort()]
  const a = await startRelayProcess(['--stun-port', '0', '--mesh-key', meshKey, '--mesh-with', `127.0.0.1:${pb}`], { port: pa })
  const b = await startRelayProcess(['--stun-port', '0', '--mesh-key', meshKey, '--mesh-with', `127.0.0.1:${pa}`], { port: pb })
  try {
    await waitFor('the mesh', () => [a, b].every((r) => r.logs.some((l) => l.msg === 'mesh peer connected')), 20_000)
    results.push(await meshForward(a, b))
  } finally {
    await a.stop('SIGKILL')
    await b.stop('SIGKILL')
  }
  results.push(...(await failover()))
  removeRelayDataDirs()
  return results
}

export default bench
