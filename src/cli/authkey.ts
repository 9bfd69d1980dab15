// `burrow relay authkey create`: argument parsing and the command around the coordination
// store's auth keys (src/server/coordination/authkey.ts makes and hashes them).
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createAuthKey } from '../server/coordination/authkey.ts'
import { CoordinationStore } from '../server/coordination/store.ts'
import { UsageError } from './args.ts'

export { UsageError }
export { AUTH_KEY_PREFIX, hashAuthKey } from '../server/coordination/authkey.ts'

/** Where `burrow relay` keeps its state unless told otherwise (`burrow relay` and `burrow relay authkey`). */
export function defaultDataDir(): string {
  return join(process.env['XDG_DATA_HOME'] ?? join(homedir(), '.local', 'share'), 'burrow', 'relay')
}

export const AUTHKEY_USAGE = 'usage: burrow relay authkey create [--reusable] [--ephemeral] [--data-dir DIR]'

export interface AuthKeyCommand {
  action: 'create'
  reusable: boolean
  ephemeral: boolean
  dataDir: string
}

/** Parses the arguments after `burrow relay authkey`. */
export function parseAuthKeyArgs(args: readonly string[]): AuthKeyCommand {
  const [action, ...rest] = args
  if (action !== 'create') throw new UsageError(action === undefined ? AUTHKEY_USAGE : `unknown authkey action ${JSON.stringify(action)}\n${AUTHKEY_USAGE}`)
  const command: AuthKeyCommand = { action, reusable: false, ephemeral: false, dataDir: defaultDataDir() }
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (arg === '--reusable') command.reusable = true
    else if (arg === '--ephemeral') command.ephemeral = true
    else if (arg === '--data-dir' || arg.startsWith('--data-dir=')) {
      const value = arg === '--data-dir' ? rest[++i] : arg.slice('--data-dir='.length)
      if (value === undefined || value === '') throw new UsageError(`--data-dir needs a directory\n${AUTHKEY_USAGE}`)
      command.dataDir = value
    } else throw new UsageError(`unknown option ${JSON.stringify(arg)}\n${AUTHKEY_USAGE}`)
  }
  return command
}

/**
 * Runs `burrow relay authkey …` (the arguments after `authkey`): prints the new key on stdout
 * (and nothing else, so scripts can capture it) and a description on stderr. `io` takes text
 * with its newlines, like the CLI's CliIo. Returns the process exit code.
 */
export function runAuthKeyCommand(args: readonly string[], io: { stdout: (text: string) => void; stderr: (text: string) => void }): number {
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
  const store = CoordinationStore.open(command.dataDir)
  try {
    const { key } = createAuthKey(store, command, Date.now())
    const kind = [command.reusable ? 'reusable' : 'single-use', command.ephemeral ? 'ephemeral' : ''].filter(Boolean).join(', ')
    io.stdout(`${key}\n`)
    io.stderr(`created a ${kind} auth key in ${store.path}\n`)
    return 0
  } finally {
    store.close()
  }
}
