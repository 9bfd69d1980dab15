// TailnetControlPlane against a scripted in-memory control server: a garbled map message (bad
// JSON, a length prefix no real netmap has) is a clear error, the stream is reopened, and the
// node keeps its netmap and goes on with the next stream.
import { afterEach, describe, expect, it } from 'vitest'
import { BurrowError } from '../../burrow-errors.ts'
import { generateKeyPair, toHex } from '../../crypto/index.ts'
import type { ControlPlaneError, ControlPlaneState, Netmap } from '../control-plane.ts'
import { TailnetControlPlane } from './control-plane.ts'
import type { MapResponse, Node } from './tailcfg.ts'
import { fakeControl, fakeControlKey, frameMessage } from './testing/fake-control.ts'

const hex = (n: number) => n.toString(16).padStart(2, '0').repeat(32)
function node(id: number, name: string): Node {
  return { ID: id, Name: `${name}.tail.test.`, Key: `nodekey:${hex(id)}`, DiscoKey: `discokey:${hex(id)}`, Addresses: [`100.64.0.${id}/32`], HomeDERP: 900, Online: true }
}
const DERP_MAP: MapResponse['DERPMap'] = {
  Regions: {
    '900': { RegionID: 900, RegionCode: 'lab', RegionName: 'Lab', Nodes: [{ Name: '900a', RegionID: 900, HostName: '10.0.0.2', IPv4: '10.0.0.2', STUNPort: -1, DERPPort: 3340 }] },
  },
}
const keys = () => ({ node: generateKeyPair(), disco: generateKeyPair(), machine: generateKeyPair() })

const planes: TailnetControlPlane[] = []
afterEach(() => {
  for (const plane of planes.splice(0)) plane.stop()
})

/** A control plane whose map streams send, in turn, what `script(ourNode)[i]` lists (then stay open). */
function scripted(script: (self: Node) => Buffer[][]) {
  const self = keys()
  const selfNode: Node = { ...node(1, 'self'), Key: `nodekey:${toHex(self.node.publicKey)}` }
  const streams = script(selfNode)
  let mapCalls = 0
  const fake = fakeControl((stream, headers) => {
    stream.respond({ ':status': 200 })
    if (headers[':path'] === '/machine/register') {
      stream.end(JSON.stringify({ MachineAuthorized: true, User: { ID: 1 }, Login: { ID: 1 } }))
      return
    }
    const script = streams[Math.min(mapCalls++, streams.length - 1)]!
    for (const chunk of script) stream.write(chunk)
  })
  const plane = new TailnetControlPlane({
    controlURL: 'http://control.test',
    controlKey: `mkey:${toHex(fakeControlKey.publicKey)}`,
    dialer: fake.dialer,
    keys: self,
    hostname: 'self',
    authKey: 'hskey-auth-test',
  })
  planes.push(plane)
  const netmaps: Netmap[] = []
  const errors: ControlPlaneError[] = []
  const states: ControlPlaneState[] = []
  plane.on('netmap', (netmap) => netmaps.push(netmap))
  plane.on('error', (error) => errors.push(error))
  plane.on('state', (state) => states.push(state))
  return { plane, netmaps, errors, states, mapCalls: () => mapCalls }
}

const until = (check: () => boolean): Promise<void> =>
  new Promise((resolve) => {
    const tick = (): void => (check() ? resolve() : void setTimeout(tick, 5))
    tick()
  })

describe('TailnetControlPlane with a garbled map stream', () => {
  for (const [what, garbage, message] of [
    ['bad JSON', frameMessage('{"PeersChanged": [nope'), /garbled map message/],
    ['a length prefix over the limit', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7b]), /garbled map stream: .*exceeds/],
  ] as const) {
    it(`${what} after a good map is a BurrowError protocol; the stream is reopened and the node keeps its netmap and takes the next one`, async () => {
      const map = (self: Node, peers: Node[]) => frameMessage(JSON.stringify({ Node: self, Peers: peers, DERPMap: DERP_MAP } satisfies MapResponse))
      const t = scripted((self) => [[map(self, [node(2, 'alpha')]), garbage], [map(self, [node(2, 'alpha'), node(3, 'bravo')])]])
      const { plane, netmaps, errors, states } = t
      plane.start()
      const ready = await plane.ready()
      expect(ready.peers.map((p) => p.name)).toEqual(['alpha'])
      await until(() => netmaps.length === 2)
      const error = errors.find((e) => (e as { cause?: unknown }).cause instanceof BurrowError)
      expect(error).toBeDefined()
      const cause = (error as { cause?: unknown }).cause as BurrowError
      expect(cause.code).toBe('protocol')
      expect(cause.message).toMatch(message)
      expect(error!.fatal).toBe(false)
      // Reconnecting after the garbage, connected again with the next stream's map; never failed.
      expect(states).toContain('reconnecting')
      expect(states.at(-1)).toBe('connected')
      expect(states).not.toContain('failed')
      expect(netmaps.map((n) => n.peers.map((p) => p.name))).toEqual([['alpha'], ['alpha', 'bravo']])
      expect(plane.netmap!.peers.map((p) => p.name)).toEqual(['alpha', 'bravo'])
      expect(t.mapCalls()).toBe(2)
    })
  }
})
