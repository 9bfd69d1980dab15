import { type Command } from './io.ts'

export const USAGE = `usage: burrow <command> [options]

commands:
  keygen                     print a new private key (base64, like wg genkey)
  pubkey                     read a private key on stdin, print its public key (like wg pubkey)
  ping --config FILE [--count N] [--interval S] [--timeout S] ADDRESS
                             ICMP/ICMPv6 echo to ADDRESS through the WireGuard tunnel described by
                             the wg-quick FILE, over UDP (N requests, default 4, S seconds apart,
                             default 1; waits up to --timeout S, default 5, for the last replies;
                             ^C stops early). Exits 0 when at least one reply came back, 1 when
                             none did, 2 for bad arguments or a bad config file
  start                      what "npm start" runs
  help                       this text
`

/** `burrow help` */
export const help: Command = async (_args, io) => {
  io.stdout(USAGE)
  return 0
}
