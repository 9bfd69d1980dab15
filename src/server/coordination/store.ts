// Durable coordination state: the server key, the network's IPv6 prefix, auth keys (only their
// SHA-256 is kept) and registered nodes. Online state is not stored; it lives in the service and
// dies with the process. `CoordinationStore` is the one (async) interface the service uses; this
// file holds the embedded SQLite implementation, store-postgres.ts the PostgreSQL one that lets
// several relay processes serve one network.
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { assertPrivateFile, createPrivateFile } from '../data-dir.ts'
import { join } from 'node:path'
import type { HomeRelay } from '../../control/protocol.ts'

export const DATABASE_FILE = 'coordination.sqlite'

/** Each entry moves the schema from version i to i + 1 (`PRAGMA user_version`). Never edit a shipped entry; append. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE auth_keys (
     id INTEGER PRIMARY KEY,
     key_hash TEXT NOT NULL UNIQUE,
     reusable INTEGER NOT NULL,
     ephemeral INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     used_at INTEGER
   );
   CREATE TABLE nodes (
     id INTEGER PRIMARY KEY,
     node_key TEXT NOT NULL UNIQUE,
     disco_key TEXT NOT NULL,
     hostname TEXT NOT NULL UNIQUE,
     requested_hostname TEXT NOT NULL,
     ipv4 TEXT NOT NULL UNIQUE,
     ipv6 TEXT NOT NULL UNIQUE,
     ephemeral INTEGER NOT NULL,
     auth_key_id INTEGER REFERENCES auth_keys(id),
     created_at INTEGER NOT NULL,
     last_seen INTEGER,
     home_relay_url TEXT,
     home_relay_region TEXT
   );`,
  // Auth-key expiry (`authkey create --expires`) and revocation (`authkey revoke`).
  `ALTER TABLE auth_keys ADD COLUMN expires_at INTEGER;
   ALTER TABLE auth_keys ADD COLUMN revoked_at INTEGER;`,
]

export const SCHEMA_VERSION = MIGRATIONS.length

const AUTH_KEY_COLUMNS = 'id, reusable, ephemeral, created_at, used_at, expires_at, revoked_at'

export class StoreError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'StoreError'
  }
}

/** A write refused by a unique constraint (node key, hostname or address taken, maybe by another relay in the same instant). */
export class StoreConflictError extends StoreError {
  constructor(message: string) {
    super(message)
    this.name = 'StoreConflictError'
  }
}

/** The database cannot be reached (PostgreSQL down, connection lost); nothing was written. */
export class StoreUnavailableError extends StoreError {
  constructor(message: string) {
    super(message)
    this.name = 'StoreUnavailableError'
  }
}

export interface AuthKeyRecord {
  id: number
  reusable: boolean
  ephemeral: boolean
  createdAt: number
  usedAt: number | null
  /** Epoch ms after which the key registers nothing; null: never expires. */
  expiresAt: number | null
  /** When `authkey revoke` withdrew it; null: not revoked. */
  revokedAt: number | null
}

export interface NodeRecord {
  id: number
  nodeKey: string
  discoKey: string
  hostname: string
  /** What the node asked for, before sanitising and de-duplication. */
  requestedHostname: string
  ipv4: string
  ipv6: string
  ephemeral: boolean
  authKeyId: number | null
  createdAt: number
  lastSeen: number | null
  homeRelay: HomeRelay | null
}

export type NewNode = Omit<NodeRecord, 'id'>

interface NodeRow {
  id: number
  node_key: string
  disco_key: string
  hostname: string
  requested_hostname: string
  ipv4: string
  ipv6: string
  ephemeral: number
  auth_key_id: number | null
  created_at: number
  last_seen: number | null
  home_relay_url: string | null
  home_relay_region: string | null
}

interface AuthKeyRow {
  id: number
  reusable: number
  ephemeral: number
  created_at: number
  used_at: number | null
  expires_at: number | null
  revoked_at: number | null
}

function nodeFromRow(row: NodeRow): NodeRecord {
  let homeRelay: HomeRelay | null = null
  if (row.home_relay_url !== null) {
    homeRelay = row.home_relay_region === null ? { url: row.home_relay_url } : { url: row.home_relay_url, region: row.home_relay_region }
  }
  return {
    id: row.id,
    nodeKey: row.node_key,
    discoKey: row.disco_key,
    hostname: row.hostname,
    requestedHostname: row.requested_hostname,
    ipv4: row.ipv4,
    ipv6: row.ipv6,
    ephemeral: row.ephemeral !== 0,
    authKeyId: row.auth_key_id,
    createdAt: row.created_at,
    lastSeen: row.last_seen,
    homeRelay,
  }
}

function authKeyFromRow(row: AuthKeyRow): AuthKeyRecord {
  return {
    id: row.id,
    reusable: row.reusable !== 0,
    ephemeral: row.ephemeral !== 0,
    createdAt: row.created_at,
    usedAt: row.used_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  }
}

/** The queries, run inside a transaction or on their own. Every write is atomic. */
export interface StoreQueries {
  getMeta(name: string): Promise<string | undefined>
  setMeta(name: string, value: string): Promise<void>
  /** Returns the stored value, storing `create()` first if there is none (the first writer wins). */
  getOrCreateMeta(name: string, create: () => string): Promise<string>
  insertAuthKey(keyHash: string, options: { reusable: boolean; ephemeral: boolean; now: number; expiresAt?: number | null }): Promise<AuthKeyRecord>
  findAuthKey(keyHash: string): Promise<AuthKeyRecord | undefined>
  authKeyById(id: number): Promise<AuthKeyRecord | undefined>
  /** Marks the key revoked (keeping the first revocation time); false if there is no such key. */
  revokeAuthKey(id: number, now: number): Promise<boolean>
  /** Records the first use (a later use keeps the first time). */
  markAuthKeyUsed(id: number, now: number): Promise<void>
  /**
   * Spends the key for one registration at `now`, atomically: a single-use key only if nobody
   * used it yet (two relays racing for one key: exactly one gets true), a reusable key always.
   */
  claimAuthKey(id: number, now: number): Promise<boolean>
  listAuthKeys(): Promise<AuthKeyRecord[]>
  /** Throws StoreConflictError when the node key, hostname or an address is taken. */
  insertNode(node: NewNode): Promise<NodeRecord>
  /** Writes every field of `node` (matched by id); StoreConflictError when its new hostname or key is taken. */
  updateNode(node: NodeRecord): Promise<void>
  deleteNode(id: number): Promise<void>
  nodeByKey(nodeKey: string): Promise<NodeRecord | undefined>
  nodeById(id: number): Promise<NodeRecord | undefined>
  allNodes(): Promise<NodeRecord[]>
  ipv4Taken(address: string): Promise<boolean>
  /** The id of the node that holds `hostname`, if any. */
  hostnameOwner(hostname: string): Promise<number | undefined>
  /**
   * Records that these nodes hold a session on `relay` (an id per relay process) at `now`, so
   * the other relays show them online and do not expire them. A shared store only: with one
   * relay per store the service's own online set is the whole truth, and SQLite records nothing.
   * Writes no change notification (the node's own row change, in the same transaction, does).
   */
  markAlive(relay: string, ids: readonly number[], now: number): Promise<void>
  /** The node's session on `relay` ended. */
  markGone(relay: string, id: number): Promise<void>
  /** Ids of nodes some relay other than `exceptRelay` marked alive at or after `since` (empty on SQLite). */
  aliveSince(since: number, exceptRelay?: string): Promise<number[]>
}

/** What another writer changed: these node ids, or possibly anything (after a lost subscription). */
export type StoreChange = { kind: 'nodes'; ids: number[] } | { kind: 'resync' }

export interface CoordinationStore extends StoreQueries {
  readonly kind: 'sqlite' | 'postgres'
  /** The file, or the database URL without its password, for logs and messages. */
  readonly location: string
  /** True when other processes (other relays) write to it at the same time and report their changes through `onChange`. */
  readonly shared: boolean
  schemaVersion(): Promise<number>
  /** Runs `fn` atomically: either every write in it lands or none does. Use only `tx` inside. */
  transaction<T>(fn: (tx: StoreQueries) => Promise<T>): Promise<T>
  /**
   * Changes whenever another connection commits to the database; the service polls it to find
   * removals made by `burrow relay nodes remove` (SQLite `PRAGMA data_version`).
   */
  externalVersion(): Promise<number>
  /** Calls `listener` with changes other writers made (PostgreSQL LISTEN/NOTIFY); returns the unsubscribe. SQLite reports none. */
  onChange(listener: (change: StoreChange) => void): () => void
  close(): Promise<void>
}

/** The synchronous SQLite queries (better-sqlite3); SqliteStore wraps them in the async interface. */
class SqliteQueries {
  readonly path: string
  private readonly db: Database.Database
  private readonly statements = new Map<string, Database.Statement>()

  /** Opens (creating if needed) `<dataDir>/coordination.sqlite` and migrates it to SCHEMA_VERSION. */
  static open(dataDir: string): SqliteQueries {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    const path = join(dataDir, DATABASE_FILE)
    for (const file of [path, `${path}-wal`, `${path}-shm`]) assertPrivateFile(file, "the coordination server's private key and every node's registration")
    // SQLite gives the -wal and -shm files the mode of the database file (os_unix.c,
    // findCreateFileMode), so creating that one 0600 first keeps all three private whatever the umask.
    createPrivateFile(path)
    return new SqliteQueries(path)
  }

  /** `path` may be ':memory:' for a throwaway store. */
  constructor(path: string) {
    this.path = path
    this.db = new Database(path)
    this.db.pragma('journal_mode = WAL')
    // In WAL mode NORMAL cannot corrupt the database; a power cut may lose only the last commits.
    this.db.pragma('synchronous = NORMAL')
    this.db.pragma('foreign_keys = ON')
    this.migrate()
  }

  /**
   * Changes whenever another connection (another process, e.g. `burrow relay nodes remove`)
   * commits to the database; our own commits leave it alone (SQLite `PRAGMA data_version`).
   */
  externalVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number
  }

  private migrate(): void {
    const current = this.schemaVersion
    if (current > SCHEMA_VERSION) {
      throw new StoreError(`${this.path} has schema version ${current}, newer than this Burrow (${SCHEMA_VERSION}); upgrade Burrow`)
    }
    for (let version = current; version < SCHEMA_VERSION; version++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[version]!)
        this.db.pragma(`user_version = ${version + 1}`)
      })()
    }
  }

  /** Prepared once per SQL text; preparing costs more than running most of these queries. */
  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text)
    if (statement === undefined) {
      statement = this.db.prepare(text)
      this.statements.set(text, statement)
    }
    return statement
  }

  close(): void {
    this.db.close()
  }

  get database(): Database.Database {
    return this.db
  }

  /** Runs `fn` atomically (used only inside SqliteQueries: the async transactions are SqliteStore's). */
  private transaction<T>(fn: () => T): T {
    return this.db.inTransaction ? fn() : this.db.transaction(fn)()
  }

  // ---- meta ----

  getMeta(name: string): string | undefined {
    const row = this.sql('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined
    return row?.value
  }

  setMeta(name: string, value: string): void {
    this.sql('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value').run(name, value)
  }

  /** Returns the stored value, storing `create()` first if there is none. */
  getOrCreateMeta(name: string, create: () => string): string {
    return this.transaction(() => {
      const existing = this.getMeta(name)
      if (existing !== undefined) return existing
      const value = create()
      this.setMeta(name, value)
      return value
    })
  }

  // ---- auth keys ----

  insertAuthKey(keyHash: string, options: { reusable: boolean; ephemeral: boolean; now: number; expiresAt?: number | null }): AuthKeyRecord {
    const expiresAt = options.expiresAt ?? null
    const info = this.sql('INSERT INTO auth_keys (key_hash, reusable, ephemeral, created_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(
      keyHash,
      options.reusable ? 1 : 0,
      options.ephemeral ? 1 : 0,
      options.now,
      expiresAt,
    )
    return { id: Number(info.lastInsertRowid), reusable: options.reusable, ephemeral: options.ephemeral, createdAt: options.now, usedAt: null, expiresAt, revokedAt: null }
  }

  findAuthKey(keyHash: string): AuthKeyRecord | undefined {
    const row = this.sql(`SELECT ${AUTH_KEY_COLUMNS} FROM auth_keys WHERE key_hash = ?`).get(keyHash) as AuthKeyRow | undefined
    return row === undefined ? undefined : authKeyFromRow(row)
  }

  authKeyById(id: number): AuthKeyRecord | undefined {
    const row = this.sql(`SELECT ${AUTH_KEY_COLUMNS} FROM auth_keys WHERE id = ?`).get(id) as AuthKeyRow | undefined
    return row === undefined ? undefined : authKeyFromRow(row)
  }

  /** Marks the key revoked (keeping the first revocation time); false if there is no such key. */
  revokeAuthKey(id: number, now: number): boolean {
    return this.sql('UPDATE auth_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?').run(now, id).changes === 1
  }

  markAuthKeyUsed(id: number, now: number): void {
    this.sql('UPDATE auth_keys SET used_at = COALESCE(used_at, ?) WHERE id = ?').run(now, id)
  }

  markAlive(): void {}

  markGone(): void {}

  aliveSince(): number[] {
    return []
  }

  claimAuthKey(id: number, now: number): boolean {
    return this.sql('UPDATE auth_keys SET used_at = COALESCE(used_at, ?) WHERE id = ? AND (reusable = 1 OR used_at IS NULL)').run(now, id).changes === 1
  }

  listAuthKeys(): AuthKeyRecord[] {
    return (this.sql(`SELECT ${AUTH_KEY_COLUMNS} FROM auth_keys ORDER BY id`).all() as AuthKeyRow[]).map(authKeyFromRow)
  }

  // ---- nodes ----

  insertNode(node: NewNode): NodeRecord {
    const info = this.sql(
      `INSERT INTO nodes (node_key, disco_key, hostname, requested_hostname, ipv4, ipv6, ephemeral, auth_key_id, created_at, last_seen, home_relay_url, home_relay_region)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      node.nodeKey,
      node.discoKey,
      node.hostname,
      node.requestedHostname,
      node.ipv4,
      node.ipv6,
      node.ephemeral ? 1 : 0,
      node.authKeyId,
      node.createdAt,
      node.lastSeen,
      node.homeRelay?.url ?? null,
      node.homeRelay?.region ?? null,
    )
    return { ...node, id: Number(info.lastInsertRowid) }
  }

  /** Writes every field of `node` (matched by id). */
  updateNode(node: NodeRecord): void {
    const info = this.sql(
      `UPDATE nodes SET node_key = ?, disco_key = ?, hostname = ?, requested_hostname = ?, last_seen = ?, home_relay_url = ?, home_relay_region = ?
         WHERE id = ?`,
    ).run(node.nodeKey, node.discoKey, node.hostname, node.requestedHostname, node.lastSeen, node.homeRelay?.url ?? null, node.homeRelay?.region ?? null, node.id)
    if (info.changes !== 1) throw new StoreError(`node ${node.id} does not exist`)
  }

  deleteNode(id: number): void {
    this.sql('DELETE FROM nodes WHERE id = ?').run(id)
  }

  nodeByKey(nodeKey: string): NodeRecord | undefined {
    const row = this.sql('SELECT * FROM nodes WHERE node_key = ?').get(nodeKey) as NodeRow | undefined
    return row === undefined ? undefined : nodeFromRow(row)
  }

  nodeById(id: number): NodeRecord | undefined {
    const row = this.sql('SELECT * FROM nodes WHERE id = ?').get(id) as NodeRow | undefined
    return row === undefined ? undefined : nodeFromRow(row)
  }

  allNodes(): NodeRecord[] {
    return (this.sql('SELECT * FROM nodes ORDER BY id').all() as NodeRow[]).map(nodeFromRow)
  }

  ipv4Taken(address: string): boolean {
    return this.sql('SELECT 1 FROM nodes WHERE ipv4 = ?').get(address) !== undefined
  }

  /** The id of the node that holds `hostname`, if any. */
  hostnameOwner(hostname: string): number | undefined {
    const row = this.sql('SELECT id FROM nodes WHERE hostname = ?').get(hostname) as { id: number } | undefined
    return row?.id
  }
}

const QUERY_NAMES = [
  'getMeta',
  'setMeta',
  'getOrCreateMeta',
  'insertAuthKey',
  'findAuthKey',
  'authKeyById',
  'revokeAuthKey',
  'markAuthKeyUsed',
  'claimAuthKey',
  'listAuthKeys',
  'insertNode',
  'updateNode',
  'deleteNode',
  'nodeByKey',
  'nodeById',
  'allNodes',
  'ipv4Taken',
  'hostnameOwner',
  'markAlive',
  'markGone',
  'aliveSince',
] as const satisfies ReadonlyArray<keyof StoreQueries>

/** A unique-constraint failure as StoreConflictError (the message keeps SQLite's "UNIQUE constraint failed: table.column"). */
function sqliteError(error: unknown): unknown {
  if (error instanceof Database.SqliteError && error.code.startsWith('SQLITE_CONSTRAINT_UNIQUE')) return new StoreConflictError(error.message)
  if (error instanceof Database.SqliteError && error.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return new StoreConflictError(error.message)
  if (error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY')) return new StoreConflictError(`the database is locked by another writer: ${error.message}`)
  return error
}

/**
 * The embedded store: one SQLite file in the data dir, one connection. better-sqlite3 is
 * synchronous, so every call runs at once; calls are queued behind an open transaction so that
 * nothing lands inside another caller's transaction.
 */
export class SqliteStore implements CoordinationStore {
  readonly kind = 'sqlite' as const
  readonly shared = false
  readonly path: string
  readonly location: string
  private readonly queries: SqliteQueries
  /** The queries run directly on the connection (inside the running transaction). */
  private readonly direct: StoreQueries
  private queue: Promise<unknown> = Promise.resolve()

  /** Opens (creating if needed) `<dataDir>/coordination.sqlite` and migrates it to SCHEMA_VERSION. */
  static open(dataDir: string): SqliteStore {
    return new SqliteStore(SqliteQueries.open(dataDir))
  }

  /** `path` may be ':memory:' for a throwaway store. */
  constructor(path: string | SqliteQueries) {
    this.queries = typeof path === 'string' ? new SqliteQueries(path) : path
    this.path = this.queries.path
    this.location = this.path
    const direct: Record<string, unknown> = {}
    for (const name of QUERY_NAMES) {
      const method = (this.queries[name] as (...args: unknown[]) => unknown).bind(this.queries)
      direct[name] = async (...args: unknown[]) => {
        try {
          return method(...args)
        } catch (error) {
          throw sqliteError(error)
        }
      }
    }
    this.direct = direct as unknown as StoreQueries
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn)
    this.queue = run.catch(() => {})
    return run
  }

  async schemaVersion(): Promise<number> {
    return this.queries.schemaVersion
  }

  async externalVersion(): Promise<number> {
    return this.queries.externalVersion()
  }

  onChange(): () => void {
    return () => {}
  }

  transaction<T>(fn: (tx: StoreQueries) => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      const db = this.queries.database
      // IMMEDIATE: take the write lock now, so another process's writer cannot slip in between our read and write.
      try {
        db.exec('BEGIN IMMEDIATE')
      } catch (error) {
        throw sqliteError(error)
      }
      try {
        const result = await fn(this.direct)
        db.exec('COMMIT')
        return result
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK')
        throw error
      }
    })
  }

  async close(): Promise<void> {
    await this.queue
    this.queries.close()
  }

  getMeta(name: string): Promise<string | undefined> {
    return this.exclusive(() => this.direct.getMeta(name))
  }
  setMeta(name: string, value: string): Promise<void> {
    return this.exclusive(() => this.direct.setMeta(name, value))
  }
  getOrCreateMeta(name: string, create: () => string): Promise<string> {
    return this.transaction((tx) => tx.getOrCreateMeta(name, create))
  }
  insertAuthKey(keyHash: string, options: { reusable: boolean; ephemeral: boolean; now: number; expiresAt?: number | null }): Promise<AuthKeyRecord> {
    return this.exclusive(() => this.direct.insertAuthKey(keyHash, options))
  }
  findAuthKey(keyHash: string): Promise<AuthKeyRecord | undefined> {
    return this.exclusive(() => this.direct.findAuthKey(keyHash))
  }
  authKeyById(id: number): Promise<AuthKeyRecord | undefined> {
    return this.exclusive(() => this.direct.authKeyById(id))
  }
  revokeAuthKey(id: number, now: number): Promise<boolean> {
    return this.exclusive(() => this.direct.revokeAuthKey(id, now))
  }
  markAuthKeyUsed(id: number, now: number): Promise<void> {
    return this.exclusive(() => this.direct.markAuthKeyUsed(id, now))
  }
  claimAuthKey(id: number, now: number): Promise<boolean> {
    return this.exclusive(() => this.direct.claimAuthKey(id, now))
  }
  listAuthKeys(): Promise<AuthKeyRecord[]> {
    return this.exclusive(() => this.direct.listAuthKeys())
  }
  insertNode(node: NewNode): Promise<NodeRecord> {
    return this.exclusive(() => this.direct.insertNode(node))
  }
  updateNode(node: NodeRecord): Promise<void> {
    return this.exclusive(() => this.direct.updateNode(node))
  }
  deleteNode(id: number): Promise<void> {
    return this.exclusive(() => this.direct.deleteNode(id))
  }
  nodeByKey(nodeKey: string): Promise<NodeRecord | undefined> {
    return this.exclusive(() => this.direct.nodeByKey(nodeKey))
  }
  nodeById(id: number): Promise<NodeRecord | undefined> {
    return this.exclusive(() => this.direct.nodeById(id))
  }
  allNodes(): Promise<NodeRecord[]> {
    return this.exclusive(() => this.direct.allNodes())
  }
  ipv4Taken(address: string): Promise<boolean> {
    return this.exclusive(() => this.direct.ipv4Taken(address))
  }
  hostnameOwner(hostname: string): Promise<number | undefined> {
    return this.exclusive(() => this.direct.hostnameOwner(hostname))
  }
  markAlive(relay: string, ids: readonly number[], now: number): Promise<void> {
    return this.exclusive(() => this.direct.markAlive(relay, ids, now))
  }
  markGone(relay: string, id: number): Promise<void> {
    return this.exclusive(() => this.direct.markGone(relay, id))
  }
  aliveSince(since: number, exceptRelay?: string): Promise<number[]> {
    return this.exclusive(() => this.direct.aliveSince(since, exceptRelay))
  }
}
