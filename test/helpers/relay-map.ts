// The relay map the region tests share: region 1 with two relays (1a, 1b, meshed by the test) and
// region 2 with one (2a), each on a free loopback port, written as a `--relay-map` file.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from './headscale.ts'

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
