// `npm run bench -- --only attack`: relay.under_attack_ratio, issue 17. Two Burrow nodes (in this
// process) ping each other through a real `burrow relay` process, one echo at a time; a hostile
// client in its own process then floods. Each figure is the pair's round trips per second during
// the attack divided by the same pair's rate measured just before it, in the same run (goal ≥ 0.7).
//   ping flood:      a DERP client sends Ping frames as fast as the relay takes them
//   handshake flood: a member sends the victim WireGuard initiations with a valid MAC1, as fast
//                    as the relay forwards them (every member knows every node key)
import { generateKeyPair, parseKey, toHex } from '../src/crypto/index.ts'
import { Burrow } from '../src/node.ts'
import { Tunnel } from '../src/tunnel/index.ts'
import { type Attacker, startAttacker } from '../test/helpers/attack.ts'
import { createAuthKey, removeRelayDataDirs, startRelayProcess, waitFor } from '../test/helpers/relay-process.ts'
import { readFileSync } from 'node:fs'
import type { Bench, BenchResult } from './types.ts'

const MEASURE_MS = Number(process.env.BURROW_BENCH_ATTACK_MS ?? 2000)
const ROUNDS = Number(process.env.BURROW_BENCH_ATTACK_ROUNDS ?? 3)

/** USER_HZ: Linux reports process times in 1/100 s on every architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100

/** User + system CPU time of a process so far, ms (from /proc/<pid>/stat). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND
}

async function roundTripsPerSecond(ping: () => Promise<number>, ms: number): Promise<number> {
  let count = 0
  const start = performance.now()
  while (performance.now() - start < ms) {
    await ping()
    count++
  }
  return (count * 1000) / (performance.now() - start)
}

const bench: Bench = async () => {
  const relay = await startRelayProcess()
  const nodes: Burrow[] = []
  const results: BenchResult[] = []
  try {
    const authKey = createAuthKey(relay.dataDir, '--reusable')
    const controlURL = `http://127.0.0.1:${relay.port}`
    const victim = await Burrow.start({ controlURL, authKey, hostname: 'victim', storage: 'memory' })
    nodes.push(victim)
    const laptop = await Burrow.start({ controlURL, authKey, hostname: 'laptop', storage: 'memory' })
    nodes.push(laptop)
    await waitFor('the victim online', () => laptop.peers().some((peer) => peer.hostname === 'victim' && peer.online), 30_000)
    const ping = () => laptop.ping('victim', { timeout: 10_000 })
    for (let i = 0; i < 50; i++) await ping() // warm-up: handshake done, JIT warm

    const victimKey = parseKey(victim.nodeKey)
    const forger = new Tunnel({ privateKey: generateKeyPair().privateKey })
    const [initiation] = forger.send(forger.addPeer({ publicKey: victimKey }), new Uint8Array(20), 0)
    const attacks: Array<{ name: string; note: string; start: () => Promise<Attacker> }> = [
      { name: 'ping_flood', note: 'a DERP client flooding Ping frames', start: () => startAttacker('ping', relay.url) },
      {
        name: 'handshake_flood',
        note: 'a member flooding the victim with MAC1-valid WireGuard initiations',
        start: () => startAttacker('packets', relay.url, toHex(victimKey), toHex(initiation!)),
      },
    ]
    for (const attack of attacks) {
      // The machine is shared and its load drifts: quiet and attacked windows alternate, and the
      // ratio compares their totals, so drift hits both sides alike.
      let quietTrips = 0
      let loudTrips = 0
      let sentPerSecond = 0
      let relayCpu = 0
      let attackerCpu = 0
      let quietRelayCpu = 0
      for (let round = 0; round < ROUNDS; round++) {
        const quietStart = cpuMs(relay.proc.pid!)
        quietTrips += await roundTripsPerSecond(ping, MEASURE_MS)
        quietRelayCpu += (cpuMs(relay.proc.pid!) - quietStart) / (MEASURE_MS / 1000) / ROUNDS
        const attacker = await attack.start()
        try {
          await new Promise((resolve) => setTimeout(resolve, 500)) // let the flood build up
          const sentBefore = attacker.sent
          const started = performance.now()
          const relayBefore = cpuMs(relay.proc.pid!)
          const attackerBefore = cpuMs(attacker.proc.pid!)
          loudTrips += await roundTripsPerSecond(ping, MEASURE_MS)
          const seconds = (performance.now() - started) / 1000
          sentPerSecond += (attacker.sent - sentBefore) / seconds / ROUNDS
          relayCpu += (cpuMs(relay.proc.pid!) - relayBefore) / seconds / ROUNDS
          attackerCpu += (cpuMs(attacker.proc.pid!) - attackerBefore) / seconds / ROUNDS
        } finally {
          await attacker.stop()
        }
      }
      const quiet = quietTrips / ROUNDS
      const loud = loudTrips / ROUNDS
      results.push({
        name: `relay.under_attack_ratio.${attack.name}`,
        value: loud,
        unit: 'round trips/s',
        baseline: quiet,
        ratio: loud / quiet,
        note:
          `the same pair without ${attack.note}, in alternating ${MEASURE_MS / 1000} s windows (${ROUNDS} each; the attacker got ` +
          `${Math.round(sentPerSecond)} frames/s into the relay's socket after its first burst; relay CPU ${Math.round(relayCpu)} ms/s ` +
          `under attack, ${Math.round(quietRelayCpu)} ms/s without; attacker CPU ${Math.round(attackerCpu)} ms/s); goal ≥ 0.7`,
      })
    }
  } finally {
    for (const node of nodes) await node.close()
    await relay.stop('SIGKILL')
    removeRelayDataDirs()
  }
  return results
}

export default bench
