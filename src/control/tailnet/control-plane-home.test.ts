// TailnetControlPlane against an in-memory control server (our controlbase responder in front of
// Node's own HTTP/2 server, as in client.test.ts): how setHomeRelay becomes lite map updates, and
// how a peer's key expiry removes it on the control plane's (manual) clock with no message from
// control.
import type { ServerHttp2Stream } from 'node:http2'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../clock/clock.ts'
import { generateKeyPair, toHex } from '../../crypto/index.ts'
import type { Netmap, NetmapChange } from '../control-plane.ts'
import { TailnetControlPlane } from './control-plane.ts'
import type { Ts2021Dialer } from './dial.ts'
import type { MapResponse, Node } from './tailcfg.ts'
import { fakeControl as sharedFakeControl, fakeControlKey as control, frameMessage } from './testing/fake-control.ts'

const T = Date.parse('2026-12-07T12:00:00Z')

const frame = (message: unknown): Buffer => frameMessage(JSON.stringify(message))

interface LiteRequest {
  preferredDERP: number | undefined
  answer(): void
}

/** Control that authorizes every register, opens map streams with `first`, and queues lite updates until answered. */
function fakeControl(first: (nodeKey: string) => MapResponse): { dialer: Ts2021Dialer; lites: LiteRequest[]; streams: ServerHttp2Stream[]; mapRegions: Array<number | undefined> } {
  const lites: LiteRequest[] = []
  /** PreferredDERP of each streaming map request. */
  const mapRegions: Array<number | undefined> = []
  const streams: ServerHttp2Stream[] = []
  const { dialer } = sharedFakeControl((stream, headers, parsed) => {
    const body = parsed as { Stream?: boolean; NodeKey: string; Hostinfo?: { NetInfo?: { PreferredDERP?: number } } }
    if (headers[':path'] === '/machine/register') {
      stream.respond({ ':status': 200 })
      stream.end(JSON.stringify({ MachineAuthorized: true }))
    } else if (body.Stream) {
      streams.push(stream)
      mapRegions.push(body.Hostinfo?.NetInfo?.PreferredDERP)
      stream.respond({ ':status': 200 })
      stream.write(frame(first(body.NodeKey)))
    } else {
      lites.push({
        preferredDERP: body.Hostinfo?.NetInfo?.PreferredDERP,
        answer: () => {
          stream.respond({ ':status': 200 })
          stream.end()
        },
      })
    }
  })
  return { dialer, lites, streams, mapRegions }
}

const hex = (n: number) => n.toString(16).padStart(2, '0').repeat(32)
function peer(id: number, name: string, extra: Partial<Node> = {}): Node {
  return { ID: id, Name: `${name}.tail.test.`, Key: `nodekey:${hex(id)}`, DiscoKey: `discokey:${hex(id)}`, Addresses: [`100.64.0.${id}/32`], HomeDERP: 900, Online: true, ...extra }
}

function firstMap(nodeKey: string, peers: Node[]): MapResponse {
  return {
    Node: { ID: 1, Name: 'self.tail.test.', Key: nodeKey, Addresses: ['100.64.0.1/32'] },
    Peers: peers,
    DERPMap: { Regions: { '900': { RegionID: 900, RegionCode: 'lab', RegionName: 'Lab', Nodes: [{ Name: '900a', RegionID: 900, HostName: '10.0.0.2', DERPPort: 3340 }] } } },
  }
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !check(); i++) await new Promise((resolve) => setImmediate(resolve))
  if (!check()) throw new Error('condition not reached')
}

const planes: TailnetControlPlane[] = []
afterEach(() => {
  for (const plane of planes.splice(0)) plane.stop()
})

function plane(dialer: Ts2021Dialer, clock = new ManualClock(T)): TailnetControlPlane {
  const p = new TailnetControlPlane({
    controlURL: 'http://control.test',
    controlKey: `mkey:${toHex(control.publicKey)}`,
    dialer,
    keys: { node: generateKeyPair(), disco: generateKeyPair(), machine: generateKeyPair() },
    hostname: 'burrow',
    authKey: 'hskey-auth-test',
    clock,
  })
  planes.push(p)
  return p
}

describe('TailnetControlPlane: home relay → PreferredDERP lite updates', () => {
  it('one lite update in flight at a time; regions set meanwhile are folded into one follow-up with the latest region', async () => {
    const fake = fakeControl((key) => firstMap(key, []))
    const p = plane(fake.dialer)
    p.start()
    await p.ready()
    expect(p.reportedHomeRelay).toBeNull()
    p.setHomeRelay(900)
    await until(() => fake.lites.length === 1)
    expect(fake.lites[0]!.preferredDERP).toBe(900)
    p.setHomeRelay(901)
    p.setHomeRelay(902)
    // Still only the first: nothing more is sent while it is unanswered.
    await new Promise((resolve) => setImmediate(resolve))
    expect(fake.lites).toHaveLength(1)
    fake.lites[0]!.answer()
    await until(() => fake.lites.length === 2)
    expect(fake.lites[1]!.preferredDERP).toBe(902)
    fake.lites[1]!.answer()
    await until(() => p.reportedHomeRelay === 902)
    // Setting the region control already has sends nothing.
    p.setHomeRelay(902)
    await new Promise((resolve) => setImmediate(resolve))
    expect(fake.lites).toHaveLength(2)
  })

  it('a region chosen before the map stream is up rides in its map request; no lite update is sent for it', async () => {
    const fake = fakeControl((key) => firstMap(key, []))
    const p = plane(fake.dialer)
    p.start()
    p.setHomeRelay(900)
    await p.ready()
    expect(fake.mapRegions).toEqual([900])
    expect(p.reportedHomeRelay).toBe(900)
    await new Promise((resolve) => setImmediate(resolve))
    expect(fake.lites).toHaveLength(0)
  })

  it('a region set back to the one control has while an update is in flight sends no follow-up', async () => {
    const fake = fakeControl((key) => firstMap(key, []))
    const p = plane(fake.dialer)
    p.start()
    await p.ready()
    p.setHomeRelay(900)
    await until(() => fake.lites.length === 1)
    p.setHomeRelay(901)
    p.setHomeRelay(900)
    fake.lites[0]!.answer()
    await until(() => p.reportedHomeRelay === 900)
    await new Promise((resolve) => setImmediate(resolve))
    expect(fake.lites).toHaveLength(1)
  })
})

describe('TailnetControlPlane: key expiry', () => {
  it('a peer whose KeyExpiry arrives leaves the netmap on the control plane clock, without a message from control', async () => {
    const clock = new ManualClock(T)
    const fake = fakeControl((key) => firstMap(key, [peer(2, 'alpha'), peer(3, 'bravo', { KeyExpiry: new Date(T + 60_000).toISOString() })]))
    const p = plane(fake.dialer, clock)
    const events: Array<{ netmap: Netmap; change: NetmapChange | undefined }> = []
    p.on('netmap', (netmap, change) => events.push({ netmap, change }))
    p.start()
    const netmap = await p.ready()
    expect(netmap.peers.map((x) => x.name)).toEqual(['alpha', 'bravo'])
    // One second early: bravo is still there.
    while (clock.fireNext(T + 59_000));
    expect(p.netmap!.peers.map((x) => x.name)).toEqual(['alpha', 'bravo'])
    while (clock.fireNext(T + 60_000));
    expect(p.netmap!.peers.map((x) => x.name)).toEqual(['alpha'])
    expect(events.at(-1)!.change).toEqual({ upsert: [], remove: [`nodekey:${hex(3)}`], other: false })
    expect(events.at(-1)!.netmap.network).toEqual({ ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd7a:115c:a1e0::/48' })
  })
})
