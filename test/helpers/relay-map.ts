// The relay map the region tests share: region 1 with two relays (1a, 1b, meshed by the test) and
// region 2 with one (2a), each on a free loopback port, written as a `--relay-map` file.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from './ports.ts'
import { type RelayProcess, startRelayProcess, waitFor } from './relay-process.ts'

export async function writeTwoRegionRelayMap(dir: string): Promise<{ mapFile: string; p1a: number; p1b: number; p2: number }> {
  const [p1a, p1b, p2] = [await freePort(), await freePort(), await freePort()]
  const mapFile = join(dir, 'relay-map.json')
  const regions = [
    {
      id: 1,
      code: 'one',
      name: 'Region One',
      nodes: [
        { name: '1a', url: `http://127.0.0.1:${p1a}` },
        { name: '1b', url: `http://127.0.0.1:${p1b}` },
      ],
    },
    { id: 2, code: 'two', name: 'Region Two', nodes: [{ name: '2a', url: `http://127.0.0.1:${p2}` }] },
  ]
  writeFileSync(mapFile, JSON.stringify({ regions }))
  return { mapFile, p1a, p1b, p2 }
}

/**
 * The region tests' relays on that map: 1a and 1b meshed with `meshKey`, 2a alone, all with STUN
 * off. `coordination` says which relays hand out the map: every one (several relays on one
 * database, whose args come in `shared`), or 1b only (the one the nodes register with).
 */
export async function startTwoRegionRelays(
  dir: string,
  meshKey: string,
  options: { coordination: 'all' | '1b'; shared?: string[] },
): Promise<{ r1a: RelayProcess; r1b: RelayProcess; r2: RelayProcess }> {
  const { mapFile, p1a, p1b, p2 } = await writeTwoRegionRelayMap(dir)
  const common = ['--stun-port', '0', ...(options.shared ?? []), ...(options.coordination === 'all' ? ['--relay-map', mapFile] : [])]
  const started: RelayProcess[] = []
  try {
    const start = async (args: string[], port: number): Promise<RelayProcess> => {
      const relay = await startRelayProcess(args, { port })
      started.push(relay)
      return relay
    }
    const r1a = await start([...common, '--mesh-key', meshKey, '--mesh-with', `127.0.0.1:${p1b}`], p1a)
    const r1b = await start([...common, '--mesh-key', meshKey, '--mesh-with', `127.0.0.1:${p1a}`, ...(options.coordination === '1b' ? ['--relay-map', mapFile] : [])], p1b)
    const r2 = await start(common, p2)
    await waitFor('the region 1 mesh', () => [r1a, r1b].every((r) => r.logs.some((l) => l.msg === 'mesh peer connected')), 30_000)
    return { r1a, r1b, r2 }
  } catch (error) {
    for (const relay of started) await relay.stop('SIGKILL')
    throw error
  }
}
