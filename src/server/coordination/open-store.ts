// Which coordination store `burrow relay` (and its authkey/nodes commands) use: the embedded
// SQLite file in the data dir, or PostgreSQL when `--database postgres://…` is given.
import type { DriverClock } from '../../clock/clock.ts'
import { isPostgresUrl, PostgresStore } from './store-postgres.ts'
import { SqliteStore, StoreError, type CoordinationStore } from './store.ts'

export interface StoreLocation {
  dataDir: string
  /** A postgres:// URL; undefined: SQLite in `dataDir`. */
  database?: string | undefined
}

export async function openCoordinationStore(
  where: StoreLocation,
  options: { clock?: DriverClock; log?: (level: 'info' | 'warn' | 'error', message: string) => void } = {},
): Promise<CoordinationStore> {
  if (where.database === undefined) return SqliteStore.open(where.dataDir)
  if (!isPostgresUrl(where.database)) throw new StoreError(`--database must be a postgres:// or postgresql:// URL, got ${JSON.stringify(where.database.slice(0, 100))}`)
  return PostgresStore.open({ url: where.database, ...(options.clock ? { clock: options.clock } : {}), ...(options.log ? { log: options.log } : {}) })
}
