// `burrow relay --listen HOST:PORT [--data-dir DIR] …`: runs the DERP relay until SIGTERM/SIGINT.
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { formatNodeKey, parseKey, publicKeyOf, toHex } from '../crypto/index.ts'
import { jsonLinesLogger } from '../server/log.ts'
import { loadOrCreateRelayKey } from '../server/relay-key.ts'
import { startRelayServer } from '../server/relay-server.ts'
import { runAuthKeyCommand } from '../server/coordination/authkey.ts'
import { createCoordinationHandler, type CoordinationHandler } from '../server/coordination/http.ts'
import { numberFlag, parseArgs, UsageError } from './args.ts'
import { parseDuration } from './duration.ts'
import { relayNodes } from './relay-nodes.ts'
import { type CliIo, EXIT_USAGE, processIo } from './io.ts'

export const RELAY_USAGE = `usage: burrow relay [--listen HOST:PORT] [--data-dir DIR] [--queue-packets N] [--queue-bytes N]
                    [--rate-limit BYTES_PER_S --rate-burst BYTES] [--write-timeout MS]
                    [--verify-clients [--allowed-keys FILE]] [--relay-url URL[,URL…]] [--node-expiry DURATION]
       burrow relay authkey create [--reusable] [--ephemeral] [--data-dir DIR]
       burrow relay nodes list [--json] [--data-dir DIR]
       burrow relay nodes remove ID|HOSTNAME|NODEKEY [--data-dir DIR]
  Serves DERP over WebSocket and HTTP Upgrade at /derp, plus /derp/probe, /healthz and /metrics,
  and the coordination service (registration, live peer map) as a WebSocket at /control.
  --verify-clients admits only node keys registered with the coordination service (or, with
  --allowed-keys FILE, the keys listed there). \`authkey create\` prints a new auth key.
  --relay-url lists the DERP URLs nodes may name as their home relay, as nodes reach them
  (default: this relay's own listening URL); any other is not passed on to other nodes.
  --node-expiry (e.g. 30d) removes nodes offline for longer than that.
  The data dir's files are created readable only by their owner; the relay refuses to start
  on a key or database file that other users can read.
  Logs are JSON lines on stdout; the first says "listening" with the bound address (port 0 picks one).
`

const FLAGS = ['listen', 'data-dir', 'queue-packets', 'queue-bytes', 'rate-limit', 'rate-burst', 'write-timeout', 'allowed-keys', 'relay-url', 'node-expiry'] as const

export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text)
  const port = Number(match?.[3])
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--listen must be HOST:PORT, got ${JSON.stringify(text)}`)
  return { host: match[1] ?? match[2]!, port }
}

/** Node keys allowed by an allow-list file: one key per line (base64 or nodekey:hex), # comments. */
export async function readAllowedKeys(path: string): Promise<Set<string>> {
  const keys = new Set<string>()
  for (const [index, raw] of (await readFile(path, 'utf8')).split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') continue
    try {
      keys.add(toHex(parseKey(line)))
    } catch (error) {
      throw new UsageError(`${path}:${index + 1}: ${(error as Error).message}`)
    }
  }
  return keys
}

export async function relay(argv: string[], io: CliIo = processIo): Promise<number> {
  // Everything the relay writes to its data dir (keys, the database and its WAL) is private.
  process.umask(0o077)
  if (argv[0] === 'authkey') return runAuthKeyCommand(argv.slice(1), io)
  if (argv[0] === 'nodes') return relayNodes(argv.slice(1), io)
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(RELAY_USAGE)
    return 0
  }
  const log = jsonLinesLogger(io.stdout)
  let coordination: CoordinationHandler | undefined
  let nodeExpiryMs: number | undefined
  let relayMap: Array<{ url: string }> | undefined
  let options
  try {
    const verifyClients = argv.includes('--verify-clients')
    const parsed = parseArgs(
      argv.filter((a) => a !== '--verify-clients'),
      FLAGS,
    )
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`)
    const { host, port } = parseListen(parsed.flags.get('listen') ?? '127.0.0.1:8080')
    const dataDir = parsed.flags.get('data-dir') ?? join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'burrow', 'relay')
    const rate = numberFlag(parsed, 'rate-limit', 0, 0, 2 ** 40, true)
    const burst = numberFlag(parsed, 'rate-burst', rate === 0 ? 0 : Math.max(rate, 65_568), 0, 2 ** 40, true)
    const allowedKeysFile = parsed.flags.get('allowed-keys')
    if (allowedKeysFile && !verifyClients) throw new UsageError('--allowed-keys only applies with --verify-clients')
    if (allowedKeysFile) await readAllowedKeys(allowedKeysFile) // fail early on a bad file
    const relayUrls = parsed.flags.get('relay-url')?.split(',').map((u) => u.trim()).filter((u) => u !== '')
    for (const url of relayUrls ?? []) {
      if (!/^(wss?|https?):\/\/[^\s]+$/.test(url)) throw new UsageError(`--relay-url must list http(s) or ws(s) URLs, got ${JSON.stringify(url)}`)
    }
    const expiry = parsed.flags.get('node-expiry')
    nodeExpiryMs = expiry === undefined ? undefined : parseDuration(expiry, '--node-expiry')
    relayMap = relayUrls?.map((url) => ({ url }))
    options = {
      host,
      port,
      dataDir,
      queuePackets: numberFlag(parsed, 'queue-packets', 1024, 1, 1 << 20, true),
      queueBytes: numberFlag(parsed, 'queue-bytes', 4 << 20, 70_000, 2 ** 32, true),
      writeTimeoutMs: numberFlag(parsed, 'write-timeout', 10_000, 100, 600_000, true),
      rateLimit: rate > 0 ? { bytesPerSecond: rate, burstBytes: burst } : undefined,
      admit: allowedKeysFile
        ? async (key: Uint8Array) => (await readAllowedKeys(allowedKeysFile)).has(toHex(key))
        : verifyClients
          ? (key: Uint8Array) => coordination?.service.isRegistered(key) === true
          : undefined,
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`burrow relay: ${error.message}\n\n${RELAY_USAGE}`)
      return EXIT_USAGE
    }
    throw error
  }

  let key
  try {
    key = loadOrCreateRelayKey(options.dataDir)
  } catch (error) {
    io.stderr(`burrow relay: ${(error as Error).message}\n`)
    return 1
  }
  if (key.created) log('info', 'created relay key', { path: key.path })

  try {
    coordination = createCoordinationHandler({ dataDir: options.dataDir, log, ...(nodeExpiryMs !== undefined ? { nodeExpiryMs } : {}) })
  } catch (error) {
    io.stderr(`burrow relay: cannot open the coordination store in ${options.dataDir}: ${(error as Error).message}\n`)
    return 1
  }

  let server
  try {
    server = await startRelayServer({ ...options, privateKey: key.privateKey, log, mounts: [coordination] })
  } catch (error) {
    await coordination.close()
    io.stderr(`burrow relay: cannot listen on ${options.host}:${options.port}: ${(error as Error).message}\n`)
    return 1
  }
  // Only relays the operator named may be a node's home relay: by default this one, as it listens.
  coordination.service.setRelayMap(relayMap ?? [{ url: server.url }])
  log('info', 'listening', {
    address: `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`,
    url: server.url,
    publicKey: formatNodeKey(publicKeyOf(key.privateKey)),
    verifyClients: options.admit !== undefined,
  })

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  log('info', 'shutting down: telling clients to reconnect', { signal })
  await server.close()
  log('info', 'stopped')
  return 0
}
