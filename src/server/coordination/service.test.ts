import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import { beforeEach, describe, expect, it } from 'vitest'
import { boxKey, boxSeal, generateKeyPair, toBase64, type KeyPair } from '../../crypto/index.ts'
import { MAX_PRE_HELLO_BYTES, NODE_UPDATE_BURST, NODE_UPDATE_INTERVAL_MS, PEERS_PER_MESSAGE, nodeKeyText, type PeerEntry, type ServerMessage } from '../../control/protocol.ts'
import { SqliteStore } from './store.ts'
import { allocateIpv4, ipv6For } from './allocator.ts'
import { CoordinationService, MAINTENANCE_INTERVAL_MS, sanitizeHostname, type Output } from './service.ts'
import { helloFor, type HelloOptions } from './test-helpers.ts'

const RELAY_MAP = [{ url: 'wss://relay.example/derp', region: 'fra' }, { url: 'wss://r/derp' }]
let store: SqliteStore
let service: CoordinationService
let nextId: number

beforeEach(async () => {
  store = new SqliteStore(':memory:')
  service = await CoordinationService.create({ store, relayMap: RELAY_MAP })
  nextId = 1
})

function sent(out: Output[], connection: number): ServerMessage[] {
  return out.flatMap((o) => (o.kind === 'send' && o.connection === connection ? [o.message] : []))
}

function closes(out: Output[], connection: number): Array<{ code: number; reason: string }> {
  return out.flatMap((o) => (o.kind === 'close' && o.connection === connection ? [{ code: o.code, reason: o.reason }] : []))
}

interface Joined {
  connection: number
  pair: KeyPair
  out: Output[]
  self: PeerEntry
  peers: PeerEntry[]
}

async function connect(pair: KeyPair, options: HelloOptions, now = 1000): Promise<{ connection: number; out: Output[] }> {
  const connection = nextId++
  const [challenge] = service.open(connection, now)
  const out = await service.receive(connection, JSON.stringify(helloFor(pair, challenge!, options)), now)
  return { connection, out }
}

async function join(options: HelloOptions, pair = generateKeyPair(), now = 1000): Promise<Joined> {
  const { connection, out } = await connect(pair, options, now)
  const welcome = sent(out, connection).find((m) => m.type === 'welcome')
  if (welcome?.type !== 'welcome') throw new Error(`expected a welcome, got ${JSON.stringify(out)}`)
  return { connection, pair, out, self: welcome.self, peers: welcome.peers }
}

function errorOf(out: Output[], connection: number): { status: number; error: string } | undefined {
  const error = sent(out, connection).find((m) => m.type === 'error')
  return error?.type === 'error' ? { status: error.status, error: error.error } : undefined
}

describe('registration', () => {
  it('gives a new node the next free address and name when another writer (another relay) took its slot unseen by this service', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const pair = generateKeyPair()
    const slot = allocateIpv4(pair.publicKey, () => false)
    // Written straight to the store: the service's own view does not have it.
    await store.insertNode({
      nodeKey: nodeKeyText(generateKeyPair().publicKey),
      discoKey: `discokey:${'22'.repeat(32)}`,
      hostname: 'taken',
      requestedHostname: 'taken',
      ipv4: slot,
      ipv6: ipv6For(service.network.ipv6Prefix, slot),
      ephemeral: false,
      authKeyId: null,
      createdAt: 1,
      lastSeen: null,
      homeRelay: null,
    })
    const a = await join({ authKey: key, hostname: 'taken' }, pair)
    expect(a.self.addresses[0]).not.toBe(slot)
    expect(a.self.hostname).toBe('taken-2')
    expect(new Set((await store.allNodes()).map((n) => n.ipv4)).size).toBe(2)
  })

  it('registers with a good single-use key and refuses the key a second time', async () => {
    const key = await service.createAuthKey({}, 1)
    const a = await join({ authKey: key, hostname: 'alpha' })
    expect(a.self).toMatchObject({ hostname: 'alpha', online: true, ephemeral: false, nodeKey: nodeKeyText(a.pair.publicKey) })
    expect(a.self.addresses[0]).toMatch(/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./)
    expect(a.self.addresses[1].startsWith(service.network.ipv6Prefix.replace('::/48', ':'))).toBe(true)
    expect(await service.isRegistered(a.pair.publicKey)).toBe(true)

    const b = await connect(generateKeyPair(), { authKey: key })
    expect(errorOf(b.out, b.connection)).toEqual({ status: 401, error: 'authKey is unknown or already used' })
    expect(closes(b.out, b.connection)).toEqual([{ code: 4401, reason: 'authKey is unknown or already used' }])
    expect(await store.allNodes()).toHaveLength(1)
  })

  it('lets a reusable key register many nodes', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    for (let i = 0; i < 3; i++) await join({ authKey: key })
    expect(await store.allNodes()).toHaveLength(3)
  })

  it('refuses a bad or missing key with 401 and registers nothing', async () => {
    const pair = generateKeyPair()
    const bad = await connect(pair, { authKey: 'bwauth-000000' })
    expect(errorOf(bad.out, bad.connection)).toEqual({ status: 401, error: 'authKey is unknown or already used' })
    const missing = await connect(pair, {})
    expect(errorOf(missing.out, missing.connection)).toEqual({ status: 401, error: 'authKey is required to register a new node key' })
    expect(await service.isRegistered(pair.publicKey)).toBe(false)
    expect(service.connectionCount()).toBe(0)
  })

  it('lets a registered node reconnect without a key and keeps its addresses', async () => {
    const key = await service.createAuthKey({}, 1)
    const a = await join({ authKey: key, hostname: 'alpha' })
    await service.closed(a.connection, 2000)
    const again = await join({ hostname: 'alpha' }, a.pair, 3000)
    expect(again.self.addresses).toEqual(a.self.addresses)
    expect(again.self.id).toBe(a.self.id)
    expect(again.self.lastSeen).toBe(3000)
  })

  it('suffixes clashing hostnames -2, -3 and keeps a node its own name', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key, hostname: 'Laptop' })
    const b = await join({ authKey: key, hostname: 'laptop' })
    const c = await join({ authKey: key, hostname: 'LAPTOP!' })
    expect([a.self.hostname, b.self.hostname, c.self.hostname]).toEqual(['laptop', 'laptop-2', 'laptop-3'])
    await service.closed(b.connection, 2000)
    expect((await join({ hostname: 'laptop' }, b.pair)).self.hostname).toBe('laptop-2')
  })

  it('sanitises hostnames into DNS labels', async () => {
    expect(sanitizeHostname('My Laptop (work)')).toBe('my-laptop-work')
    expect(sanitizeHostname('---')).toBe('node')
    expect(sanitizeHostname('x'.repeat(100))).toHaveLength(63)
  })
})

describe('key proof', () => {
  it('refuses a forged proof (sealed with another private key) with 403 before sending anything', async () => {
    const key = await service.createAuthKey({}, 1)
    const victim = generateKeyPair()
    const attacker = generateKeyPair()
    const connection = nextId++
    const [challenge] = service.open(connection, 1000)
    const hello = helloFor(attacker, challenge!, { authKey: key })
    hello.nodeKey = nodeKeyText(victim.publicKey)
    const out = await service.receive(connection, JSON.stringify(hello), 1000)
    expect(errorOf(out, connection)).toEqual({ status: 403, error: 'proof does not prove possession of the node private key' })
    expect(sent(out, connection).map((m) => m.type)).toEqual(['error'])
    expect(await service.isRegistered(victim.publicKey)).toBe(false)
  })

  it('refuses a proof replayed from another connection', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const pair = generateKeyPair()
    const first = nextId++
    const [challenge1] = service.open(first, 1000)
    const hello = helloFor(pair, challenge1!, { authKey: key })
    const second = nextId++
    service.open(second, 1000)
    const out = await service.receive(second, JSON.stringify(hello), 1000)
    expect(errorOf(out, second)?.status).toBe(403)
  })

  it('refuses a low-order node key by name', async () => {
    const key = await service.createAuthKey({}, 1)
    const connection = nextId++
    const [challenge] = service.open(connection, 1000)
    const hello = helloFor(generateKeyPair(), challenge!, { authKey: key })
    hello.nodeKey = `nodekey:${'00'.repeat(32)}`
    const out = await service.receive(connection, JSON.stringify(hello), 1000)
    expect(errorOf(out, connection)).toEqual({ status: 403, error: 'proof: node key is a low-order point' })
    expect(await store.allNodes()).toEqual([])
  })

  it('refuses a proof of the wrong challenge', async () => {
    const key = await service.createAuthKey({}, 1)
    const pair = generateKeyPair()
    const connection = nextId++
    const [challenge] = service.open(connection, 1000)
    const hello = helloFor(pair, challenge!, { authKey: key })
    const nonce = new Uint8Array(24)
    hello.proof = { nonce: toBase64(nonce), box: toBase64(boxSeal(boxKey(pair.privateKey, service.serverPublicKey), nonce, new Uint8Array(32))) }
    expect(errorOf(await service.receive(connection, JSON.stringify(hello), 1000), connection)?.status).toBe(403)
  })
})

describe('peer map pushes', () => {
  it('pushes join, offline, online and home-relay changes to the others', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key, hostname: 'a' })
    const b = await join({ authKey: key, hostname: 'b' })
    expect(b.peers.map((p) => p.hostname)).toEqual(['a'])
    const joinPush = sent(b.out, a.connection)
    expect(joinPush).toEqual([{ type: 'peers', upsert: [b.self], remove: [] }])

    const offline = await service.closed(b.connection, 5000)
    expect(sent(offline, a.connection)).toEqual([{ type: 'peers', upsert: [{ ...b.self, online: false, lastSeen: 5000 }], remove: [] }])

    const back = await join({ hostname: 'b' }, b.pair, 6000)
    expect(sent(back.out, a.connection)).toEqual([{ type: 'peers', upsert: [{ ...b.self, online: true, lastSeen: 6000 }], remove: [] }])
    const relay = { url: 'wss://relay.example/derp', region: 'fra' }
    const moved = await service.receive(back.connection, JSON.stringify({ type: 'update', homeRelay: relay }), 7000)
    expect(sent(moved, a.connection)).toEqual([{ type: 'peers', upsert: [{ ...back.self, homeRelay: relay }], remove: [] }])
    expect(sent(moved, back.connection)).toEqual([{ type: 'self', self: { ...back.self, homeRelay: relay } }])
    // Reporting the same relay again is not a change.
    expect(await service.receive(back.connection, JSON.stringify({ type: 'update', homeRelay: relay }), 7100)).toEqual([])
  })

  it('pushes a disco key change', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key })
    const b = await join({ authKey: key })
    const discoKey = `discokey:${'ab'.repeat(32)}`
    const out = await service.receive(b.connection, JSON.stringify({ type: 'update', discoKey }), 2000)
    expect(sent(out, a.connection)).toEqual([{ type: 'peers', upsert: [{ ...b.self, discoKey }], remove: [] }])
  })

  it('removes an ephemeral node when it disconnects and tells the others', async () => {
    const ephemeralKey = await service.createAuthKey({ ephemeral: true }, 1)
    const a = await join({ authKey: await service.createAuthKey({}, 1) })
    const e = await join({ authKey: ephemeralKey, hostname: 'tab' })
    expect(e.self.ephemeral).toBe(true)
    const out = await service.closed(e.connection, 2000)
    expect(sent(out, a.connection)).toEqual([{ type: 'peers', upsert: [], remove: [e.self.nodeKey] }])
    expect(await service.isRegistered(e.pair.publicKey)).toBe(false)
    // The hostname is free again.
    expect((await join({ authKey: await service.createAuthKey({}, 1), hostname: 'tab' })).self.hostname).toBe('tab')
  })

  it('drops ephemeral nodes left over from a previous process', async () => {
    const e = await join({ authKey: await service.createAuthKey({ ephemeral: true }, 1) })
    const restarted = await CoordinationService.create({ store })
    expect(await restarted.isRegistered(e.pair.publicKey)).toBe(false)
  })

  it('moves a node to a new key: peers see the old key removed and the new one added, addresses kept', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key })
    const b = await join({ authKey: key, hostname: 'b' })
    const rotated = generateKeyPair()
    const moved = await join({ hostname: 'b', previous: b.pair }, rotated, 3000)
    expect(moved.self.addresses).toEqual(b.self.addresses)
    expect(sent(moved.out, a.connection)).toEqual([{ type: 'peers', upsert: [moved.self], remove: [b.self.nodeKey] }])
    expect(closes(moved.out, b.connection)).toEqual([{ code: 4409, reason: 'replaced by a newer connection from the same node' }])
    expect(await service.isRegistered(b.pair.publicKey)).toBe(false)
    expect(await service.isRegistered(rotated.publicKey)).toBe(true)
  })

  it('refuses to rotate one node onto another registered node, but accepts a repeat of a finished rotation', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key })
    const b = await join({ authKey: key })
    const merge = await connect(b.pair, { previous: a.pair })
    expect(errorOf(merge.out, merge.connection)?.status).toBe(409)
    expect((await service.isRegistered(a.pair.publicKey)) && (await service.isRegistered(b.pair.publicKey))).toBe(true)

    const rotated = generateKeyPair()
    const first = await join({ previous: a.pair }, rotated, 2000)
    await service.closed(first.connection, 2001)
    const again = await join({ previous: a.pair }, rotated, 3000)
    expect(again.self.addresses).toEqual(a.self.addresses)
  })

  it('refuses a key change without proof of the old key', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const b = await join({ authKey: key })
    const impostor = generateKeyPair()
    const connection = nextId++
    const [challenge] = service.open(connection, 1000)
    const hello = helloFor(generateKeyPair(), challenge!, { previous: impostor })
    hello.previousNodeKey = b.self.nodeKey
    const out = await service.receive(connection, JSON.stringify(hello), 1000)
    expect(errorOf(out, connection)).toEqual({ status: 403, error: 'previousProof does not prove possession of the node private key' })
    expect(await service.isRegistered(b.pair.publicKey)).toBe(true)
  })

  it('replaces an older session of the same node without a flap', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key })
    const b = await join({ authKey: key })
    const b2 = await join({}, b.pair, 2000)
    expect(closes(b2.out, b.connection)).toHaveLength(1)
    // The old socket's close event arrives later and must not mark b offline.
    expect(await service.closed(b.connection, 2001)).toEqual([])
    expect(service.nodes().find((n) => n.nodeKey === b.self.nodeKey)?.online).toBe(true)
    expect(sent(b2.out, a.connection)).toHaveLength(1)
  })
})

describe('the in-memory node list', () => {
  it('matches the database after joins, renames, rotations, relay changes and disconnects', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key, hostname: 'a' })
    const b = await join({ authKey: key, hostname: 'b' })
    await join({ authKey: key, hostname: 'a' })
    await service.receive(a.connection, JSON.stringify({ type: 'update', hostname: 'renamed', homeRelay: { url: 'wss://r/derp' } }), 2000)
    await join({ hostname: 'b', previous: b.pair }, generateKeyPair(), 3000)
    await service.closed(a.connection, 4000)
    const offline = (entries: PeerEntry[]) => entries.map((e) => ({ ...e, online: false }))
    expect(offline(service.nodes())).toEqual(offline((await CoordinationService.create({ store, relayMap: RELAY_MAP })).nodes()))
    expect(service.nodes().map((n) => n.hostname)).toEqual(['renamed', 'b', 'a-2'])
  })
})

describe('bad input and timeouts', () => {
  it('closes an unauthenticated connection that sends garbage, naming the problem', async () => {
    const connection = nextId++
    service.open(connection, 0)
    const out = await service.receive(connection, '{"type":"hello","version":1,"nodeKey":"nodekey:zz"}', 0)
    expect(errorOf(out, connection)).toEqual({ status: 400, error: 'nodeKey must be nodekey: followed by 64 lowercase hex digits' })
    expect(closes(out, connection)[0]?.code).toBe(4400)
    expect(service.connectionCount()).toBe(0)
  })

  it('answers garbage from an authenticated node with an error but keeps the session and state', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key })
    const before = service.nodes()
    const out = await service.receive(a.connection, 'not json', 2000)
    expect(out).toEqual([{ kind: 'send', connection: a.connection, message: { type: 'error', status: 400, error: 'message is not valid JSON', closing: false } }])
    const out2 = await service.receive(a.connection, JSON.stringify({ type: 'update', homeRelay: { url: 'ftp://x' } }), 2000)
    expect(errorOf(out2, a.connection)?.error).toBe('homeRelay.url must be an http(s) or ws(s) URL')
    expect(service.nodes()).toEqual(before)
    expect(sent(await service.receive(a.connection, '{"type":"ping","id":7}', 2000), a.connection)).toEqual([{ type: 'pong', id: 7 }])
  })

  it('defers updates past the per-node budget and applies the latest value once a token is back, keeping the session', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key })
    const b = await join({ authKey: key })
    service.setRelayMap(Array.from({ length: 200 }, (_, n) => ({ url: `wss://r${n}/derp` })))
    const update = (n: number, now: number) => service.receive(b.connection, JSON.stringify({ type: 'update', homeRelay: { url: `wss://r${n}/derp` } }), now)
    for (let i = 0; i < NODE_UPDATE_BURST; i++) expect(sent(await update(i, 5000), a.connection)).toHaveLength(1)
    expect(await update(98, 5000)).toEqual([])
    expect(await update(99, 5000)).toEqual([])
    expect(service.nodes().find((n) => n.id === b.self.id)?.homeRelay?.url).toBe(`wss://r${NODE_UPDATE_BURST - 1}/derp`)
    expect(sent(await service.poll(4999 + NODE_UPDATE_INTERVAL_MS), a.connection)).toEqual([])
    const flushed = await service.poll(5000 + NODE_UPDATE_INTERVAL_MS)
    // The two deferred updates went out as one change, with the later value.
    expect(sent(flushed, a.connection)).toEqual([{ type: 'peers', upsert: [expect.objectContaining({ homeRelay: { url: 'wss://r99/derp' } })], remove: [] }])
    expect(sent(flushed, b.connection)).toEqual([{ type: 'self', self: expect.objectContaining({ homeRelay: { url: 'wss://r99/derp' } }) }])
  })

  it("hands every node the operator's relay regions in its welcome, and accepts any of their relays as a home relay", async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const regions = {
      regions: [
        {
          id: 1,
          code: 'fra',
          name: 'Frankfurt',
          nodes: [
            { name: 'fra1', url: 'https://fra1.example' },
            { name: 'fra2', url: 'wss://fra2.example/derp' },
          ],
        },
        { id: 2, code: 'nyc', name: 'New York', nodes: [{ name: 'nyc1', url: 'http://nyc1.example:8080' }] },
      ],
    }
    service.setRegionMap(regions)
    const a = await join({ authKey: key, homeRelay: { url: 'wss://fra1.example/derp' } })
    const welcome = sent(a.out, a.connection).find((m) => m.type === 'welcome')
    expect(welcome).toMatchObject({ relayMap: regions })
    expect(welcome?.type === 'welcome' && welcome.self.homeRelay).toEqual({ url: 'wss://fra1.example/derp', region: '1' })
    // Any relay of the map, by its DERP URL; one off the map is refused.
    const b = await join({ authKey: key })
    const moved = await service.receive(a.connection, JSON.stringify({ type: 'update', homeRelay: { url: 'ws://nyc1.example:8080/derp' } }), 2000)
    expect(sent(moved, b.connection)).toEqual([
      { type: 'peers', upsert: [expect.objectContaining({ homeRelay: { url: 'ws://nyc1.example:8080/derp', region: '2' } })], remove: [] },
    ])
    const refused = await service.receive(a.connection, JSON.stringify({ type: 'update', homeRelay: { url: 'wss://relay.example/derp' } }), 3000)
    expect(errorOf(refused, a.connection)?.error).toMatch(/not in the relay map/)
  })

  it('refuses binary frames by name', async () => {
    const connection = nextId++
    service.open(connection, 0)
    expect(errorOf(await service.receive(connection, new Uint8Array(0), 0), connection)).toEqual({ status: 400, error: 'message must be JSON text, got a binary frame' })
  })

  it('requires hello first', async () => {
    const connection = nextId++
    service.open(connection, 0)
    const out = await service.receive(connection, '{"type":"ping","id":1}', 0)
    expect(errorOf(out, connection)).toEqual({ status: 400, error: 'expected a hello message first, got ping' })
  })

  it('times out a silent handshake and a silent session, and reports when to tick', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const pending = nextId++
    service.open(pending, 0)
    expect(service.nextEvent()).toBe(10_000)
    expect(await service.poll(9_999)).toEqual([])
    const timedOut = await service.poll(10_000)
    expect(closes(timedOut, pending)).toEqual([{ code: 4408, reason: 'no valid hello within the handshake timeout' }])
    expect(service.nextEvent()).toBeUndefined()

    const a = await join({ authKey: key }, generateKeyPair(), 20_000)
    expect(service.nextEvent()).toBe(20_000 + 2_000) // maintenance: looking for nodes removed elsewhere
    await service.poll(22_000)
    expect(sent(await service.poll(40_000), a.connection)).toEqual([{ type: 'keepalive' }]) // the server's own keepalive schedule
    await service.receive(a.connection, '{"type":"ping","id":1}', 50_000)
    for (let t = 50_000; t < 110_000; t += 2_000) expect(closes(await service.poll(t), a.connection)).toEqual([])
    const silent = await service.poll(110_000)
    expect(closes(silent, a.connection)[0]?.code).toBe(4408)
    expect(service.nodes()[0]).toMatchObject({ online: false, lastSeen: 110_000 })
  })
})

describe('hardening (issue 17)', () => {
  it('streams a large initial map in bounded chunks that add up to the whole network', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const total = 2 * PEERS_PER_MESSAGE + 17
    for (let i = 0; i < total; i++) await join({ authKey: key, hostname: `n${i}` })
    for (let i = 1; i < nextId; i++) await service.closed(i, 1500)
    const { connection, out } = await connect(generateKeyPair(), { authKey: key, hostname: 'late' }, 2000)
    const mine = sent(out, connection)
    const [welcome, ...chunks] = mine
    if (welcome?.type !== 'welcome') throw new Error('expected a welcome first')
    expect(welcome.more).toBe(2)
    expect(chunks.map((m) => m.type)).toEqual(['peers', 'peers'])
    const all = [...welcome.peers, ...chunks.flatMap((m) => (m.type === 'peers' ? m.upsert : []))]
    expect(all).toHaveLength(total)
    expect(new Set(all.map((p) => p.nodeKey)).size).toBe(total)
    for (const m of mine) expect(m.type === 'welcome' ? m.peers.length : m.type === 'peers' ? m.upsert.length : 0).toBeLessThanOrEqual(PEERS_PER_MESSAGE)
  })

  it('passes on only home relays from the relay map, as the map spells them', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key, homeRelay: { url: 'https://attacker.example/x' } })
    expect(a.self.homeRelay).toBeNull()
    // ws ↔ http, default port and trailing slash do not matter; the region comes from the map.
    const b = await join({ authKey: key, homeRelay: { url: 'https://relay.example:443/derp/', region: 'evil' } })
    expect(b.self.homeRelay).toEqual({ url: 'wss://relay.example/derp', region: 'fra' })
    const refused = await service.receive(b.connection, JSON.stringify({ type: 'update', homeRelay: { url: 'http://10.0.0.1/' } }), 2000)
    expect(errorOf(refused, b.connection)).toEqual({
      status: 400,
      error: 'homeRelay.url "http://10.0.0.1/" is not a relay of this network (not in the relay map); the update was ignored',
    })
    expect(closes(refused, b.connection)).toEqual([])
    expect(service.nodes().find((n) => n.id === b.self.id)?.homeRelay).toEqual({ url: 'wss://relay.example/derp', region: 'fra' })
    // A relay dropped from the map stops being passed on, even though it is stored.
    service.setRelayMap([])
    expect(service.nodes().find((n) => n.id === b.self.id)?.homeRelay).toBeNull()
  })

  it('shares one update budget between every node of a source address, and keeps a node budget across reconnects', async () => {
    const limited = await CoordinationService.create({ store, relayMap: RELAY_MAP, limits: { nodeBurst: 3, nodeIntervalMs: 1000, sourceBurst: 4, sourceIntervalMs: 1000 } })
    const key = await limited.createAuthKey({ reusable: true }, 1)
    const hello = (id: number, pair: KeyPair, source: string, now: number) => {
      const [challenge] = limited.open(id, now, source)
      return limited.receive(id, JSON.stringify(helloFor(pair, challenge!, { authKey: key })), now)
    }
    const watcher = generateKeyPair()
    await hello(1, watcher, '192.0.2.9', 1000)
    const pairs = [generateKeyPair(), generateKeyPair()]
    await hello(2, pairs[0]!, '198.51.100.1', 1000)
    await hello(3, pairs[1]!, '198.51.100.1', 1000)
    const toggle = (id: number, n: number) => limited.receive(id, JSON.stringify({ type: 'update', homeRelay: n % 2 ? null : { url: 'wss://r/derp' } }), 1000)
    let pushed = 0
    for (let n = 0; n < 10; n++) for (const id of [2, 3]) pushed += sent(await toggle(id, n), 1).length
    expect(pushed).toBe(4) // the source's burst, though each node alone could have made 3
    // A node that spends its budget and reconnects (from elsewhere) does not get a fresh one.
    const roaming = generateKeyPair()
    await hello(5, roaming, '203.0.113.1', 1000)
    for (let n = 0; n < 3; n++) expect(sent(await toggle(5, n), 1)).toHaveLength(1)
    await limited.closed(5, 1000)
    await hello(6, roaming, '203.0.113.2', 1000)
    expect(sent(await toggle(6, 3), 1)).toEqual([])
  })

  it('refuses a large message before hello, long before the 1 MiB limit', async () => {
    const connection = nextId++
    service.open(connection, 0)
    const out = await service.receive(connection, JSON.stringify({ type: 'hello', padding: 'x'.repeat(MAX_PRE_HELLO_BYTES) }), 0)
    expect(errorOf(out, connection)).toEqual({ status: 400, error: `message is larger than ${MAX_PRE_HELLO_BYTES} bytes` })
    expect(closes(out, connection)[0]?.code).toBe(4400)
  })

  it('removes a node: its session is closed with 410 and the others are told', async () => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const a = await join({ authKey: key, hostname: 'a' })
    const b = await join({ authKey: key, hostname: 'b' })
    const out = await service.removeNode(b.self.id)
    expect(errorOf(out, b.connection)).toEqual({ status: 410, error: 'this node was removed by the operator' })
    expect(closes(out, b.connection)[0]?.code).toBe(4410)
    expect(sent(out, a.connection)).toEqual([{ type: 'peers', upsert: [], remove: [b.self.nodeKey] }])
    expect(await service.isRegistered(b.pair.publicKey)).toBe(false)
    expect(service.nodes().map((n) => n.hostname)).toEqual(['a'])
    // The same key now needs an auth key again.
    expect(errorOf((await connect(b.pair, {}, 2000)).out, nextId - 1)?.status).toBe(401)
  })

  it('expires nodes offline for longer than the expiry, and only those', async () => {
    const expiring = await CoordinationService.create({ store, relayMap: RELAY_MAP, nodeExpiryMs: 3_600_000 })
    const key = await expiring.createAuthKey({ reusable: true }, 1)
    const join2 = (id: number, now: number) => {
      const [challenge] = expiring.open(id, now)
      return expiring.receive(id, JSON.stringify(helloFor(generateKeyPair(), challenge!, { authKey: key, hostname: `n${id}` })), now)
    }
    await join2(1, 1000)
    await join2(2, 1000)
    await join2(3, 1000)
    await expiring.closed(2, 2000)
    await expiring.closed(3, 3_000_000)
    expect(
      (await expiring.poll(1000 + 3_600_000 + 60_000)).flatMap((o) => (o.kind === 'send' && o.connection === 1 && o.message.type === 'peers' ? o.message.remove : [])),
    ).toHaveLength(1)
    expect(expiring.nodes().map((n) => n.hostname)).toEqual(['n1', 'n3'])
  })
})

describe('auth-key expiry and revocation, reserved hostnames (issue 17)', () => {
  it('refuses an expired key and a revoked one with a 401 that says which', async () => {
    const expiring = await service.createAuthKey({ reusable: true, expiresInMs: 60_000 }, 1000)
    expect((await join({ authKey: expiring }, generateKeyPair(), 60_999)).self.online).toBe(true)
    const late = await connect(generateKeyPair(), { authKey: expiring }, 61_000)
    expect(errorOf(late.out, late.connection)).toEqual({ status: 401, error: `authKey expired at ${new Date(61_000).toISOString()}` })
    const revocable = await service.createAuthKey({ reusable: true }, 1000)
    const member = await join({ authKey: revocable })
    await store.revokeAuthKey((await store.listAuthKeys()).at(-1)!.id, 2000)
    const refused = await connect(generateKeyPair(), { authKey: revocable }, 3000)
    expect(errorOf(refused.out, refused.connection)).toEqual({ status: 401, error: 'authKey was revoked' })
    // Nodes it registered stay: they reconnect without a key.
    await service.closed(member.connection, 3000)
    expect((await join({}, member.pair, 4000)).self.id).toBe(member.self.id)
  })

  it.each(['localhost', 'LocalHost', 'relay', 'wpad'])('refuses the reserved hostname %s in a hello and in an update, with a clear 400', async (name) => {
    const key = await service.createAuthKey({ reusable: true }, 1)
    const refused = await connect(generateKeyPair(), { authKey: key, hostname: name })
    expect(errorOf(refused.out, refused.connection)).toEqual({
      status: 400,
      error: `hostname "${name.toLowerCase()}" is reserved (it already means something else on every node); choose another`,
    })
    expect(closes(refused.out, refused.connection)[0]?.code).toBe(4400)
    const member = await join({ authKey: key, hostname: 'fine' })
    const out = await service.receive(member.connection, JSON.stringify({ type: 'update', hostname: name }), 2000)
    expect(errorOf(out, member.connection)?.status).toBe(400)
    expect(closes(out, member.connection)).toEqual([])
    expect(service.nodes().find((n) => n.id === member.self.id)?.hostname).toBe('fine')
    // A name that merely contains one is fine.
    expect((await join({ authKey: key, hostname: `${name}-box` })).self.hostname).toBe(`${name.toLowerCase()}-box`)
  })
})

describe('removal by another process', () => {
  it('notices a node deleted through another connection to the database and disconnects it with 410', async () => {
    const dir = mkdtempSync(joinPath(tmpdir(), 'burrow-reconcile-'))
    try {
      const fileStore = SqliteStore.open(dir)
      const live = await CoordinationService.create({ store: fileStore })
      const key = await live.createAuthKey({ reusable: true }, 1)
      const pairs = [generateKeyPair(), generateKeyPair()]
      for (const [i, pair] of pairs.entries()) {
        const [challenge] = live.open(i + 1, 1000)
        await live.receive(i + 1, JSON.stringify(helloFor(pair, challenge!, { authKey: key, hostname: `n${i}` })), 1000)
      }
      const cli = SqliteStore.open(dir) // as `burrow relay nodes remove` does
      await cli.deleteNode((await cli.nodeByKey(nodeKeyText(pairs[1]!.publicKey)))!.id)
      await cli.close()
      const out = await live.poll(1000 + MAINTENANCE_INTERVAL_MS)
      expect(errorOf(out, 2)).toEqual({ status: 410, error: 'this node was removed by the operator' })
      expect(sent(out, 1)).toEqual([{ type: 'peers', upsert: [], remove: [nodeKeyText(pairs[1]!.publicKey)] }])
      expect(live.nodes().map((n) => n.hostname)).toEqual(['n0'])
      await fileStore.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
