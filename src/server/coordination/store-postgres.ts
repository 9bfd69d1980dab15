// The coordination store on PostgreSQL (`burrow relay --database postgres://…`), through the `pg`
// driver: several relay processes share one network. The schema has its own migrations (a
// `schema_version` table); a trigger on `nodes` NOTIFYs every committed change, and each store
// LISTENs, so a relay pushes changes made through the others to its own sessions (PostgreSQL
// docs, "NOTIFY": notifications are delivered at commit, and only if the transaction commits).
// Uniqueness (node key, hostname, IPv4, IPv6) is enforced by the database's unique constraints:
// a writer that loses a race gets StoreConflictError and the service retries with fresh reads.
import pg from 'pg'
import { DeadlineTimer, wallClock, type DriverClock } from '../../clock/clock.ts'
import type { HomeRelay } from '../../control/protocol.ts'
import {
  StoreConflictError,
  StoreError,
  StoreUnavailableError,
  type AuthKeyRecord,
  type CoordinationStore,
  type NewNode,
  type NodeRecord,
  type StoreChange,
  type StoreQueries,
} from './store.ts'

/** The NOTIFY channel the `nodes` trigger writes to; the payload is the node id. */
export const NODES_CHANNEL = 'burrow_nodes'

/** Each entry moves the schema from version i to i + 1 (the `schema_version` table). Never edit a shipped entry; append. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE auth_keys (
     id BIGSERIAL PRIMARY KEY,
     key_hash TEXT NOT NULL UNIQUE,
     reusable BOOLEAN NOT NULL,
     ephemeral BOOLEAN NOT NULL,
     created_at BIGINT NOT NULL,
     used_at BIGINT,
     expires_at BIGINT,
     revoked_at BIGINT
   );
   CREATE TABLE nodes (
     id BIGSERIAL PRIMARY KEY,
     node_key TEXT NOT NULL UNIQUE,
     disco_key TEXT NOT NULL,
     hostname TEXT NOT NULL UNIQUE,
     requested_hostname TEXT NOT NULL,
     ipv4 TEXT NOT NULL UNIQUE,
     ipv6 TEXT NOT NULL UNIQUE,
     ephemeral BOOLEAN NOT NULL,
     auth_key_id BIGINT REFERENCES auth_keys(id),
     created_at BIGINT NOT NULL,
     last_seen BIGINT,
     home_relay_url TEXT,
     home_relay_region TEXT
   );
   CREATE FUNCTION burrow_nodes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     PERFORM pg_notify('${NODES_CHANNEL}', COALESCE(NEW.id, OLD.id)::text);
     RETURN NULL;
   END $$;
   CREATE TRIGGER nodes_notify AFTER INSERT OR UPDATE OR DELETE ON nodes FOR EACH ROW EXECUTE FUNCTION burrow_nodes_notify();`,
  // Which nodes hold a session on which relay (refreshed by that relay), so the others show them
  // online and their --node-expiry spares them; no trigger: the node's row change notifies.
  `CREATE TABLE presence (
     node_id BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
     relay TEXT NOT NULL,
     alive_at BIGINT NOT NULL,
     PRIMARY KEY (node_id, relay)
   );`,
]

export const POSTGRES_SCHEMA_VERSION = MIGRATIONS.length

/** Serialises migrations of relays that start at the same time (pg_advisory_xact_lock key). */
const MIGRATION_LOCK = 0x6275_7272 // "burr"

const AUTH_KEY_COLUMNS = 'id, reusable, ephemeral, created_at, used_at, expires_at, revoked_at'
const NODE_COLUMNS = 'id, node_key, disco_key, hostname, requested_hostname, ipv4, ipv6, ephemeral, auth_key_id, created_at, last_seen, home_relay_url, home_relay_region'

/** BIGINT arrives as a string (it may exceed 2^53); ours are ids and epoch ms, well inside. */
function num(value: unknown): number {
  return Number(value)
}
function numOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value)
}

function nodeFromRow(row: Record<string, unknown>): NodeRecord {
  let homeRelay: HomeRelay | null = null
  if (row.home_relay_url !== null) {
    homeRelay = row.home_relay_region === null ? { url: row.home_relay_url as string } : { url: row.home_relay_url as string, region: row.home_relay_region as string }
  }
  return {
    id: num(row.id),
    nodeKey: row.node_key as string,
    discoKey: row.disco_key as string,
    hostname: row.hostname as string,
    requestedHostname: row.requested_hostname as string,
    ipv4: row.ipv4 as string,
    ipv6: row.ipv6 as string,
    ephemeral: row.ephemeral === true,
    authKeyId: numOrNull(row.auth_key_id),
    createdAt: num(row.created_at),
    lastSeen: numOrNull(row.last_seen),
    homeRelay,
  }
}

function authKeyFromRow(row: Record<string, unknown>): AuthKeyRecord {
  return {
    id: num(row.id),
    reusable: row.reusable === true,
    ephemeral: row.ephemeral === true,
    createdAt: num(row.created_at),
    usedAt: numOrNull(row.used_at),
    expiresAt: numOrNull(row.expires_at),
    revokedAt: numOrNull(row.revoked_at),
  }
}

/** `postgres://user:secret@host/db` without the secret, for logs. */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return 'postgres://(unparsable URL)'
  }
}

/** True for a postgres:// or postgresql:// URL (`--database`). */
export function isPostgresUrl(text: string): boolean {
  return /^postgres(ql)?:\/\//.test(text)
}

/**
 * Driver errors as store errors: a unique violation (SQLSTATE 23505) or a lost race (40001,
 * 40P01) is a conflict the caller may retry; a connection failure (class 08, 57P0x, or a
 * socket error without a SQLSTATE) means the database is unavailable. Anything else (a bug in
 * our SQL) goes through unchanged.
 */
function storeError(error: unknown, location: string): unknown {
  if (error instanceof StoreError) return error
  const e = error as { code?: unknown; constraint?: unknown; message?: unknown; severity?: unknown }
  const code = typeof e.code === 'string' ? e.code : undefined
  const message = typeof e.message === 'string' ? e.message : String(error)
  if (code === '23505') return new StoreConflictError(`UNIQUE constraint failed: ${String(e.constraint ?? '?')} (${message})`)
  if (code === '40001' || code === '40P01') return new StoreConflictError(`write lost a race with another relay: ${message}`)
  const isServerError = typeof e.severity === 'string' && code !== undefined && /^[0-9A-Z]{5}$/.test(code)
  if (isServerError && !code.startsWith('08') && !code.startsWith('57P')) return error
  return new StoreUnavailableError(`the coordination database ${location} is unavailable: ${message}`)
}

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>

class PostgresQueries implements StoreQueries {
  constructor(
    private readonly db: Queryable,
    readonly location: string,
  ) {}

  private async rows(text: string, values: unknown[] = []): Promise<Array<Record<string, unknown>>> {
    try {
      return (await this.db.query(text, values)).rows as Array<Record<string, unknown>>
    } catch (error) {
      throw storeError(error, this.location)
    }
  }

  private async count(text: string, values: unknown[]): Promise<number> {
    try {
      return (await this.db.query(text, values)).rowCount ?? 0
    } catch (error) {
      throw storeError(error, this.location)
    }
  }

  async getMeta(name: string): Promise<string | undefined> {
    const [row] = await this.rows('SELECT value FROM meta WHERE name = $1', [name])
    return row?.value as string | undefined
  }

  async setMeta(name: string, value: string): Promise<void> {
    await this.rows('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [name, value])
  }

  async getOrCreateMeta(name: string, create: () => string): Promise<string> {
    const existing = await this.getMeta(name)
    if (existing !== undefined) return existing
    // Two relays starting at once: the second insert does nothing and both read the first's value.
    await this.rows('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, create()])
    const stored = await this.getMeta(name)
    if (stored === undefined) throw new StoreError(`meta ${name} vanished right after it was stored`)
    return stored
  }

  async insertAuthKey(keyHash: string, options: { reusable: boolean; ephemeral: boolean; now: number; expiresAt?: number | null }): Promise<AuthKeyRecord> {
    const expiresAt = options.expiresAt ?? null
    const [row] = await this.rows('INSERT INTO auth_keys (key_hash, reusable, ephemeral, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id', [
      keyHash,
      options.reusable,
      options.ephemeral,
      options.now,
      expiresAt,
    ])
    return { id: num(row!.id), reusable: options.reusable, ephemeral: options.ephemeral, createdAt: options.now, usedAt: null, expiresAt, revokedAt: null }
  }

  async findAuthKey(keyHash: string): Promise<AuthKeyRecord | undefined> {
    const [row] = await this.rows(`SELECT ${AUTH_KEY_COLUMNS} FROM auth_keys WHERE key_hash = $1`, [keyHash])
    return row === undefined ? undefined : authKeyFromRow(row)
  }

  async authKeyById(id: number): Promise<AuthKeyRecord | undefined> {
    const [row] = await this.rows(`SELECT ${AUTH_KEY_COLUMNS} FROM auth_keys WHERE id = $1`, [id])
    return row === undefined ? undefined : authKeyFromRow(row)
  }

  async revokeAuthKey(id: number, now: number): Promise<boolean> {
    return (await this.count('UPDATE auth_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2', [now, id])) === 1
  }

  async markAuthKeyUsed(id: number, now: number): Promise<void> {
    await this.count('UPDATE auth_keys SET used_at = COALESCE(used_at, $1) WHERE id = $2', [now, id])
  }

  async claimAuthKey(id: number, now: number): Promise<boolean> {
    // Under READ COMMITTED a second UPDATE of the same row waits for the first and re-checks the
    // WHERE clause on the committed row, so only one relay spends a single-use key.
    return (await this.count('UPDATE auth_keys SET used_at = COALESCE(used_at, $1) WHERE id = $2 AND (reusable OR used_at IS NULL)', [now, id])) === 1
  }

  async listAuthKeys(): Promise<AuthKeyRecord[]> {
    return (await this.rows(`SELECT ${AUTH_KEY_COLUMNS} FROM auth_keys ORDER BY id`)).map(authKeyFromRow)
  }

  async insertNode(node: NewNode): Promise<NodeRecord> {
    const [row] = await this.rows(
      `INSERT INTO nodes (node_key, disco_key, hostname, requested_hostname, ipv4, ipv6, ephemeral, auth_key_id, created_at, last_seen, home_relay_url, home_relay_region)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
      [
        node.nodeKey,
        node.discoKey,
        node.hostname,
        node.requestedHostname,
        node.ipv4,
        node.ipv6,
        node.ephemeral,
        node.authKeyId,
        node.createdAt,
        node.lastSeen,
        node.homeRelay?.url ?? null,
        node.homeRelay?.region ?? null,
      ],
    )
    return { ...node, id: num(row!.id) }
  }

  async updateNode(node: NodeRecord): Promise<void> {
    const changes = await this.count(
      `UPDATE nodes SET node_key = $1, disco_key = $2, hostname = $3, requested_hostname = $4, last_seen = $5, home_relay_url = $6, home_relay_region = $7
         WHERE id = $8`,
      [node.nodeKey, node.discoKey, node.hostname, node.requestedHostname, node.lastSeen, node.homeRelay?.url ?? null, node.homeRelay?.region ?? null, node.id],
    )
    if (changes !== 1) throw new StoreError(`node ${node.id} does not exist`)
  }

  async deleteNode(id: number): Promise<void> {
    await this.count('DELETE FROM nodes WHERE id = $1', [id])
  }

  async nodeByKey(nodeKey: string): Promise<NodeRecord | undefined> {
    const [row] = await this.rows(`SELECT ${NODE_COLUMNS} FROM nodes WHERE node_key = $1`, [nodeKey])
    return row === undefined ? undefined : nodeFromRow(row)
  }

  async nodeById(id: number): Promise<NodeRecord | undefined> {
    const [row] = await this.rows(`SELECT ${NODE_COLUMNS} FROM nodes WHERE id = $1`, [id])
    return row === undefined ? undefined : nodeFromRow(row)
  }

  async allNodes(): Promise<NodeRecord[]> {
    return (await this.rows(`SELECT ${NODE_COLUMNS} FROM nodes ORDER BY id`)).map(nodeFromRow)
  }

  async ipv4Taken(address: string): Promise<boolean> {
    return (await this.rows('SELECT 1 FROM nodes WHERE ipv4 = $1', [address])).length > 0
  }

  async hostnameOwner(hostname: string): Promise<number | undefined> {
    const [row] = await this.rows('SELECT id FROM nodes WHERE hostname = $1', [hostname])
    return row === undefined ? undefined : num(row.id)
  }

  async markAlive(relay: string, ids: readonly number[], now: number): Promise<void> {
    if (ids.length === 0) return
    // Through nodes, so an id removed meanwhile is skipped instead of failing the foreign key.
    await this.count(
      `INSERT INTO presence (node_id, relay, alive_at) SELECT id, $2, $3 FROM nodes WHERE id = ANY($1::bigint[])
         ON CONFLICT (node_id, relay) DO UPDATE SET alive_at = GREATEST(presence.alive_at, excluded.alive_at)`,
      [ids, relay, now],
    )
  }

  async markGone(relay: string, id: number): Promise<void> {
    await this.count('DELETE FROM presence WHERE node_id = $1 AND relay = $2', [id, relay])
  }

  async aliveSince(since: number, exceptRelay?: string): Promise<number[]> {
    const rows = await this.rows('SELECT DISTINCT node_id FROM presence WHERE alive_at >= $1 AND relay IS DISTINCT FROM $2 ORDER BY node_id', [since, exceptRelay ?? null])
    return rows.map((row) => num(row.node_id))
  }
}

export interface PostgresStoreOptions {
  /** postgres:// URL (libpq form, as `pg` takes it). */
  url: string
  /** For reconnecting the LISTEN connection with backoff. */
  clock?: DriverClock
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
  /** Pool size (default 4). */
  maxConnections?: number
  /** Backoff of the LISTEN connection (default 100 ms doubling to 5 s). */
  reconnect?: { baseMs: number; capMs: number }
}

const CONNECT_TIMEOUT_MS = 3_000
const QUERY_TIMEOUT_MS = 10_000

export class PostgresStore extends PostgresQueries implements CoordinationStore {
  readonly kind = 'postgres' as const
  readonly shared = true
  private readonly pool: pg.Pool
  private readonly url: string
  private readonly clock: DriverClock
  private readonly log: (level: 'info' | 'warn' | 'error', message: string) => void
  private readonly listeners = new Set<(change: StoreChange) => void>()
  private readonly backoff: { baseMs: number; capMs: number }
  private listener: pg.Client | undefined
  private readonly reconnectTimer: DeadlineTimer
  private failures = 0
  private closed = false

  /** Connects, migrates the schema to POSTGRES_SCHEMA_VERSION and starts listening for other relays' changes. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options)
    try {
      await store.migrate()
      await store.listen(true)
    } catch (error) {
      await store.close()
      throw storeError(error, store.location)
    }
    return store
  }

  private constructor(options: PostgresStoreOptions) {
    const location = redactDatabaseUrl(options.url)
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.maxConnections ?? 4,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      application_name: 'burrow-relay',
    })
    super(pool, location)
    this.pool = pool
    this.url = options.url
    this.clock = options.clock ?? wallClock
    this.log = options.log ?? (() => {})
    this.backoff = options.reconnect ?? { baseMs: 100, capMs: 5_000 }
    this.reconnectTimer = new DeadlineTimer(this.clock, () => void this.listen())
    // An idle pooled connection that dies (the server restarted) must not crash the process; the pool replaces it.
    this.pool.on('error', (error) => this.log('warn', `coordination database: idle connection lost: ${error.message}`))
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      // Relays starting together: the first migrates, the others wait here and find it done.
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
      await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)')
      const { rows } = await client.query('SELECT version FROM schema_version')
      if (rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES (0)')
      const current = rows.length === 0 ? 0 : Number(rows[0].version)
      if (current > POSTGRES_SCHEMA_VERSION) {
        throw new StoreError(`${this.location} has schema version ${current}, newer than this Burrow (${POSTGRES_SCHEMA_VERSION}); upgrade Burrow`)
      }
      for (let version = current; version < POSTGRES_SCHEMA_VERSION; version++) {
        await client.query(MIGRATIONS[version]!)
        await client.query('UPDATE schema_version SET version = $1', [version + 1])
      }
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    } finally {
      client.release()
    }
  }

  async schemaVersion(): Promise<number> {
    const [row] = await this.rowsOf('SELECT version FROM schema_version')
    return row === undefined ? 0 : Number(row.version)
  }

  private async rowsOf(text: string): Promise<Array<Record<string, unknown>>> {
    try {
      return (await this.pool.query(text)).rows as Array<Record<string, unknown>>
    } catch (error) {
      throw storeError(error, this.location)
    }
  }

  async transaction<T>(fn: (tx: StoreQueries) => Promise<T>): Promise<T> {
    let client: pg.PoolClient
    try {
      client = await this.pool.connect()
    } catch (error) {
      throw storeError(error, this.location)
    }
    let broken: Error | undefined
    const onError = (error: Error): void => {
      broken = error
    }
    client.on('error', onError)
    try {
      await client.query('BEGIN')
      const result = await fn(new PostgresQueries(client, this.location))
      await client.query('COMMIT')
      return result
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => (broken ??= rollbackError))
      throw storeError(error, this.location)
    } finally {
      client.off('error', onError)
      client.release(broken)
    }
  }

  /** Constant: other writers' changes arrive through `onChange` (NOTIFY), not by polling. */
  async externalVersion(): Promise<number> {
    return 0
  }

  onChange(listener: (change: StoreChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** True while the LISTEN connection is up (changes from other relays arrive). */
  get listening(): boolean {
    return this.listener !== undefined
  }

  private emit(change: StoreChange): void {
    for (const listener of [...this.listeners]) listener(change)
  }

  /** (Re)opens the LISTEN connection; after a loss, a successful one reports a resync (notifications sent meanwhile are gone). */
  private async listen(initial = false): Promise<void> {
    if (this.closed || this.listener !== undefined) return
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'burrow-relay-listen' })
    let lost = false
    const onLost = (why: string): void => {
      if (lost) return
      lost = true
      if (this.listener === client) this.listener = undefined
      client.removeAllListeners('notification')
      client.end().catch(() => {})
      if (this.closed) return
      this.failures++
      const delay = Math.min(this.backoff.capMs, this.backoff.baseMs * 2 ** Math.min(this.failures - 1, 20))
      this.log('warn', `coordination database: change subscription lost (${why}); reconnecting in ${delay} ms`)
      this.reconnectTimer.arm(this.clock.now() + delay)
    }
    client.on('error', (error) => onLost(error.message))
    client.on('end', () => onLost('connection closed'))
    client.on('notification', (message) => {
      if (message.channel !== NODES_CHANNEL) return
      const id = Number(message.payload)
      this.emit(Number.isSafeInteger(id) ? { kind: 'nodes', ids: [id] } : { kind: 'resync' })
    })
    try {
      await client.connect()
      await client.query(`LISTEN ${NODES_CHANNEL}`)
    } catch (error) {
      if (initial) {
        lost = true
        client.end().catch(() => {})
        throw error
      }
      onLost((error as Error).message)
      return
    }
    if (lost || this.closed) {
      client.end().catch(() => {})
      return
    }
    this.listener = client
    const recovered = this.everListened
    this.everListened = true
    this.failures = 0
    if (recovered) {
      this.log('info', 'coordination database: change subscription restored; resynchronising')
      this.emit({ kind: 'resync' })
    }
  }

  private everListened = false

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.reconnectTimer.clear()
    const listener = this.listener
    this.listener = undefined
    await listener?.end().catch(() => {})
    await this.pool.end().catch(() => {})
  }
}
