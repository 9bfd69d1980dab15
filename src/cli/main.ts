// Entry point of the `burrow` command (bin/burrow.mjs): dispatches to one file per command.
import { proxyFiles } from './build-proxy.ts'
import { fetchCommand } from './fetch.ts'
import { help, USAGE } from './help.ts'
import { type CliIo, type Command, EXIT_USAGE, processIo } from './io.ts'
import { keygen } from './keygen.ts'
import { ping } from './ping.ts'
import { pubkey } from './pubkey.ts'
import { relay } from './relay.ts'
import { start } from './start.ts'
import { status } from './status.ts'
import { up } from './up.ts'

const commands: Record<string, Command> = {
  fetch: fetchCommand,
  keygen,
  pubkey,
  ping,
  'proxy-files': proxyFiles,
  relay,
  start,
  up,
  status,
  help,
}

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined || name === '--help' || name === '-h') return help([], io)
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined
  if (!command) {
    io.stderr(`burrow: unknown command ${JSON.stringify(name)}\n\n${USAGE}`)
    return EXIT_USAGE
  }
  return command(args, io)
}
