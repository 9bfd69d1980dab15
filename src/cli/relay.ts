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
import { type CliIo, EXIT_USAGE, processIo } from './io.ts'

export const RELAY_USAGE = `usage: burrow relay [--listen HOST:PORT] [--data-dir DIR] [--queue-packets N] [--queue-bytes N]
                    [--rate-limit BYTES_PER_S --rate-burst BYTES] [--write-timeout MS]
                    [--control-rate FRAMES_PER_S --control-burst FRAMES] [--idle-timeout MS]
                    [--max-connections N] [--max-connections-per-ip N] [--header-timeout MS]
                    [--max-buffered-bytes N] [--verify-clients [--allowed-keys FILE] [--reverify-interval MS]]
       burrow relay authkey create [--reusable] [--ephemeral] [--data-dir DIR]
  Serves DERP over WebSocket and HTTP Upgrade at /derp, plus /derp/probe, /healthz and /metrics,
  and the coordination service (registration, live peer map) as a WebSocket at /control.
  --verify-clients admits only node keys registered with the coordination service (or, with
  --allowed-keys FILE, the keys listed there). \`authkey create\` prints a new auth key.
  Logs are JSON lines on stdout; the first says "listening" with the bound address (port 0 picks one).
`

const FLAGS = [
  'listen',
  'data-dir',
  'queue-packets',
  'queue-bytes',
  'rate-limit',
  'rate-burst',
  'write-timeout',
  'allowed-keys',
  'control-rate',
  'control-burst',
  'idle-timeout',
  'max-connections',
  'max-connections-per-ip',
  'header-timeout',
  'max-buffered-bytes',
  'reverify-interval',
] as const

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
  if (argv[0] === 'authkey') return runAuthKeyCommand(argv.slice(1), io)
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(RELAY_USAGE)
    return 0
  }
  const log = jsonLinesLogger(io.stdout)
  let coordination: CoordinationHandler | undefined
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
    if (parsed.flags.has('reverify-interval') && !verifyClients) throw new UsageError('--reverify-interval only applies with --verify-clients')
    const controlRate = numberFlag(parsed, 'control-rate', 50, 1, 1_000_000, false)
    // The allow-list is read again at most once a second, however many clients are re-checked.
    let allowed: { at: number; keys: Promise<Set<string>> } | undefined
    const allowedKeys = (path: string): Promise<Set<string>> => {
      if (!allowed || Date.now() - allowed.at >= 1000) allowed = { at: Date.now(), keys: readAllowedKeys(path) }
      return allowed.keys
    }
    options = {
      host,
      port,
      dataDir,
      queuePackets: numberFlag(parsed, 'queue-packets', 1024, 1, 1 << 20, true),
      queueBytes: numberFlag(parsed, 'queue-bytes', 4 << 20, 70_000, 2 ** 32, true),
      writeTimeoutMs: numberFlag(parsed, 'write-timeout', 10_000, 100, 600_000, true),
      rateLimit: rate > 0 ? { bytesPerSecond: rate, burstBytes: burst } : undefined,
      controlFrameRate: { perSecond: controlRate, burst: numberFlag(parsed, 'control-burst', Math.max(200, Math.ceil(controlRate)), 1, 1_000_000, true) },
      idleTimeoutMs: numberFlag(parsed, 'idle-timeout', 120_000, 1000, 86_400_000, true),
      maxConnections: numberFlag(parsed, 'max-connections', 10_000, 1, 1_000_000, true),
      maxConnectionsPerIp: numberFlag(parsed, 'max-connections-per-ip', 2_000, 1, 1_000_000, true),
      headerTimeoutMs: numberFlag(parsed, 'header-timeout', 10_000, 100, 600_000, true),
      maxBufferedBytes: numberFlag(parsed, 'max-buffered-bytes', 64 << 20, 1 << 20, 2 ** 40, true),
      reverifyMs: numberFlag(parsed, 'reverify-interval', 10_000, 100, 86_400_000, true),
      admit: allowedKeysFile
        ? async (key: Uint8Array) => (await allowedKeys(allowedKeysFile)).has(toHex(key))
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
    coordination = createCoordinationHandler({ dataDir: options.dataDir, log })
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
