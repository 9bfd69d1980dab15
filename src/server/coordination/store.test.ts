import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CoordinationStore, DATABASE_FILE, SCHEMA_VERSION, StoreError, type NewNode } from './store.ts'

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

describe('CoordinationStore', () => {
  it('creates the database in the data directory at the current schema version', () => {
    const store = CoordinationStore.open(join(dir, 'nested'))
    expect(store.schemaVersion).toBe(SCHEMA_VERSION)
    expect(statSync(join(dir, 'nested', DATABASE_FILE)).isFile()).toBe(true)
    store.close()
  })

  it('keeps meta, auth keys and nodes across reopen', () => {
    let store = CoordinationStore.open(dir)
    expect(store.getOrCreateMeta('prefix', () => 'first')).toBe('first')
    expect(store.getOrCreateMeta('prefix', () => 'second')).toBe('first')
    const key = store.insertAuthKey('hash-1', { reusable: false, ephemeral: true, now: 5 })
    const inserted = store.insertNode(node({ authKeyId: key.id, homeRelay: { url: 'wss://relay.example/derp', region: 'ams' } }))
    store.markAuthKeyUsed(key.id, 9)
    store.close()

    store = CoordinationStore.open(dir)
    expect(store.getMeta('prefix')).toBe('first')
    expect(store.findAuthKey('hash-1')).toEqual({ id: key.id, reusable: false, ephemeral: true, createdAt: 5, usedAt: 9, expiresAt: null, revokedAt: null })
    expect(store.nodeByKey(inserted.nodeKey)).toEqual(inserted)
    expect(store.nodeById(inserted.id)).toEqual(inserted)
    expect(store.hostnameOwner('alpha')).toBe(inserted.id)
    expect(store.ipv4Taken('100.64.0.1')).toBe(true)
    expect(store.ipv4Taken('100.64.0.2')).toBe(false)
    store.close()
  })

  it('marks a key used only once (the first use time stays)', () => {
    const store = new CoordinationStore(':memory:')
    const key = store.insertAuthKey('h', { reusable: true, ephemeral: false, now: 1 })
    store.markAuthKeyUsed(key.id, 10)
    store.markAuthKeyUsed(key.id, 20)
    expect(store.findAuthKey('h')?.usedAt).toBe(10)
    store.close()
  })

  it('updates and deletes nodes', () => {
    const store = new CoordinationStore(':memory:')
    const n = store.insertNode(node())
    store.updateNode({ ...n, nodeKey: `nodekey:${'33'.repeat(32)}`, hostname: 'beta', lastSeen: 77, homeRelay: { url: 'wss://r/derp' } })
    expect(store.nodeByKey(n.nodeKey)).toBeUndefined()
    expect(store.nodeById(n.id)).toMatchObject({ hostname: 'beta', lastSeen: 77, homeRelay: { url: 'wss://r/derp' } })
    store.deleteNode(n.id)
    expect(store.allNodes()).toEqual([])
    expect(() => store.updateNode(n)).toThrow(StoreError)
    store.close()
  })

  it('refuses duplicate addresses, hostnames and keys and leaves the store unchanged', () => {
    const store = new CoordinationStore(':memory:')
    store.insertNode(node())
    expect(() => store.insertNode(node({ nodeKey: `nodekey:${'44'.repeat(32)}`, hostname: 'other', ipv6: 'fd00::2' }))).toThrow(/UNIQUE/)
    expect(() => store.insertNode(node({ ipv4: '100.64.0.9', ipv6: 'fd00::9', hostname: 'other' }))).toThrow(/UNIQUE/)
    expect(() => store.insertNode(node({ nodeKey: `nodekey:${'44'.repeat(32)}`, ipv4: '100.64.0.9', ipv6: 'fd00::9' }))).toThrow(/UNIQUE/)
    expect(store.allNodes()).toHaveLength(1)
    store.close()
  })

  it('rolls back a failed transaction', () => {
    const store = new CoordinationStore(':memory:')
    expect(() =>
      store.transaction(() => {
        store.setMeta('a', '1')
        throw new Error('boom')
      }),
    ).toThrow('boom')
    expect(store.getMeta('a')).toBeUndefined()
    store.close()
  })

  it('refuses a database from a newer Burrow', () => {
    const path = join(dir, DATABASE_FILE)
    const raw = new Database(path)
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
    raw.close()
    chmodSync(path, 0o600)
    expect(() => CoordinationStore.open(dir)).toThrow(/newer than this Burrow/)
  })

  it('creates the database and its -wal/-shm files readable only by the owner, whatever the umask', () => {
    const old = process.umask(0o022)
    try {
      const store = CoordinationStore.open(join(dir, 'fresh'))
      store.setMeta('a', '1')
      for (const suffix of ['', '-wal', '-shm']) expect(statSync(`${store.path}${suffix}`).mode & 0o777, `coordination.sqlite${suffix}`).toBe(0o600)
      store.close()
    } finally {
      process.umask(old)
    }
  })

  it('refuses to open a database other users can read, naming the file, and leaves its mode alone', () => {
    const path = join(dir, DATABASE_FILE)
    new Database(path).close()
    chmodSync(path, 0o644)
    expect(() => CoordinationStore.open(dir)).toThrow(`permissions 0644 for ${path} are too open`)
    expect(statSync(path).mode & 0o777).toBe(0o644)
  })
})
