// `burrow status [--state-dir DIR] [--json]`: the peers of the running `burrow up` as a table,
// read from the status file it rewrites every second (see src/node/status-file.ts).
import { defaultStateDir } from '../node.ts'
import { StatusFileError, formatStatus, readStatusFile, statusPath } from '../node/status-file.ts'
import { UsageError, parseArgs, parseCommandArgs } from './args.ts'
import { EXIT_USAGE, type Command } from './io.ts'

export const status: Command = async (args, io) => {
  const options = parseCommandArgs('status', io, () => {
    const rest = args.filter((a) => a !== '--json')
    const parsed = parseArgs(rest, ['state-dir'])
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`)
    return { json: rest.length !== args.length, stateDir: parsed.flags.get('state-dir') ?? defaultStateDir() }
  })
  if (!options) return EXIT_USAGE
  const { json, stateDir } = options
  let current
  try {
    current = await readStatusFile(stateDir)
  } catch (error) {
    if (!(error instanceof StatusFileError)) throw error
    io.stderr(`burrow status: ${error.message}\n`)
    return 1
  }
  if (!current) {
    io.stderr(`burrow status: no burrow up is running with state dir ${stateDir} (${statusPath(stateDir)} does not exist)\n`)
    return 1
  }
  if (json) {
    io.stdout(`${JSON.stringify(current, null, 2)}\n`)
    return 0
  }
  io.stdout(formatStatus(current, Date.now(), isAlive(current.pid)))
  return 0
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
