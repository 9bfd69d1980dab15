// `npm run bench -- --only attack-coordination`: a legitimate pair of Burrow nodes exchanging
// byte-checked UDP round trips through a real `burrow relay` whose network has 850 registered
// nodes, while 10 members flood the coordination service with updates (each changing its disco
// key every 20 ms, far past what the service allows), against the same pair without the flood,
// in the same run (issue 17: goal ≥ 0.7).
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fillNodes } from '../test/helpers/coordination-fill.ts'
import { startLegitPair } from '../test/helpers/legit-pair.ts'
import { createAuthKey, removeRelayDataDirs, startRelayProcess } from '../test/helpers/relay-process.ts'
import type { Bench } from './types.ts'

const MAP_NODES = 850
const ATTACKERS = 10
const ROUND_MS = 5_000
const ROUNDS = 3

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const bench: Bench = async () => {
  let relay = await startRelayProcess()
  await relay.stop('SIGTERM')
  await fillNodes(relay.dataDir, MAP_NODES - 2 - ATTACKERS)
  relay = await startRelayProcess([], { dataDir: relay.dataDir, port: relay.port })
  const controlURL = new URL(relay.url).origin
  let pair: Awaited<ReturnType<typeof startLegitPair>> | undefined
  let flooder: ChildProcess | undefined
  try {
    const key = createAuthKey(relay.dataDir, '--reusable')
    pair = await startLegitPair(controlURL, key)
    // The attackers run in their own process: their CPU is theirs, as on another machine.
    const root = join(import.meta.dirname, '..')
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/update-flood.ts', controlURL, key, String(ATTACKERS), '20'], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    flooder = child
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => line === 'ready' && resolve())
      child.once('exit', (code) => reject(new Error(`the flood process exited with ${code} before its members joined`)))
    })
    const quiet: number[] = []
    const attacked: number[] = []
    let stateChanges = 0
    // Interleaved, so the other load on a shared machine hits both alike.
    for (let round = 0; round < ROUNDS; round++) {
      const calm = await pair.run(ROUND_MS)
      quiet.push((calm.roundTrips * 1000) / calm.elapsedMs)
      child.stdin!.write('flood\n')
      const storm = await pair.run(ROUND_MS)
      child.stdin!.write('stop\n')
      attacked.push((storm.roundTrips * 1000) / storm.elapsedMs)
      stateChanges += calm.stateChanges.length + storm.stateChanges.length
      if (calm.corrupted + storm.corrupted > 0) throw new Error('the legit pair got corrupted answers')
    }
    const value = median(attacked)
    const baseline = median(quiet)
    return [
      {
        name: 'relay.under_attack_ratio.update_flood',
        value: Math.round(value * 10) / 10,
        unit: 'round trips/s',
        baseline: Math.round(baseline * 10) / 10,
        ratio: Math.round((value / baseline) * 1000) / 1000,
        note: `median of ${ROUNDS}×${ROUND_MS / 1000} s: legit pair's UDP round trips (256 B, byte-checked) via a local relay with ${MAP_NODES} registered nodes while ${ATTACKERS} members send updates every 20 ms; baseline: same pair, no flood; ${stateChanges} reconnects`,
      },
    ]
  } finally {
    if (flooder && flooder.exitCode === null) {
      const exited = new Promise((resolve) => flooder!.once('exit', resolve))
      flooder.stdin!.end()
      await exited
    }
    await pair?.close()
    await relay.stop('SIGTERM')
    removeRelayDataDirs()
  }
}

export default bench
