// Coordination service costs, sans-IO (no sockets): how fast nodes register (proof check,
// address allocation, SQLite writes) and how fast one change fans out to a large network.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '../src/crypto/index.ts'
import { CoordinationService, type Output } from '../src/server/coordination/service.ts'
import { CoordinationStore } from '../src/server/coordination/store.ts'
import { helloFor } from '../src/server/coordination/test-helpers.ts'
import type { Bench } from './types.ts'

const NETWORK_SIZE = 1000

const bench: Bench = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-coord-bench-'))
  const store = CoordinationStore.open(dir)
  try {
    const service = new CoordinationService({ store })
    const authKey = service.createAuthKey({ reusable: true }, 0)
    const pairs = Array.from({ length: NETWORK_SIZE }, () => generateKeyPair())
    const hellos = pairs.map((pair, i) => {
      const [challenge] = service.open(i + 1, 0)
      return JSON.stringify(helloFor(pair, challenge!, { authKey, hostname: `node${i}` }))
    })
    let pushes = 0
    const start = performance.now()
    for (let i = 0; i < NETWORK_SIZE; i++) pushes += service.receive(i + 1, hellos[i]!, 1).length
    const registerMs = performance.now() - start

    // Every node is online now; one home-relay change goes to the 999 others.
    const rounds = 200
    let fanout: Output[] = []
    const fanStart = performance.now()
    for (let r = 0; r < rounds; r++) {
      // 200 ms apart in service time: the service rate-limits a node to 10 updates per second.
      fanout = service.receive(1, JSON.stringify({ type: 'update', homeRelay: { url: `wss://relay${r % 2}.example/derp` } }), 2 + r * 200)
      if (!fanout.some((output) => output.kind === 'send' && output.connection !== 1)) throw new Error(`round ${r} pushed nothing: ${JSON.stringify(fanout[0])}`)
      for (const output of fanout) if (output.kind === 'send') JSON.stringify(output.message)
    }
    const fanMs = performance.now() - fanStart
    return [
      {
        name: 'coordination.register_per_s',
        value: (NETWORK_SIZE * 1000) / registerMs,
        unit: 'registrations/s',
        note: `${NETWORK_SIZE} nodes joining one network, proof + allocation + SQLite (WAL) + pushes (${pushes} outputs)`,
      },
      {
        name: 'coordination.fanout_messages_per_s',
        value: (rounds * (fanout.length - 1) * 1000) / fanMs,
        unit: 'peer updates/s',
        note: `one node's home-relay change pushed to ${fanout.length - 1} online peers, serialised to JSON`,
      },
    ]
  } finally {
    store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

export default bench
