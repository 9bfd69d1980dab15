// Durable coordination state in SQLite: the server key, the network's IPv6 prefix, auth keys
// (only their SHA-256 is kept) and registered nodes. Online state is not stored; it lives in
// the service and dies with the process.
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

export class CoordinationStore {
  readonly path: string
  private readonly db: Database.Database
  private readonly statements = new Map<string, Database.Statement>()

  /** Opens (creating if needed) `<dataDir>/coordination.sqlite` and migrates it to SCHEMA_VERSION. */
  static open(dataDir: string): CoordinationStore {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    const path = join(dataDir, DATABASE_FILE)
    for (const file of [path, `${path}-wal`, `${path}-shm`]) assertPrivateFile(file, "the coordination server's private key and every node's registration")
    // SQLite gives the -wal and -shm files the mode of the database file (os_unix.c,
    // findCreateFileMode), so creating that one 0600 first keeps all three private whatever the umask.
    createPrivateFile(path)
    return new CoordinationStore(path)
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

  /** Runs `fn` atomically: either every write in it lands or none does. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)()
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
