// Coordination service costs, sans-IO (no sockets): how fast nodes register (proof check,
// address allocation, store writes, pushes) on SQLite and on a real PostgreSQL started here,
// how fast one change fans out to a large network, and how long a registration made through
// one relay takes to reach a node on another relay of the same PostgreSQL (NOTIFY → LISTEN →
// re-read → push), next to the same push within one relay.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '../src/crypto/index.ts'
import { NODE_UPDATE_INTERVAL_MS, nodeKeyText } from '../src/control/protocol.ts'
import { CoordinationService, type Output } from '../src/server/coordination/service.ts'
import { PostgresStore } from '../src/server/coordination/store-postgres.ts'
import { SqliteStore, type CoordinationStore, type StoreChange } from '../src/server/coordination/store.ts'
import { helloFor } from '../src/server/coordination/test-helpers.ts'
import { startPostgres } from '../test/helpers/postgres.ts'
import type { Bench, BenchResult } from './types.ts'

const NETWORK_SIZE = 1000
const PROPAGATION_ROUNDS = 40

/** Registers NETWORK_SIZE nodes through one service; returns registrations/s, the service and the output count. */
async function registerMany(store: CoordinationStore): Promise<{ perSecond: number; service: CoordinationService; pushes: number }> {
  const service = await CoordinationService.create({ store })
  const authKey = await service.createAuthKey({ reusable: true }, 0)
  const pairs = Array.from({ length: NETWORK_SIZE }, () => generateKeyPair())
  const hellos = pairs.map((pair, i) => {
    const [challenge] = service.open(i + 1, 0)
    return JSON.stringify(helloFor(pair, challenge!, { authKey, hostname: `node${i}` }))
  })
  let pushes = 0
  const start = performance.now()
  for (let i = 0; i < NETWORK_SIZE; i++) pushes += (await service.receive(i + 1, hellos[i]!, 1)).length
  return { perSecond: (NETWORK_SIZE * 1000) / (performance.now() - start), service, pushes }
}

function pushedTo(outputs: Output[], connection: number, nodeKey: string): boolean {
  return outputs.some((o) => o.kind === 'send' && o.connection === connection && o.message.type === 'peers' && o.message.upsert.some((p) => p.nodeKey === nodeKey))
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/**
 * A watcher is online on relay A; each round registers a new node through relay B (or, for the
 * baseline, through A itself) and times until A has the push to the watcher. A is driven like
 * http.ts drives it: every change report becomes one `storeChanged` step.
 */
async function propagation(url: string): Promise<{ crossMs: number; localMs: number }> {
  const storeA = await PostgresStore.open({ url })
  const storeB = await PostgresStore.open({ url })
  try {
    const a = await CoordinationService.create({ store: storeA })
    const b = await CoordinationService.create({ store: storeB })
    let waiting: { nodeKey: string; resolve: () => void } | undefined
    let chain = Promise.resolve()
    storeA.onChange((change: StoreChange) => {
      chain = chain.then(async () => {
        const out = await a.storeChanged(change, Date.now())
        if (waiting !== undefined && pushedTo(out, 1, waiting.nodeKey)) waiting.resolve()
      })
    })
    const authKey = await a.createAuthKey({ reusable: true }, 0)
    const [challenge] = a.open(1, 0)
    await a.receive(1, JSON.stringify(helloFor(generateKeyPair(), challenge!, { authKey, hostname: 'watcher' })), 1)
    let connection = 100
    const cross: number[] = []
    const local: number[] = []
    for (let round = 0; round < PROPAGATION_ROUNDS; round++) {
      const pair = generateKeyPair()
      const [bChallenge] = b.open(++connection, 2)
      const hello = JSON.stringify(helloFor(pair, bChallenge!, { authKey, hostname: `far${round}` }))
      const arrived = new Promise<void>((resolve) => (waiting = { nodeKey: nodeKeyText(pair.publicKey), resolve }))
      const start = performance.now()
      await b.receive(connection, hello, 3)
      await arrived
      cross.push(performance.now() - start)
      waiting = undefined

      const near = generateKeyPair()
      const [aChallenge] = a.open(++connection, 4)
      const nearHello = JSON.stringify(helloFor(near, aChallenge!, { authKey, hostname: `near${round}` }))
      const localStart = performance.now()
      const out = await a.receive(connection, nearHello, 5)
      if (!pushedTo(out, 1, nodeKeyText(near.publicKey))) throw new Error('the local registration pushed nothing to the watcher')
      local.push(performance.now() - localStart)
    }
    await chain
    return { crossMs: median(cross), localMs: median(local) }
  } finally {
    await storeA.close()
    await storeB.close()
  }
}

const bench: Bench = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-coord-bench-'))
  const sqlite = SqliteStore.open(dir)
  const postgres = await startPostgres()
  const results: BenchResult[] = []
  try {
    const { perSecond: sqlitePerSecond, service, pushes } = await registerMany(sqlite)

    // Every node is online now; one home-relay change goes to the 999 others.
    service.setRelayMap([{ url: 'wss://relay0.example/derp' }, { url: 'wss://relay1.example/derp' }])
    const rounds = 200
    let fanout: Output[] = []
    const fanStart = performance.now()
    for (let r = 0; r < rounds; r++) {
      // NODE_UPDATE_INTERVAL_MS apart in service time: the service gives a node one update token per interval.
      fanout = await service.receive(1, JSON.stringify({ type: 'update', homeRelay: { url: `wss://relay${r % 2}.example/derp` } }), 2 + r * NODE_UPDATE_INTERVAL_MS)
      if (!fanout.some((output) => output.kind === 'send' && output.connection !== 1)) throw new Error(`round ${r} pushed nothing: ${JSON.stringify(fanout[0])}`)
      for (const output of fanout) if (output.kind === 'send') JSON.stringify(output.message)
    }
    const fanMs = performance.now() - fanStart

    const pg = await PostgresStore.open({ url: await postgres.createDatabase('register_bench') })
    let pgPerSecond: number
    try {
      pgPerSecond = (await registerMany(pg)).perSecond
    } finally {
      await pg.close()
    }
    const { crossMs, localMs } = await propagation(await postgres.createDatabase('propagation_bench'))

    results.push(
      {
        name: 'coordination.register_per_s',
        value: sqlitePerSecond,
        unit: 'registrations/s',
        note: `${NETWORK_SIZE} nodes joining one network, proof + allocation + SQLite (WAL) + pushes (${pushes} outputs)`,
      },
      {
        name: 'coordination.register_per_s.postgres',
        value: pgPerSecond,
        unit: 'registrations/s',
        baseline: sqlitePerSecond,
        ratio: pgPerSecond / sqlitePerSecond,
        note: `the same ${NETWORK_SIZE} registrations on a local PostgreSQL 15 (fsync off, TCP loopback, one transaction each); baseline: SQLite above`,
      },
      {
        name: 'coordination.fanout_messages_per_s',
        value: (rounds * (fanout.length - 1) * 1000) / fanMs,
        unit: 'peer updates/s',
        note: `one node's home-relay change pushed to ${fanout.length - 1} online peers, serialised to JSON`,
      },
      {
        name: 'coordination.cross_relay_propagation_ms',
        value: crossMs,
        unit: 'ms',
        baseline: localMs,
        ratio: crossMs / localMs,
        note: `median of ${PROPAGATION_ROUNDS}: a node registered through relay B until relay A has the push for its watcher (commit, NOTIFY, LISTEN, re-read); baseline: a registration through A itself`,
      },
    )
    return results
  } finally {
    await sqlite.close()
    await postgres.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

export default bench
