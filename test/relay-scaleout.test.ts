// Scale-out (issue 15) between real processes: three `burrow relay`s — two meshed in region 1,
// one in region 2 — all serving the coordination from one real PostgreSQL (--database, the same
// --relay-map file on each, as an operator would deploy them). Burrow nodes in this process
// register through different relays: a through relay 1a, b through relay 1b, c through relay 2.
// A node registered through relay 2 shows up in the peer map of a node on relay 1a (polled; the
// bench coordination.cross_relay_propagation_ms measures how fast), and every pair pings and
// moves 5 MB byte-exact. Then relay 1a is killed: the node registered through 1b re-homes and the
// region 2 node learns it through the database, and the node registered through 1a goes offline
// on both surviving relays. No timing is asserted: each step waits for its condition.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes, toHex } from '../src/crypto/index.ts'
import { Burrow } from '../src/node.ts'
import { startPostgres, type PostgresServer } from './helpers/postgres.ts'
import { createAuthKey, type RelayProcess, removeRelayDataDirs, waitFor } from './helpers/relay-process.ts'
import { startTwoRegionRelays } from './helpers/relay-map.ts'
import { peerOf, pingEachWay, verifiedTransfer } from './helpers/overlay-transfer.ts'

type Node = Awaited<ReturnType<typeof Burrow.start>>

const MESH_KEY = toHex(randomBytes(32))
const scratch = mkdtempSync(join(tmpdir(), 'burrow-scaleout-'))
const nodes: Node[] = []
const relays: RelayProcess[] = []
let postgres: PostgresServer
let r1a: RelayProcess
let r1b: RelayProcess
let r2: RelayProcess
let key: string
const derp = (port: number): string => `ws://127.0.0.1:${port}/derp`
const control = (relay: RelayProcess): string => `http://127.0.0.1:${relay.port}`

async function start(via: RelayProcess, hostname: string, homeRegion: number): Promise<Node> {
  const node = await Burrow.start({ controlURL: control(via), authKey: key, hostname, storage: 'memory', direct: false, homeRegion })
  nodes.push(node)
  return node
}

beforeAll(async () => {
  postgres = await startPostgres()
  const database = await postgres.createDatabase(`scaleout_${process.pid}`)
  // Every relay: the same database, the same relay map.
  ;({ r1a, r1b, r2 } = await startTwoRegionRelays(scratch, MESH_KEY, { coordination: 'all', shared: ['--database', database] }))
  relays.push(r1a, r1b, r2)
  // Made through the CLI against the database, as an operator would; every relay accepts it.
  key = createAuthKey(r1a.dataDir, '--reusable', '--database', database)
}, 180_000)

afterAll(async () => {
  for (const node of nodes) await node.close().catch(() => {})
  for (const relay of relays) await relay.stop('SIGKILL')
  removeRelayDataDirs()
  await postgres?.stop()
  rmSync(scratch, { recursive: true, force: true })
})

describe('three relays in two regions on one PostgreSQL', () => {
  let a: Node
  let b: Node
  let c: Node

  it('a node registered through the region 2 relay appears, online and homed in region 2, in the peer map of a node registered through relay 1a', async () => {
    a = await start(r1a, 'a', 1)
    expect(a.homeRelay).toMatchObject({ region: 1, code: 'one', name: 'Region One', relayURL: derp(r1a.port) })
    c = await start(r2, 'c', 2)
    expect(c.homeRelay).toMatchObject({ region: 2, code: 'two', relayURL: derp(r2.port) })
    await waitFor('c in a’s peer map', () => peerOf(a, 'c') !== undefined, 60_000)
    await waitFor('c shown online and homed in region 2 on a', () => peerOf(a, 'c')?.online === true && peerOf(a, 'c')?.relayRegion === 2, 60_000)
    // a's relay (1a) maps c's home relay to region 2: the relays hand out the same map.
    expect(peerOf(a, 'c')).toMatchObject({ hostname: 'c', addresses: c.addresses, relayRegion: 2, relayURL: derp(r2.port) })
    // And the other way round: a, registered on relay 1a, is in c's map on relay 2.
    await waitFor('a shown online and homed in region 1 on c', () => peerOf(c, 'a')?.online === true && peerOf(c, 'a')?.relayRegion === 1, 60_000)
    expect(peerOf(c, 'a')).toMatchObject({ hostname: 'a', addresses: a.addresses, relayURL: derp(r1a.port) })
  }, 120_000)

  it('nodes registered through three different relays get distinct addresses from one network, see each other with their home relays, and every pair pings and moves 5 MB byte-exact', async () => {
    b = await start(r1b, 'b', 1)
    expect(b.homeRelay).toMatchObject({ region: 1, code: 'one' })
    expect([derp(r1a.port), derp(r1b.port)]).toContain(b.homeRelay!.relayURL)
    const all = [a, b, c]
    expect(new Set(all.map((n) => n.addresses[0])).size).toBe(3)
    await waitFor(
      'every node to see the others online with their home regions',
      () => all.every((n) => all.filter((m) => m !== n).every((m) => peerOf(n, m.hostname)?.online === true && peerOf(n, m.hostname)?.relayURL === m.homeRelay?.relayURL)),
      60_000,
    )
    await pingEachWay([
      [a, b],
      [b, c],
      [c, a],
    ])
    let port = 7400
    for (const [x, y] of [
      [a, b],
      [b, a],
      [b, c],
      [c, b],
      [c, a],
      [a, c],
    ] as const)
      await verifiedTransfer(x, y, 5 << 20, port, port++)
  }, 240_000)
  it('kill -9 of relay 1a: the node registered through relay 1b re-homes to 1b, the region 2 node learns it through the shared database, and they still ping and move 5 MB byte-exact', async () => {
    await r1a.stop('SIGKILL')
    await waitFor('b to re-home to relay 1b', () => b.homeRelay?.relayURL === derp(r1b.port), 60_000)
    expect(b.homeRelay).toMatchObject({ region: 1, code: 'one' })
    // b's coordination is on 1b and c's on relay 2: the change travels through PostgreSQL.
    await waitFor('c to route b through relay 1b', () => peerOf(c, 'b')?.relayURL === derp(r1b.port) && peerOf(c, 'b')?.online === true, 60_000)
    expect(await c.ping('b')).toBeGreaterThan(0)
    expect(await b.ping('c')).toBeGreaterThan(0)
    await verifiedTransfer(c, b, 5 << 20, 91, 7500)
    await verifiedTransfer(b, c, 5 << 20, 92, 7501)
  }, 180_000)
  it('a node whose coordination relay (1a) was killed is shown offline to the nodes on both surviving relays', async () => {
    // Nobody told the database that a left: the surviving relays find out when its presence
    // lapses (about a minute; waited for, not timed).
    await waitFor('a shown offline on c (relay 2)', () => peerOf(c, 'a')?.online === false, 200_000)
    await waitFor('a shown offline on b (relay 1b)', () => peerOf(b, 'a')?.online === false, 200_000)
    expect(peerOf(c, 'a')).toMatchObject({ hostname: 'a', addresses: a.addresses })
  }, 240_000)
})
