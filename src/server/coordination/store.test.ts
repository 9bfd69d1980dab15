import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DATABASE_FILE, SCHEMA_VERSION, SqliteStore, StoreConflictError, StoreError, type CoordinationStore, type NewNode, type StoreChange } from './store.ts'
import { POSTGRES_SCHEMA_VERSION, PostgresStore } from './store-postgres.ts'
import { startPostgres, type PostgresServer } from '../../../test/helpers/postgres.ts'
import { generateKeyPair } from '../../crypto/index.ts'
import { CoordinationService, PRESENCE_INTERVAL_MS } from './service.ts'
import { helloFor } from './test-helpers.ts'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'burrow-store-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

function node(overrides: Partial<NewNode> = {}): NewNode {
  return {
    nodeKey: `nodekey:${'11'.repeat(32)}`,
    discoKey: `discokey:${'22'.repeat(32)}`,
    hostname: 'alpha',
    requestedHostname: 'Alpha',
    ipv4: '100.64.0.1',
    ipv6: 'fd00:1:2::6440:1',
    ephemeral: false,
    authKeyId: null,
    createdAt: 1000,
    lastSeen: null,
    homeRelay: null,
    ...overrides,
  }
}

/** One implementation under the contract: `open()` gives a store on one database; calling it again reopens the same one. */
interface Implementation {
  name: string
  version: number
  /** Whether writers in separate connections may hold transactions open at once (SQLite: one writer per file; one relay, one connection). */
  concurrentConnections: boolean
  /** A fresh, empty database; returns its opener. */
  fresh(): Promise<() => Promise<CoordinationStore>>
  /** Marks the database one schema version newer than this Burrow. */
  bumpSchema(open: () => Promise<CoordinationStore>): Promise<void>
}

let postgres: PostgresServer | undefined
let databases = 0
const opened: CoordinationStore[] = []

const sqlite: Implementation = {
  name: 'SQLite',
  version: SCHEMA_VERSION,
  concurrentConnections: false,
  async fresh() {
    const path = join(dir, `db-${++databases}`)
    return async () => SqliteStore.open(path)
  },
  async bumpSchema() {
    const path = join(dir, `db-${databases}`, DATABASE_FILE)
    const raw = new Database(path)
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
    raw.close()
  },
}

const postgresql: Implementation = {
  name: 'PostgreSQL',
  version: POSTGRES_SCHEMA_VERSION,
  concurrentConnections: true,
  async fresh() {
    const url = await postgres!.createDatabase(`contract_${process.pid}_${++databases}`)
    return () => PostgresStore.open({ url })
  },
  async bumpSchema(open) {
    const store = await open()
    await store.close()
    await postgres!.query(`UPDATE schema_version SET version = ${POSTGRES_SCHEMA_VERSION + 1}`, `contract_${process.pid}_${databases}`)
  },
}

beforeAll(async () => {
  postgres = await startPostgres()
}, 120_000)
afterAll(async () => {
  await postgres?.stop()
})
afterEach(async () => {
  for (const store of opened.splice(0)) await store.close().catch(() => {})
})

describe.each([sqlite, postgresql])('CoordinationStore contract on $name', (impl) => {
  let open: () => Promise<CoordinationStore>
  beforeEach(async () => {
    const opener = await impl.fresh()
    open = async () => {
      const store = await opener()
      opened.push(store)
      return store
    }
  })

  it('creates the schema at the current version (a version table / user_version)', async () => {
    const store = await open()
    expect(await store.schemaVersion()).toBe(impl.version)
  })

  it('keeps meta, auth keys and nodes across reopen', async () => {
    let store = await open()
    expect(await store.getOrCreateMeta('prefix', () => 'first')).toBe('first')
    expect(await store.getOrCreateMeta('prefix', () => 'second')).toBe('first')
    const key = await store.insertAuthKey('hash-1', { reusable: false, ephemeral: true, now: 5 })
    const inserted = await store.insertNode(node({ authKeyId: key.id, homeRelay: { url: 'wss://relay.example/derp', region: 'ams' } }))
    await store.markAuthKeyUsed(key.id, 9)
    await store.close()

    store = await open()
    expect(await store.getMeta('prefix')).toBe('first')
    expect(await store.findAuthKey('hash-1')).toEqual({ id: key.id, reusable: false, ephemeral: true, createdAt: 5, usedAt: 9, expiresAt: null, revokedAt: null })
    expect(await store.nodeByKey(inserted.nodeKey)).toEqual(inserted)
    expect(await store.nodeById(inserted.id)).toEqual(inserted)
    expect(await store.hostnameOwner('alpha')).toBe(inserted.id)
    expect(await store.ipv4Taken('100.64.0.1')).toBe(true)
    expect(await store.ipv4Taken('100.64.0.2')).toBe(false)
  })

  it('marks a key used only once (the first use time stays)', async () => {
    const store = await open()
    const key = await store.insertAuthKey('h', { reusable: true, ephemeral: false, now: 1 })
    await store.markAuthKeyUsed(key.id, 10)
    await store.markAuthKeyUsed(key.id, 20)
    expect((await store.findAuthKey('h'))?.usedAt).toBe(10)
  })

  it('lets a single-use key be claimed exactly once, even by two connections at the same instant, and a reusable key always', async () => {
    const a = await open()
    const b = await open()
    const once = await a.insertAuthKey('once', { reusable: false, ephemeral: false, now: 1 })
    const many = await a.insertAuthKey('many', { reusable: true, ephemeral: false, now: 1 })
    const claims = await Promise.all([a.claimAuthKey(once.id, 5), b.claimAuthKey(once.id, 6), a.claimAuthKey(once.id, 7)])
    expect(claims.filter(Boolean)).toHaveLength(1)
    expect(await Promise.all([a.claimAuthKey(many.id, 8), b.claimAuthKey(many.id, 9)])).toEqual([true, true])
    // The first claim to commit sets the use time; either may be first.
    expect([8, 9]).toContain((await b.findAuthKey('many'))?.usedAt)
  })

  it('revokes a key once, keeping the first revocation time, and lists keys in id order', async () => {
    const store = await open()
    const first = await store.insertAuthKey('k1', { reusable: false, ephemeral: false, now: 1, expiresAt: 99 })
    const second = await store.insertAuthKey('k2', { reusable: true, ephemeral: true, now: 2 })
    expect(await store.revokeAuthKey(first.id, 10)).toBe(true)
    expect(await store.revokeAuthKey(first.id, 20)).toBe(true)
    expect(await store.revokeAuthKey(first.id + second.id + 100, 20)).toBe(false)
    expect((await store.authKeyById(first.id))?.revokedAt).toBe(10)
    expect((await store.listAuthKeys()).map((k) => [k.id, k.expiresAt, k.revokedAt])).toEqual([
      [first.id, 99, 10],
      [second.id, null, null],
    ])
  })

  it('updates and deletes nodes', async () => {
    const store = await open()
    const n = await store.insertNode(node())
    await store.updateNode({ ...n, nodeKey: `nodekey:${'33'.repeat(32)}`, hostname: 'beta', lastSeen: 77, homeRelay: { url: 'wss://r/derp' } })
    expect(await store.nodeByKey(n.nodeKey)).toBeUndefined()
    expect(await store.nodeById(n.id)).toMatchObject({ hostname: 'beta', lastSeen: 77, homeRelay: { url: 'wss://r/derp' } })
    await store.deleteNode(n.id)
    expect(await store.allNodes()).toEqual([])
    await expect(store.updateNode(n)).rejects.toThrow(StoreError)
  })

  it('refuses duplicate addresses, hostnames and keys with StoreConflictError and leaves the store unchanged', async () => {
    const store = await open()
    await store.insertNode(node())
    await expect(store.insertNode(node({ nodeKey: `nodekey:${'44'.repeat(32)}`, hostname: 'other', ipv6: 'fd00::2' }))).rejects.toThrow(/UNIQUE/)
    await expect(store.insertNode(node({ ipv4: '100.64.0.9', ipv6: 'fd00::9', hostname: 'other' }))).rejects.toThrow(StoreConflictError)
    await expect(store.insertNode(node({ nodeKey: `nodekey:${'44'.repeat(32)}`, ipv4: '100.64.0.9', ipv6: 'fd00::9' }))).rejects.toThrow(StoreConflictError)
    expect(await store.allNodes()).toHaveLength(1)
  })

  it('gives exactly one of several writers racing for the same address or hostname the row', async () => {
    const first = await open()
    const stores = impl.concurrentConnections ? [first, await open(), await open()] : [first, first, first]
    const results = await Promise.allSettled(
      stores.map((store, i) =>
        store.transaction(async (tx) => {
          if (await tx.ipv4Taken('100.64.0.7')) throw new StoreConflictError('taken')
          return tx.insertNode(node({ nodeKey: `nodekey:${String(i + 5).repeat(64)}`, hostname: 'same', ipv4: '100.64.0.7', ipv6: `fd00::${i + 7}` }))
        }),
      ),
    )
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(StoreConflictError)
    expect(await stores[0]!.allNodes()).toHaveLength(1)
  })

  it('rolls back a failed transaction', async () => {
    const store = await open()
    await expect(
      store.transaction(async (tx) => {
        await tx.setMeta('a', '1')
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(await store.getMeta('a')).toBeUndefined()
  })

  it('keeps a call made during a transaction out of it (it lands after the commit or rollback)', async () => {
    const store = await open()
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const tx = store.transaction(async (t) => {
      await t.setMeta('in', '1')
      await gate
      throw new Error('rolled back')
    })
    const outside = store.setMeta('out', '2')
    release()
    await expect(tx).rejects.toThrow('rolled back')
    await outside
    expect(await store.getMeta('in')).toBeUndefined()
    expect(await store.getMeta('out')).toBe('2')
  })

  it('refuses a database from a newer Burrow', async () => {
    const store = await open()
    await store.close()
    await impl.bumpSchema(open)
    await expect(open()).rejects.toThrow(/newer than this Burrow/)
  })
})

describe('PostgreSQL store between relays', () => {
  it("reports another store's committed node changes (insert, update, delete) by id, and nothing for a rolled-back one", async () => {
    const url = await postgres!.createDatabase(`notify_${process.pid}`)
    const a = await PostgresStore.open({ url })
    const b = await PostgresStore.open({ url })
    opened.push(a, b)
    const seen: StoreChange[] = []
    b.onChange((change) => seen.push(change))
    const n = await a.insertNode(node())
    await a.updateNode({ ...n, hostname: 'renamed' })
    await expect(
      a.transaction(async (tx) => {
        await tx.insertNode(node({ nodeKey: `nodekey:${'99'.repeat(32)}`, hostname: 'ghost', ipv4: '100.64.0.99', ipv6: 'fd00::99' }))
        throw new Error('abort')
      }),
    ).rejects.toThrow('abort')
    await a.deleteNode(n.id)
    await waitUntil(() => seen.length >= 3)
    expect(seen).toEqual([
      { kind: 'nodes', ids: [n.id] },
      { kind: 'nodes', ids: [n.id] },
      { kind: 'nodes', ids: [n.id] },
    ])
  })

  it("lets one relay's --node-expiry remove a node offline everywhere but not one still connected to another relay", async () => {
    const url = await postgres!.createDatabase(`presence_${process.pid}`)
    const storeA = await PostgresStore.open({ url })
    const storeB = await PostgresStore.open({ url })
    opened.push(storeA, storeB)
    const hour = 3_600_000
    const a = await CoordinationService.create({ store: storeA, nodeExpiryMs: hour })
    const b = await CoordinationService.create({ store: storeB })
    const key = await b.createAuthKey({ reusable: true }, 0)
    const hello = async (id: number, hostname: string, now: number) => {
      const [challenge] = b.open(id, now)
      const out = await b.receive(id, JSON.stringify(helloFor(generateKeyPair(), challenge!, { authKey: key, hostname })), now)
      expect(out.some((o) => o.kind === 'send' && o.message.type === 'welcome')).toBe(true)
    }
    await hello(1, 'stays', 1000)
    await hello(2, 'leaves', 1000)
    await b.closed(2, 2000)
    // B's maintenance (it runs every MAINTENANCE_INTERVAL_MS while nodes are online) records who is connected.
    const later = 1000 + 2 * hour
    await b.receive(1, JSON.stringify({ type: 'ping', id: 1 }), later) // 'stays' keeps its session
    await b.poll(later)
    await a.storeChanged({ kind: 'resync' }, later)
    expect(a.nodes().map((n) => n.hostname)).toEqual(['stays', 'leaves'])
    await a.poll(later + 1)
    expect((await storeA.allNodes()).map((n) => n.hostname)).toEqual(['stays'])
    // Once B stops vouching for it (B gone, so no refresh), the connected-elsewhere node expires too.
    await a.poll(later + 1 + 60_000 + 2 * PRESENCE_INTERVAL_MS)
    expect(await storeA.allNodes()).toEqual([])
  })

  it('turns a database that is down into StoreUnavailableError naming it, without the password', async () => {
    await expect(PostgresStore.open({ url: 'postgres://burrow:hunter2@127.0.0.1:1/none' })).rejects.toThrow(
      /^the coordination database postgres:\/\/burrow:\*\*\*@127\.0\.0\.1:1\/none is unavailable: /,
    )
  })
})

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((resolve) => setImmediate(resolve))
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5))
}

describe('SqliteStore', () => {
  it('creates the database in the data directory at the current schema version', async () => {
    const store = SqliteStore.open(join(dir, 'nested'))
    expect(await store.schemaVersion()).toBe(SCHEMA_VERSION)
    expect(statSync(join(dir, 'nested', DATABASE_FILE)).isFile()).toBe(true)
    await store.close()
  })

  it('refuses a database from a newer Burrow', () => {
    const path = join(dir, DATABASE_FILE)
    const raw = new Database(path)
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
    raw.close()
    chmodSync(path, 0o600)
    expect(() => SqliteStore.open(dir)).toThrow(/newer than this Burrow/)
  })

  it('creates the database and its -wal/-shm files readable only by the owner, whatever the umask', async () => {
    const old = process.umask(0o022)
    try {
      const store = SqliteStore.open(join(dir, 'fresh'))
      await store.setMeta('a', '1')
      for (const suffix of ['', '-wal', '-shm']) expect(statSync(`${store.path}${suffix}`).mode & 0o777, `coordination.sqlite${suffix}`).toBe(0o600)
      await store.close()
    } finally {
      process.umask(old)
    }
  })

  it('refuses to open a database other users can read, naming the file, and leaves its mode alone', () => {
    const path = join(dir, DATABASE_FILE)
    new Database(path).close()
    chmodSync(path, 0o644)
    expect(() => SqliteStore.open(dir)).toThrow(`permissions 0644 for ${path} are too open`)
    expect(statSync(path).mode & 0o777).toBe(0o644)
  })
})
