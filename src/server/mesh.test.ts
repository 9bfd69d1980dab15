// The relay mesh rules of the sans-IO core (derper-compatible, tailscale.com/derp/derpserver):
// two relays of one region, each logged in to the other as a mesh client, in memory.
import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '../crypto/index.ts'
import { type DerpClientEvent, DerpClientSession } from '../underlay/derp/session.ts'
import { meshPeerURL, parseMeshKey } from './mesh.ts'
import { type PacketForwarder, Relay, type RelayOptions } from './relay.ts'
import { type DerpLink, InMemoryDerp, packetsOf } from './testing/in-memory-derp.ts'

const MESH_KEY = 'ab'.repeat(32)

type Link = DerpLink

/** Relays of one region and client sessions, wired in memory (see InMemoryDerp). */
class Region extends InMemoryDerp {
  readonly relays: Array<{ relay: Relay; privateKey: Uint8Array }> = []

  addRelay(options: Partial<RelayOptions> = {}): { relay: Relay; privateKey: Uint8Array } {
    const privateKey = generateKeyPair().privateKey
    const entry = { relay: new Relay({ privateKey, random: () => 0, meshKey: parseMeshKey(MESH_KEY).bytes, ...options }), privateKey }
    this.relays.push(entry)
    return entry
  }

  /** `from` logs in to `to` as its mesh client and installs forwarders from PeerPresent/PeerGone, as startMesh does. */
  mesh(from: { relay: Relay; privateKey: Uint8Array }, to: Relay): Link {
    const link = this.connect(to, { privateKey: from.privateKey, meshKey: MESH_KEY, watchConnections: true })
    const forwarder: PacketForwarder = { forwardPacket: (s, d, p) => link.session.forwardPacket(s, d, p) }
    const original = link.events.push.bind(link.events)
    link.events.push = (...events: DerpClientEvent[]) => {
      for (const e of events) {
        if (e.type === 'peer-present') from.relay.addPacketForwarder(e.key, forwarder)
        if (e.type === 'peer-gone') from.relay.removePacketForwarder(e.key, forwarder)
      }
      return original(...events)
    }
    for (const e of link.events) if (e.type === 'peer-present') from.relay.addPacketForwarder(e.key, forwarder)
    this.pump()
    return link
  }
}

const packets = packetsOf

function meshedPair() {
  const region = new Region()
  const a = region.addRelay()
  const b = region.addRelay()
  region.mesh(a, b.relay)
  region.mesh(b, a.relay)
  return { region, a, b }
}

describe('relay mesh (derper-compatible)', () => {
  it('a client on relay A reaches a client on relay B of the same region, both ways, source intact', () => {
    const { region, a, b } = meshedPair()
    const onA = region.connect(a.relay)
    const onB = region.connect(b.relay)
    onA.session.send(onB.session.publicKey, new Uint8Array([1, 2, 3]), region.now)
    onB.session.send(onA.session.publicKey, new Uint8Array([9]), region.now)
    region.pump()
    expect(packets(onB)).toEqual([{ type: 'packet', source: onA.session.publicKey, packet: new Uint8Array([1, 2, 3]) }])
    expect(packets(onA)).toEqual([{ type: 'packet', source: onB.session.publicKey, packet: new Uint8Array([9]) }])
    expect(a.relay.metrics.packetsMeshForwardedOut).toBe(1)
    expect(b.relay.metrics.packetsMeshForwardedIn).toBe(1)
  })

  it('a watcher hears PeerPresent for clients already there and for new ones, and PeerGone when they leave', () => {
    const region = new Region()
    const a = region.addRelay()
    const before = region.connect(a.relay)
    const watcher = region.connect(a.relay, { meshKey: MESH_KEY, watchConnections: true })
    const present = () => watcher.events.filter((e) => e.type === 'peer-present').map((e) => (e as { key: Uint8Array }).key)
    expect(present()).toEqual([before.session.publicKey])
    const after = region.connect(a.relay)
    expect(present()).toEqual([before.session.publicKey, after.session.publicKey])
    after.conn.onClose = () => {}
    a.relay.close(after.conn, 'bye', region.now, 'normal')
    region.pump()
    expect(watcher.events.at(-1)).toEqual({ type: 'peer-gone', key: after.session.publicKey, reason: 0 })
  })

  it('when a key leaves relay B, clients of A that sent to it get PeerGone and A stops forwarding to B', () => {
    const { region, a, b } = meshedPair()
    const onA = region.connect(a.relay)
    const onB = region.connect(b.relay)
    onA.session.send(onB.session.publicKey, new Uint8Array([1]), region.now)
    region.pump()
    expect(a.relay.meshKeyCount).toBeGreaterThan(0)
    onB.conn.onClose = () => {}
    b.relay.close(onB.conn, 'left', region.now, 'normal')
    region.pump()
    expect(onA.events.at(-1)).toEqual({ type: 'peer-gone', key: onB.session.publicKey, reason: 0 })
    onA.session.send(onB.session.publicKey, new Uint8Array([2]), region.now)
    region.pump()
    expect(a.relay.metrics.drops.get('unknown_dest')).toBe(1)
  })

  it('refuses WatchConns, ForwardPacket and ClosePeer from a client without the mesh key and closes it', () => {
    for (const frame of ['watch', 'forward', 'close'] as const) {
      const region = new Region()
      const a = region.addRelay()
      const victim = region.connect(a.relay)
      const intruder = region.connect(a.relay, { meshKey: 'cd'.repeat(32), watchConnections: frame === 'watch' })
      if (frame === 'forward') intruder.session.forwardPacket(generateKeyPair().publicKey, victim.session.publicKey, new Uint8Array([6, 6, 6]))
      if (frame === 'close') (intruder.session as unknown as { write(f: object): void }).write({ type: 'close-peer', key: victim.session.publicKey })
      region.pump()
      expect(intruder.closed).toMatch(/only for relay mesh peers \(no valid mesh key\)/)
      expect(victim.closed).toBeUndefined()
      expect(packets(victim)).toEqual([])
    }
  })

  it('never forwards a forwarded packet again: a destination not held here is dropped and counted', () => {
    const region = new Region()
    const a = region.addRelay()
    const b = region.addRelay()
    region.mesh(a, b.relay)
    const peer = region.connect(b.relay, { meshKey: MESH_KEY })
    // b also knows some key through a forwarder of its own; a forwarded packet for it must not loop.
    const elsewhere = generateKeyPair().publicKey
    let reforwarded = 0
    b.relay.addPacketForwarder(elsewhere, { forwardPacket: () => (reforwarded++, true) })
    peer.session.forwardPacket(generateKeyPair().publicKey, elsewhere, new Uint8Array([1]))
    region.pump()
    expect(reforwarded).toBe(0)
    expect(b.relay.metrics.drops.get('unknown_dest_on_forward')).toBe(1)
    expect(peer.closed).toBeUndefined()
  })

  it('ClosePeer from a mesh peer closes every connection of that key here', () => {
    const region = new Region()
    const a = region.addRelay()
    const target = region.connect(a.relay)
    const mesh = region.connect(a.relay, { meshKey: MESH_KEY })
    ;(mesh.session as unknown as { write(f: object): void }).write({ type: 'close-peer', key: target.session.publicKey })
    region.pump()
    expect(target.closed).toMatch(/closed by mesh peer/)
  })

  it('admits a mesh peer without asking the admission check (it is a relay, not a node of the network)', () => {
    const region = new Region()
    const a = region.addRelay({ verifyClients: true })
    let asked = 0
    const mesh = new DerpClientSession({ privateKey: generateKeyPair().privateKey, meshKey: MESH_KEY }, region.now)
    const conn = a.relay.accept(region.now, '127.0.0.1:1')
    conn.onAdmission = () => asked++
    region.links.push({ relay: a.relay, session: mesh, conn, events: [] })
    region.pump()
    expect(asked).toBe(0)
    expect(mesh.state).toBe('ready')
  })

  it('parses mesh keys and peer addresses the way derper writes them, with clear errors', () => {
    expect(parseMeshKey(` ${'AB'.repeat(32)}\n`).hex).toBe('ab'.repeat(32))
    expect(() => parseMeshKey('abc', '--mesh-key')).toThrow(/--mesh-key must be 64 hexadecimal digits/)
    expect(meshPeerURL('10.0.0.2:8080')).toBe('http://10.0.0.2:8080/derp')
    expect(meshPeerURL('https://relay-b.example')).toBe('https://relay-b.example/derp')
    expect(() => meshPeerURL('ftp://x')).toThrow(/must be http or https/)
  })
})
