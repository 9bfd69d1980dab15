import { type Command } from './io.ts'

/** `burrow start`: the browser demo will live here; until then, say honestly what can be run. */
export const start: Command = async (_args, io) => {
  io.stdout(`Burrow: WireGuard for web pages and Node.js.

The browser demo is not built yet. What works today, from Node over UDP:
  burrow keygen > private.key
  burrow pubkey < private.key
  burrow ping --config burrow.conf 10.0.0.1     (a wg-quick config; the peer can be any WireGuard)

Run "burrow help" for all commands.
`)
  return 0
}
