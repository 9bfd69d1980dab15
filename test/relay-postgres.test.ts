// Several `burrow relay` processes serving one network from one PostgreSQL (issue 15): a real
// PostgreSQL started here (as nobody, in a temp dir, on a port of its own), real relay
// processes with --database, real coordination clients and DERP connections on 127.0.0.1.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '../src/crypto/index.ts'
import { CoordinationClient } from '../src/control/coordination-client.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { PostgresStore } from '../src/server/coordination/store-postgres.ts'
import { createAuthKey, removeRelayDataDirs, startRelayProcess, waitFor, type RelayProcess } from './helpers/relay-process.ts'
import { startPostgres, type PostgresServer } from './helpers/postgres.ts'

let postgres: PostgresServer
let databases = 0
const relays: RelayProcess[] = []
const cleanups: Array<() => void> = []

beforeAll(async () => {
  postgres = await startPostgres()
}, 120_000)
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  for (const relay of relays.splice(0)) await relay.stop('SIGKILL')
  // A test that killed PostgreSQL leaves it running again for the next.
  await postgres.start().catch(() => {})
})
afterAll(async () => {
  removeRelayDataDirs()
  await postgres?.stop()
})

async function freshDatabase(): Promise<string> {
  return postgres.createDatabase(`relays_${process.pid}_${++databases}`)
}

async function relayOn(database: string, extra: string[] = []): Promise<RelayProcess> {
  const relay = await startRelayProcess(['--database', database, '--stun-port', '0', ...extra])
  relays.push(relay)
  return relay
}

function client(relay: RelayProcess, options: { authKey?: string; hostname: string; pair?: ReturnType<typeof generateKeyPair> }): CoordinationClient {
  const c = new CoordinationClient({
    url: `http://127.0.0.1:${relay.port}`,
    nodeKeyPair: options.pair ?? generateKeyPair(),
    discoPublicKey: generateKeyPair().publicKey,
    hostname: options.hostname,
    ...(options.authKey !== undefined ? { authKey: options.authKey } : {}),
    backoffBaseMs: 50,
    backoffCapMs: 500,
  })
  c.start()
  cleanups.push(() => c.stop())
  return c
}

describe('several relays on one PostgreSQL', () => {
  it('puts a node registered through relay B into the live peer map of a node on relay A, and passes on its updates, rename and removal', async () => {
    const database = await freshDatabase()
    // Both relays name the same relay map, as an operator's would.
    const map = ['--relay-url', 'wss://region.example/derp']
    const a = await relayOn(database, map)
    const b = await relayOn(database, map)
    // Made through the CLI against the database, as an operator would.
    const key = createAuthKey(a.dataDir, '--reusable', '--database', database)
    const onA = client(a, { authKey: key, hostname: 'on-a' })
    const selfA = await onA.ready()
    const pairB = generateKeyPair()
    const onB = client(b, { authKey: key, hostname: 'on-b', pair: pairB })
    const selfB = await onB.ready()
    // Both relays give out addresses from the same network.
    expect(selfB.addresses[1]!.split(':').slice(0, 3)).toEqual(selfA.addresses[1]!.split(':').slice(0, 3))
    expect(selfB.addresses[0]).not.toBe(selfA.addresses[0])

    await waitFor('the node on B in the peer map of the node on A', () => onA.peer(selfB.nodeKey) !== undefined)
    expect(onA.peer(selfB.nodeKey)).toMatchObject({ hostname: 'on-b', addresses: selfB.addresses })
    // Online on B is online on A too.
    await waitFor('the node on B shown online on A', () => onA.peer(selfB.nodeKey)?.online === true)
    // And A's node was in B's welcome already, online (B's first welcome reads who is online elsewhere).
    expect(onB.peer(selfA.nodeKey)).toMatchObject({ hostname: 'on-a', online: true })

    // Updates through B: home relay and disco key.
    onB.setHomeRelay({ url: 'wss://region.example/derp' })
    await waitFor("B's home relay on A", () => onA.peer(selfB.nodeKey)?.homeRelay?.url === 'wss://region.example/derp')
    const disco = generateKeyPair().publicKey
    onB.setDiscoKey(disco)
    await waitFor("B's new disco key on A", () => onA.peer(selfB.nodeKey)?.discoKey === `discokey:${Buffer.from(disco).toString('hex')}`)

    // A rename: the node comes back to B under another hostname.
    onB.stop()
    await waitFor('the node that left B shown offline on A', () => onA.peer(selfB.nodeKey)?.online === false)
    const renamed = client(b, { pair: pairB, hostname: 'renamed-b' })
    expect((await renamed.ready()).hostname).toBe('renamed-b')
    await waitFor('the rename on A, online again', () => onA.peer(selfB.nodeKey)?.hostname === 'renamed-b' && onA.peer(selfB.nodeKey)?.online === true)

    // A same-named node on A gets the next free name, though the first holder is on B.
    const twin = client(a, { authKey: key, hostname: 'renamed-b' })
    expect((await twin.ready()).hostname).toBe('renamed-b-2')

    // `nodes remove` through the database reaches the node's own relay (B) and A's map.
    const store = await PostgresStore.open({ url: database })
    cleanups.push(() => void store.close())
    const refusals: number[] = []
    renamed.on('error', (error) => refusals.push(error.status))
    await store.deleteNode(selfB.id)
    await waitFor('the removed node to leave the map on A', () => onA.peer(selfB.nodeKey) === undefined)
    await waitFor('the removed node to be told by its own relay', () => refusals.length > 0)
    expect(refusals[0]).toBe(410)
  })

  it('keeps addresses and hostnames unique while PostgreSQL restarts during a stream of registrations through two relays, and stores every registration that succeeded', async () => {
    const database = await freshDatabase()
    const a = await relayOn(database)
    const b = await relayOn(database)
    const key = createAuthKey(a.dataDir, '--reusable', '--database', database)
    const succeeded = new Map<string, { hostname: string; addresses: string[] }>()
    const failures: string[] = []
    const register = async (i: number): Promise<void> => {
      const c = new CoordinationClient({
        url: `http://127.0.0.1:${(i % 2 === 0 ? a : b).port}`,
        nodeKeyPair: generateKeyPair(),
        discoPublicKey: generateKeyPair().publicKey,
        hostname: 'burst', // every node asks for the same name
        authKey: key,
        backoffBaseMs: 50,
        backoffCapMs: 400,
      })
      cleanups.push(() => c.stop())
      c.on('error', (error) => failures.push(`${error.status} ${error.message}`))
      c.start()
      const self = await c.ready()
      succeeded.set(self.nodeKey, { hostname: self.hostname, addresses: self.addresses })
      c.stop()
    }
    const total = 40
    const batch = (from: number, to: number): Promise<void[]> => Promise.all(Array.from({ length: to - from }, (_, i) => register(from + i)))
    await batch(0, 8)
    // The kill lands while these are in flight, ...
    const inFlight = batch(8, 16)
    await postgres.kill()
    // ... and these start while the database is down: they are refused (503) and retry.
    const whileDown = batch(16, 24)
    await waitFor('a registration refused while the database is down', () => failures.some((f) => f.startsWith('503 ')), 60_000)
    await postgres.start()
    await Promise.all([inFlight, whileDown])
    await batch(24, total)
    expect(succeeded.size).toBe(total)

    const store = await PostgresStore.open({ url: database })
    cleanups.push(() => void store.close())
    const stored = await store.allNodes()
    expect(stored).toHaveLength(total)
    expect(new Set(stored.map((n) => n.ipv4)).size).toBe(total)
    expect(new Set(stored.map((n) => n.ipv6)).size).toBe(total)
    expect(new Set(stored.map((n) => n.hostname)).size).toBe(total)
    for (const [nodeKey, self] of succeeded) {
      const row = stored.find((n) => n.nodeKey === nodeKey)
      expect(row, nodeKey).toBeDefined()
      expect({ hostname: row!.hostname, addresses: [row!.ipv4, row!.ipv6] }).toEqual(self)
    }
  })

  it('keeps forwarding DERP packets between connected nodes while PostgreSQL is down, refuses registrations with 503, and recovers when it returns', async () => {
    const database = await freshDatabase()
    // Re-verified every 100 ms: admission must not depend on the database either.
    const relay = await relayOn(database, ['--verify-clients', '--reverify-interval', '100'])
    const other = await relayOn(database)
    const key = createAuthKey(relay.dataDir, '--reusable', '--database', database)
    const pairs = [generateKeyPair(), generateKeyPair()]
    const members = pairs.map((pair, i) => client(relay, { authKey: key, hostname: `member${i}`, pair }))
    for (const m of members) await m.ready()
    const watcher = client(relay, { authKey: key, hostname: 'watcher' })
    await watcher.ready()

    const derp = pairs.map((pair) => {
      const connection = new DerpConnection({ url: relay.url, privateKey: pair.privateKey, dial: nodeWebSocketDialer(), backoff: { baseMs: 50, capMs: 500 } })
      cleanups.push(() => connection.close())
      connection.start()
      return connection
    })
    await waitFor('both nodes logged in to DERP', () => derp.every((d) => d.isConnected))
    const received: string[] = []
    derp[1]!.on('packet', (_source, packet) => received.push(new TextDecoder().decode(packet)))
    derp[0]!.send(pairs[1]!.publicKey, new TextEncoder().encode('before'))
    await waitFor('a packet before the outage', () => received.includes('before'))

    await postgres.kill()
    for (let i = 0; i < 5; i++) derp[0]!.send(pairs[1]!.publicKey, new TextEncoder().encode(`during-${i}`))
    await waitFor('packets during the outage', () => received.filter((r) => r.startsWith('during-')).length === 5)
    // A registration gets a clear, retryable refusal (the client keeps retrying).
    const late = client(relay, { authKey: key, hostname: 'late' })
    const refusals: Array<{ status: number; message: string }> = []
    late.on('error', (error) => refusals.push({ status: error.status, message: error.message }))
    await waitFor('the refused registration', () => refusals.length > 0)
    expect(refusals[0]).toEqual({ status: 503, message: 'the coordination database is unavailable; try again later' })
    expect(late.state).not.toBe('failed')
    // Packets still flow after the refusals.
    derp[0]!.send(pairs[1]!.publicKey, new TextEncoder().encode('still'))
    await waitFor('a packet after the refusals', () => received.includes('still'))

    await postgres.start()
    const lateSelf = await late.ready()
    expect(lateSelf.hostname).toBe('late')
    await waitFor('the late node in the watcher map', () => watcher.peer(lateSelf.nodeKey) !== undefined)
    // The relay resubscribed: a node registered through the other relay reaches it again.
    const elsewhere = client(other, { authKey: key, hostname: 'elsewhere' })
    const elsewhereSelf = await elsewhere.ready()
    await waitFor('a node from the other relay after the outage', () => watcher.peer(elsewhereSelf.nodeKey) !== undefined)
    expect(relay.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('change subscription restored'))).toBe(true)
    derp[0]!.send(pairs[1]!.publicKey, new TextEncoder().encode('after'))
    await waitFor('a packet after the outage', () => received.includes('after'))
  })
})
