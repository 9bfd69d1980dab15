// A real PostgreSQL server for tests: a fresh cluster (initdb) in a temp dir, run as an
// unprivileged user (`nobody` when the tests run as root: postgres refuses to run as root), on
// 127.0.0.1 at a port of its own with its socket in that dir. stop() removes everything;
// kill()/start() let resilience tests take it away and bring it back on the same port.
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { mustRun } from './netns.ts'
import { freePort } from './ports.ts'

const BIN = '/usr/lib/postgresql/15/bin'
const NOBODY = 65534

export interface PostgresServer {
  port: number
  dir: string
  /** URL of database `name` (default: the cluster's `postgres` database). */
  url(name?: string): string
  /** Creates an empty database and returns its URL. */
  createDatabase(name: string): Promise<string>
  /** Runs one statement on `database` (default postgres) as the superuser. */
  query(sql: string, database?: string): Promise<Array<Record<string, unknown>>>
  /** Stops the server the hard way (like a crash: `pg_ctl stop -m immediate`); every connection drops. */
  kill(): Promise<void>
  /** Starts it again on the same port and data dir. */
  start(): Promise<void>
  /** Stops it and removes its data dir. */
  stop(): Promise<void>
}

export async function startPostgres(): Promise<PostgresServer> {
  const root = process.getuid?.() === 0
  const dir = mkdtempSync(join(tmpdir(), 'burrow-s3pg-'))
  if (root) chownSync(dir, NOBODY, NOBODY)
  const data = join(dir, 'data')
  const as = (command: string, args: string[]): [string, string[]] => (root ? ['runuser', ['-u', 'nobody', '--', command, ...args]] : [command, args])
  const run = (command: string, args: string[]): Promise<string> => mustRun(...as(`${BIN}/${command}`, args), { timeoutMs: 60_000 })
  await run('initdb', ['-D', data, '-U', 'burrow', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'])
  const port = await freePort()
  // fsync off only: a killed server loses nothing the OS has (synchronous_commit stays on, so a commit is in the WAL before it is acknowledged).
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200`
  let running = false
  const server: PostgresServer = {
    port,
    dir,
    url: (name = 'postgres') => `postgres://burrow@127.0.0.1:${port}/${name}`,
    async createDatabase(name) {
      await server.query(`CREATE DATABASE ${name}`)
      return server.url(name)
    },
    async query(sql, database) {
      const client = new pg.Client({ connectionString: server.url(database) })
      await client.connect()
      try {
        return (await client.query(sql)).rows as Array<Record<string, unknown>>
      } finally {
        await client.end()
      }
    },
    async start() {
      await run('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start'])
      running = true
    },
    async kill() {
      if (!running) return
      await run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
      running = false
    },
    async stop() {
      try {
        if (running) await run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'])
        running = false
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
  try {
    await server.start()
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return server
}
