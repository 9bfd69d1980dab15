// Relay regions between real processes: three `burrow relay`s, two meshed in region 1 and one in
// region 2, the coordination service on one of region 1's relays handing out the relay map
// (--relay-map FILE). Burrow nodes in this process spread across the regions; every pair pings
// and moves 5 MB byte-exact. Then the home relay of a node is killed (SIGKILL) in the middle of a
// 20 MB transfer: inside a region the node moves to the region's other relay, and when a region's
// only relay dies the node re-homes to the other region and its peers learn the new home through
// the coordination; the transfer completes byte-exact either way (WireGuard does not depend on
// the relay). No timing is asserted: each step waits for its condition.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Burrow } from '../src/node.ts'
import { toHex, randomBytes } from '../src/crypto/index.ts'
import { execFileSync } from 'node:child_process'
import { type BurrowProcess, spawnBurrow } from './helpers/burrow-process.ts'
import { createAuthKey, type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from './helpers/relay-process.ts'
import { startTwoRegionRelays } from './helpers/relay-map.ts'
import { peerOf, pingEachWay, verifiedTransfer } from './helpers/overlay-transfer.ts'

type Node = Awaited<ReturnType<typeof Burrow.start>>

const MESH_KEY = toHex(randomBytes(32))
const scratch = mkdtempSync(join(tmpdir(), 'burrow-regions-'))
const nodes: Node[] = []
const relays: RelayProcess[] = []
let r1a: RelayProcess
let r1b: RelayProcess
let r2: RelayProcess
let controlURL: string
let key: string
const derp = (port: number): string => `ws://127.0.0.1:${port}/derp`
let up: BurrowProcess | undefined
const upStateDir = join(scratch, 'up-state')

function burrowStatus(json: boolean): string {
  return execFileSync(process.execPath, ['bin/burrow.mjs', 'status', '--state-dir', upStateDir, ...(json ? ['--json'] : [])], {
    cwd: join(import.meta.dirname, '..'),
    encoding: 'utf8',
  })
}

async function start(hostname: string, homeRegion?: number, extra: Partial<Parameters<typeof Burrow.start>[0]> = {}): Promise<Node> {
  const node = await Burrow.start({ controlURL, authKey: key, hostname, storage: 'memory', direct: false, ...(homeRegion !== undefined ? { homeRegion } : {}), ...extra })
  nodes.push(node)
  return node
}

beforeAll(async () => {
  ;({ r1a, r1b, r2 } = await startTwoRegionRelays(scratch, MESH_KEY, { coordination: '1b' }))
  relays.push(r1a, r1b, r2)
  controlURL = `http://127.0.0.1:${r1b.port}`
  key = createAuthKey(r1b.dataDir, '--reusable')
}, 60_000)

afterAll(async () => {
  if (up && up.proc.exitCode === null) {
    up.proc.kill('SIGKILL')
    await up.exited
  }
  for (const node of nodes) await node.close().catch(() => {})
  for (const relay of relays) await relay.stop('SIGKILL')
  removeRelayDataDirs()
  rmSync(scratch, { recursive: true, force: true })
})

describe('relay regions', () => {
  let a: Node
  let b: Node
  let c: Node

  it('nodes home in the region they prefer or the one they measure fastest; every pair pings and moves 5 MB byte-exact across regions and the mesh', async () => {
    a = await start('a', 1)
    b = await start('b', 2)
    c = await start('c')
    expect(a.homeRelay).toMatchObject({ region: 1, code: 'one', name: 'Region One', relayURL: derp(r1a.port) })
    expect(a.relayURL).toBe(derp(r1a.port))
    expect(b.homeRelay).toMatchObject({ region: 2, code: 'two', relayURL: derp(r2.port) })
    // c chose by latency: some region of the map, with both measured.
    expect([1, 2]).toContain(c.homeRelay!.region)
    expect(Object.keys(c.homeRelay!.latencies).sort()).toEqual(['1', '2'])
    const all = [a, b, c]
    await waitFor('every node to see the others with their home regions', () =>
      all.every((n) => all.filter((m) => m !== n).every((m) => peerOf(n, m.hostname)?.online === true && peerOf(n, m.hostname)?.relayRegion === m.homeRelay?.region)),
    )
    expect(peerOf(a, 'b')).toMatchObject({ relayRegion: 2, relayURL: derp(r2.port) })
    expect(peerOf(b, 'a')).toMatchObject({ relayRegion: 1, relayURL: derp(r1a.port) })
    await pingEachWay([
      [a, b],
      [b, c],
      [c, a],
    ])
    let port = 7000
    for (const [x, y] of [
      [a, b],
      [b, c],
      [c, a],
    ] as const)
      await verifiedTransfer(x, y, 5 << 20, port, port++)
  }, 120_000)

  it('burrow up --home-region 2 homes in region 2 and burrow status shows the region and relay', async () => {
    up = spawnBurrow(['up', '--control', controlURL, '--authkey', key, '--hostname', 'daemon', '--state-dir', upStateDir, '--home-region', '2', '--no-direct'])
    await waitFor('burrow up to join', () => up!.logs.some((l) => l.msg === 'up') || up!.proc.exitCode !== null, 30_000)
    expect(
      up.logs.find((l) => l.msg === 'up'),
      up.stderr(),
    ).toMatchObject({ relayURL: derp(r2.port) })
    await waitFor('the status file to show the home region', () => {
      try {
        return (JSON.parse(burrowStatus(true)) as { self: { homeRegion?: { id: number } } }).self.homeRegion?.id === 2
      } catch {
        return false
      }
    })
    expect(burrowStatus(false)).toContain(`home relay: region 2 (two, Region Two) via ${derp(r2.port)}`)
    await waitFor('a to see the daemon', () => peerOf(a, 'daemon')?.online === true && peerOf(a, 'daemon')?.relayRegion === 2)
    expect(await a.ping('daemon')).toBeGreaterThan(0)
  }, 60_000)

  it('kill -9 of a node’s home relay during a 20 MB transfer: it moves to the region’s other (meshed) relay, the transfer completes byte-exact', async () => {
    await verifiedTransfer(a, b, 20 << 20, 31, 7100, {
      after: 2 << 20,
      run: async () => {
        await r1a.stop('SIGKILL')
      },
    })
    await waitFor('a to report its new relay', () => a.homeRelay?.relayURL === derp(r1b.port))
    expect(a.homeRelay).toMatchObject({ region: 1, code: 'one' })
    expect(a.relayURL).toBe(derp(r1b.port))
    expect(a.state).toBe('online')
    // Peers reach a through region 1's surviving relay.
    await waitFor('b to route a through r1b', () => peerOf(b, 'a')?.relayURL === derp(r1b.port))
    expect(await b.ping('a')).toBeGreaterThan(0)
  }, 120_000)

  it('kill -9 of a region’s only relay during a 20 MB transfer: the node re-homes to the next region, peers learn it, the transfer completes byte-exact', async () => {
    await verifiedTransfer(a, b, 20 << 20, 47, 7200, {
      after: 2 << 20,
      run: async () => {
        await r2.stop('SIGKILL')
      },
    })
    await waitFor('b to re-home to region 1', () => b.homeRelay?.region === 1)
    expect(b.homeRelay).toMatchObject({ region: 1, code: 'one', relayURL: derp(r1b.port) })
    await waitFor('a to learn b’s new home', () => peerOf(a, 'b')?.relayRegion === 1)
    await waitFor('c to learn b’s new home', () => peerOf(c, 'b')?.relayRegion === 1)
    expect(await a.ping('b')).toBeGreaterThan(0)
    expect(await c.ping('b')).toBeGreaterThan(0)
    await verifiedTransfer(c, b, 5 << 20, 53, 7201)
    // The `burrow up` node was homed in region 2 too: its status shows the new home.
    await waitFor('burrow status to show the daemon re-homed', () => burrowStatus(false).includes(`home relay: region 1 (one, Region One) via ${derp(r1b.port)}`), 30_000)
    await waitFor('a to learn the daemon’s new home', () => peerOf(a, 'daemon')?.relayRegion === 1)
    expect(await a.ping('daemon')).toBeGreaterThan(0)
  }, 120_000)

  it('on a lossy, jittery relay link (FaultInjector: 3 % loss, 5–25 ms delay each way) a node whose home relay is killed mid-transfer still re-homes and delivers 5 MB byte-exact', async () => {
    // Region 1 has only r1b left and region 2 none: bring a fresh relay into region 1's first slot.
    const revived = await startRelayProcess(['--stun-port', '0', '--mesh-key', MESH_KEY, '--mesh-with', `127.0.0.1:${r1b.port}`], { port: r1a.port })
    relays.push(revived)
    await waitFor('the revived relay to mesh', () => revived.logs.some((l) => l.msg === 'mesh peer connected'), 20_000)
    const faults = { seed: 7, send: { drop: 0.03, delayMs: 5, jitterMs: 20 }, receive: { drop: 0.03, delayMs: 5, jitterMs: 20 } }
    const lossy = await start('lossy', 1, { _debugRelayFaults: faults })
    expect(lossy.homeRelay).toMatchObject({ region: 1, relayURL: derp(revived.port) })
    await waitFor('c to see lossy', () => peerOf(c, 'lossy')?.online === true)
    await verifiedTransfer(lossy, c, 5 << 20, 71, 7300, {
      after: 1 << 20,
      run: async () => {
        await revived.stop('SIGKILL')
      },
    })
    await waitFor('lossy to report region 1’s other relay', () => lossy.homeRelay?.relayURL === derp(r1b.port))
    await waitFor('c to route lossy through r1b', () => peerOf(c, 'lossy')?.relayURL === derp(r1b.port))
    // 3 % loss each way on lossy's relay link: one echo or its reply may be dropped, so ping until one returns.
    let rtt: number | undefined
    for (let attempt = 0; attempt < 5 && rtt === undefined; attempt++) rtt = await c.ping('lossy').catch(() => undefined)
    expect(rtt).toBeGreaterThan(0)
  }, 180_000)
})
