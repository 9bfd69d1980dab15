// `burrow relay authkey create|list|revoke`: argument parsing and the command around the coordination
// store's auth keys (src/server/coordination/authkey.ts makes and hashes them).
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createAuthKey, hashAuthKey } from '../server/coordination/authkey.ts'
import { openCoordinationStore } from '../server/coordination/open-store.ts'
import type { AuthKeyRecord, CoordinationStore } from '../server/coordination/store.ts'
import { UsageError } from './args.ts'
import { parseDuration } from './duration.ts'

export { UsageError }
export { AUTH_KEY_PREFIX, hashAuthKey } from '../server/coordination/authkey.ts'

/** Where `burrow relay` keeps its state unless told otherwise (`burrow relay` and `burrow relay authkey`). */
export function defaultDataDir(): string {
  return join(process.env['XDG_DATA_HOME'] ?? join(homedir(), '.local', 'share'), 'burrow', 'relay')
}

export const AUTHKEY_USAGE = `usage: burrow relay authkey create [--reusable] [--ephemeral] [--expires DURATION] [--data-dir DIR | --database URL]
       burrow relay authkey list [--data-dir DIR | --database URL]
       burrow relay authkey revoke ID|KEY [--data-dir DIR | --database URL]`

/** `database`: the relay's `--database` (postgres://…); absent: SQLite in dataDir. */
export type AuthKeyCommand =
  | { action: 'create'; reusable: boolean; ephemeral: boolean; expiresInMs?: number; dataDir: string; database?: string }
  | { action: 'list'; dataDir: string; database?: string }
  | { action: 'revoke'; which: string; dataDir: string; database?: string }

/** Parses the arguments after `burrow relay authkey`. */
export function parseAuthKeyArgs(args: readonly string[]): AuthKeyCommand {
  const [action, ...rest] = args
  if (action !== 'create' && action !== 'list' && action !== 'revoke') {
    throw new UsageError(action === undefined ? AUTHKEY_USAGE : `unknown authkey action ${JSON.stringify(action)}\n${AUTHKEY_USAGE}`)
  }
  let reusable = false
  let ephemeral = false
  let expiresInMs: number | undefined
  let dataDir = defaultDataDir()
  let database: string | undefined
  const positionals: string[] = []
  const valueOf = (i: number, flag: string, what: string): [string, number] => {
    const arg = rest[i]!
    const value = arg === flag ? rest[i + 1] : arg.slice(flag.length + 1)
    if (value === undefined || value === '') throw new UsageError(`${flag} needs ${what}\n${AUTHKEY_USAGE}`)
    return [value, arg === flag ? i + 1 : i]
  }
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (action === 'create' && arg === '--reusable') reusable = true
    else if (action === 'create' && arg === '--ephemeral') ephemeral = true
    else if (action === 'create' && (arg === '--expires' || arg.startsWith('--expires='))) {
      const [value, next] = valueOf(i, '--expires', 'a duration (90s, 30m, 24h, 7d)')
      expiresInMs = parseDuration(value, '--expires')
      i = next
    } else if (arg === '--data-dir' || arg.startsWith('--data-dir=')) {
      const [value, next] = valueOf(i, '--data-dir', 'a directory')
      dataDir = value
      i = next
    } else if (arg === '--database' || arg.startsWith('--database=')) {
      const [value, next] = valueOf(i, '--database', 'a postgres:// URL')
      database = value
      i = next
    } else if (arg.startsWith('--')) throw new UsageError(`unknown option ${JSON.stringify(arg)}\n${AUTHKEY_USAGE}`)
    else positionals.push(arg)
  }
  const where = { dataDir, ...(database !== undefined ? { database } : {}) }
  if (action === 'revoke') {
    if (positionals.length !== 1) throw new UsageError(`authkey revoke needs exactly one key: its ID (authkey list) or the key itself\n${AUTHKEY_USAGE}`)
    return { action, which: positionals[0]!, ...where }
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}\n${AUTHKEY_USAGE}`)
  if (action === 'list') return { action, ...where }
  return { action, reusable, ephemeral, ...(expiresInMs !== undefined ? { expiresInMs } : {}), ...where }
}

function describe(key: AuthKeyRecord, now: number): string {
  const state = key.revokedAt !== null ? 'revoked' : key.expiresAt !== null && now >= key.expiresAt ? 'expired' : !key.reusable && key.usedAt !== null ? 'used' : 'valid'
  const expires = key.expiresAt === null ? 'never' : new Date(key.expiresAt).toISOString()
  return [String(key.id), key.reusable ? 'reusable' : 'single-use', key.ephemeral ? 'ephemeral' : '-', new Date(key.createdAt).toISOString(), expires, state].join('  ')
}

/**
 * Runs `burrow relay authkey …` (the arguments after `authkey`). `create` prints the new key on
 * stdout (and nothing else, so scripts can capture it) and a description on stderr. `io` takes
 * text with its newlines, like the CLI's CliIo. Returns the process exit code.
 */
export async function runAuthKeyCommand(args: readonly string[], io: { stdout: (text: string) => void; stderr: (text: string) => void }): Promise<number> {
  let command: AuthKeyCommand
  try {
    command = parseAuthKeyArgs(args)
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`burrow relay authkey: ${error.message}\n`)
      return 2
    }
    throw error
  }
  let store: CoordinationStore
  try {
    store = await openCoordinationStore(command)
  } catch (error) {
    io.stderr(
      `burrow relay authkey: cannot open the coordination store ${command.database === undefined ? `in ${command.dataDir}` : '(--database)'}: ${(error as Error).message}\n`,
    )
    return 1
  }
  try {
    const now = Date.now()
    if (command.action === 'list') {
      io.stdout(['ID  KIND  EPHEMERAL  CREATED  EXPIRES  STATE', ...(await store.listAuthKeys()).map((key) => describe(key, now))].join('\n') + '\n')
      return 0
    }
    if (command.action === 'revoke') {
      const { which } = command
      const record = /^\d+$/.test(which) ? await store.authKeyById(Number(which)) : await store.findAuthKey(hashAuthKey(which))
      if (record === undefined) {
        io.stderr(`burrow relay authkey: no auth key ${/^\d+$/.test(which) ? `with id ${which}` : 'matches that text'} (see burrow relay authkey list)\n`)
        return 1
      }
      await store.revokeAuthKey(record.id, now)
      io.stderr(`revoked auth key ${record.id}: it registers no new node from now on (nodes it registered stay; remove them with burrow relay nodes remove)\n`)
      return 0
    }
    const { key, record } = await createAuthKey(store, command, now)
    const kind = [command.reusable ? 'reusable' : 'single-use', command.ephemeral ? 'ephemeral' : ''].filter(Boolean).join(', ')
    const expiry = record.expiresAt === null ? '' : `, expiring at ${new Date(record.expiresAt).toISOString()}`
    io.stdout(`${key}\n`)
    io.stderr(`created a ${kind} auth key (id ${record.id}${expiry}) in ${store.location}\n`)
    return 0
  } finally {
    await store.close()
  }
}
