// Burrow's coordination behind the ControlPlane interface: the peer map becomes a netmap whose
// relays are regions (region 1 = the relay behind the control URL), a welcome is one netmap
// event, deltas carry their change, and refusals are ControlPlaneErrors with the BurrowError codes.
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair, toBase64 } from '../crypto/index.ts'
import { ControlPlaneError, type Netmap, type NetmapChange } from './control-plane.ts'
import { CoordinationControlPlane } from './coordination-control-plane.ts'
import { nodeKeyText, type PeerEntry } from './protocol.ts'
import { peerEntry } from './testing/peer-entry.ts'
import { ScriptedSocket } from './testing/scripted-socket.ts'

const server = generateKeyPair()
const challenge = { type: 'challenge', version: 1, serverKey: toBase64(server.publicKey), challenge: toBase64(new Uint8Array(32)) }
const keys = { node: generateKeyPair(), disco: generateKeyPair() }
const peer = (n: number, overrides: Partial<PeerEntry> = {}): PeerEntry => peerEntry(n, { online: n % 2 === 1, lastSeen: 5, ...overrides })
const self = (): PeerEntry => ({ ...peer(200), nodeKey: nodeKeyText(keys.node.publicKey) })

const planes: CoordinationControlPlane[] = []
afterEach(() => {
  for (const plane of planes.splice(0)) plane.stop()
})

function make(): { plane: CoordinationControlPlane; sockets: ScriptedSocket[]; events: Array<[Netmap, NetmapChange]> } {
  const sockets: ScriptedSocket[] = []
  const plane = new CoordinationControlPlane({
    controlURL: 'http://relay.test:8080',
    keys,
    hostname: 'me',
    authKey: 'bwauth-x',
    socketFactory: () => {
      const socket = new ScriptedSocket()
      sockets.push(socket)
      return socket
    },
  })
  planes.push(plane)
  const events: Array<[Netmap, NetmapChange]> = []
  plane.on('netmap', (netmap, change) => events.push([netmap, change]))
  return { plane, sockets, events }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0))

describe('CoordinationControlPlane', () => {
  it('turns a welcome into one netmap: relays as regions, our relay region 1 and suggested home', async () => {
    const { plane, sockets, events } = make()
    plane.start()
    await tick()
    sockets[0]!.deliver(challenge)
    expect(sockets[0]!.sent.find((m) => m.type === 'hello')).toMatchObject({ homeRelay: { url: 'ws://relay.test:8080/derp' } })
    sockets[0]!.deliver({
      type: 'welcome',
      self: self(),
      network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' },
      peers: [peer(1), peer(2, { homeRelay: { url: 'https://far.test/derp' } }), peer(3, { homeRelay: { url: 'ws://relay.test:8080/derp' } })],
    })
    const netmap = await plane.ready()
    await tick()
    expect(events).toHaveLength(1)
    expect(events[0]![0]).toBe(plane.netmap)
    expect(netmap.self).toEqual({ nodeKey: self().nodeKey, name: 'p200', addresses: ['100.64.0.200', 'fd00::200'], homeRelay: null })
    expect(netmap.network).toEqual({ ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' })
    expect(netmap.relayMap.suggestedHome).toBe(1)
    expect([...netmap.relayMap.regions.values()].map((r) => [r.id, r.nodes.map((n) => n.url)])).toEqual([
      [1, ['ws://relay.test:8080/derp']],
      [2, ['wss://far.test/derp']],
    ])
    expect(netmap.peers.map((p) => [p.name, p.homeRelay, p.online])).toEqual([
      ['p1', null, true],
      ['p2', 2, false],
      ['p3', 1, true],
    ])
    expect(netmap.peers[0]).toEqual({
      nodeKey: peer(1).nodeKey,
      discoKey: peer(1).discoKey,
      name: 'p1',
      addresses: ['100.64.0.1', 'fd00::1'],
      allowedIPs: ['100.64.0.1/32', 'fd00::1/128'],
      homeRelay: null,
      online: true,
      lastSeen: 5,
    })

    // A delta: one netmap event naming what changed.
    sockets[0]!.deliver({ type: 'peers', upsert: [peer(5, { homeRelay: { url: 'wss://third.test/derp' } })], remove: [peer(1).nodeKey] })
    await tick()
    expect(events).toHaveLength(2)
    expect(events[1]![1]).toEqual({ upsert: [peer(5).nodeKey], remove: [peer(1).nodeKey], other: true })
    expect(events[1]![0].peers.map((p) => p.name)).toEqual(['p2', 'p3', 'p5'])

    // Reporting a home region sends its relay's URL.
    plane.setHomeRelay(2)
    expect(sockets[0]!.sent.at(-1)).toMatchObject({ type: 'update', homeRelay: { url: 'wss://far.test/derp' } })
    expect(() => plane.setHomeRelay(9)).toThrow(ControlPlaneError)
  })

  it("uses the operator's relay map from the welcome: its regions as they are, peers' relay URLs named by the region that lists them, our relay's region suggested", async () => {
    const { plane, sockets, events } = make()
    plane.start()
    await tick()
    sockets[0]!.deliver(challenge)
    sockets[0]!.deliver({
      type: 'welcome',
      self: self(),
      network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' },
      peers: [
        peer(1, { homeRelay: { url: 'ws://b.test/derp' } }),
        peer(2, { homeRelay: { url: 'wss://not-listed.test/derp' } }),
        peer(3, { homeRelay: { url: 'ws://relay.test:8080/derp' } }),
      ],
      relayMap: {
        regions: [
          {
            id: 7,
            code: 'fra',
            name: 'Frankfurt',
            nodes: [
              { name: 'a', url: 'http://relay.test:8080' },
              { name: 'b', url: 'http://b.test', stunPort: 3478 },
            ],
          },
          { id: 9, code: 'ams', name: 'Amsterdam', nodes: [{ name: 'c', url: 'wss://c.test/derp' }], avoid: true },
        ],
      },
    })
    const netmap = await plane.ready()
    await tick()
    expect(events).toHaveLength(1)
    expect(netmap.relayMap.suggestedHome).toBe(7)
    expect([...netmap.relayMap.regions.values()]).toEqual([
      {
        id: 7,
        code: 'fra',
        name: 'Frankfurt',
        nodes: [
          { name: 'a', url: 'ws://relay.test:8080/derp' },
          { name: 'b', url: 'ws://b.test/derp', stunPort: 3478 },
        ],
      },
      { id: 9, code: 'ams', name: 'Amsterdam', nodes: [{ name: 'c', url: 'wss://c.test/derp' }], avoid: true },
    ])
    // A URL the map does not list is reached through our home relay (null), never a made-up region.
    expect(netmap.peers.map((p) => [p.name, p.homeRelay])).toEqual([
      ['p1', 7],
      ['p2', null],
      ['p3', 7],
    ])
    // Reporting home names the relay of the region we are logged in to.
    plane.setHomeRelay(7, 'ws://b.test/derp')
    expect(sockets[0]!.sent.at(-1)).toMatchObject({ type: 'update', homeRelay: { url: 'ws://b.test/derp' } })
    plane.setHomeRelay(9)
    expect(sockets[0]!.sent.at(-1)).toMatchObject({ type: 'update', homeRelay: { url: 'wss://c.test/derp' } })
    expect(() => plane.setHomeRelay(1)).toThrow(/relay region 1 is not in the relay map/)
  })

  it('rejects ready() with a ControlPlaneError carrying the status and BurrowError code of a refusal', async () => {
    const { plane, sockets } = make()
    plane.start()
    await tick()
    sockets[0]!.deliver(challenge)
    const ready = plane.ready()
    sockets[0]!.deliver({ type: 'error', status: 401, error: 'authKey is unknown or already used', closing: true })
    const error = await ready.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ControlPlaneError)
    expect(error).toMatchObject({ status: 401, code: 'unauthorized', fatal: true, message: 'authKey is unknown or already used' })
    expect(plane.state).toBe('failed')
    await expect(plane.logout()).rejects.toMatchObject({ status: 501 })
  })

  it('names a control URL that is not one', () => {
    expect(() => new CoordinationControlPlane({ controlURL: 'not a url', keys, hostname: 'me' })).toThrow(/controlURL "not a url" is not a relay URL/)
  })
})
