// `burrow relay --listen HOST:PORT [--data-dir DIR] …`: runs the DERP relay until SIGTERM/SIGINT.
import { readFile } from 'node:fs/promises'
import { formatNodeKey, parseKey, publicKeyOf, toHex } from '../crypto/index.ts'
import { jsonLinesLogger } from '../server/log.ts'
import { loadOrCreateRelayKey } from '../server/relay-key.ts'
import { startRelayServer } from '../server/relay-server.ts'
import { TlsConfigError } from '../server/tls.ts'
import { MeshConfigError, meshPeerURL, parseMeshKey, startMesh } from '../server/mesh.ts'
import { defaultDataDir, runAuthKeyCommand } from './authkey.ts'
import { createCoordinationHandler, type CoordinationHandler } from '../server/coordination/http.ts'
import { numberFlag, parseArgs, UsageError } from './args.ts'
import { type CliIo, EXIT_USAGE, processIo } from './io.ts'

export const RELAY_USAGE = `usage: burrow relay [--listen HOST:PORT] [--data-dir DIR] [--queue-packets N] [--queue-bytes N]
                    [--rate-limit BYTES_PER_S --rate-burst BYTES] [--write-timeout MS]
                    [--verify-clients [--allowed-keys FILE]] [--tls-cert FILE --tls-key FILE]
                    [--mesh-key HEX | --mesh-key-file FILE] [--mesh-with HOST:PORT|URL[,…]]
       burrow relay authkey create [--reusable] [--ephemeral] [--data-dir DIR]
  Serves DERP over WebSocket and HTTP Upgrade at /derp, plus /derp/probe, /healthz and /metrics,
  and the coordination service (registration, live peer map) as a WebSocket at /control.
  --verify-clients admits only node keys registered with the coordination service (or, with
  --allowed-keys FILE, the keys listed there). --tls-cert/--tls-key (PEM) serve https and wss
  (SIGHUP re-reads both files). --mesh-key (64 hex digits, derper's mesh PSK format) lets other
  relays of the region log in as mesh peers; --mesh-with dials them, so clients on any of the
  region's relays reach each other (wire-compatible with Tailscale's derper mesh).
  \`authkey create\` prints a new auth key.
  Logs are JSON lines on stdout; the first says "listening" with the bound address (port 0 picks one).
`

const FLAGS = ['listen', 'data-dir', 'queue-packets', 'queue-bytes', 'rate-limit', 'rate-burst', 'write-timeout', 'allowed-keys', 'tls-cert', 'tls-key', 'mesh-key', 'mesh-key-file', 'mesh-with'] as const

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

/** `--mesh-key HEX` or `--mesh-key-file FILE` (derper's format), and `--mesh-with A,B,…` (which needs a key). */
async function parseMeshFlags(flags: Map<string, string>): Promise<{ key: { hex: string; bytes: Uint8Array }; peers: string[] } | undefined> {
  const inline = flags.get('mesh-key')
  const file = flags.get('mesh-key-file')
  const peersText = flags.get('mesh-with')
  if (inline !== undefined && file !== undefined) throw new UsageError('give --mesh-key or --mesh-key-file, not both')
  if (inline === undefined && file === undefined) {
    if (peersText !== undefined) throw new UsageError('--mesh-with needs --mesh-key or --mesh-key-file (the mesh peers must share it)')
    return undefined
  }
  let text = inline!
  if (file !== undefined) {
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      throw new UsageError(`cannot read --mesh-key-file ${file}: ${(error as Error).message}`)
    }
  }
  try {
    const key = parseMeshKey(text, file === undefined ? '--mesh-key' : `--mesh-key-file ${file}`)
    const peers = (peersText ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '').map(meshPeerURL)
    return { key, peers }
  } catch (error) {
    if (error instanceof MeshConfigError) throw new UsageError(error.message)
    throw error
  }
}

export async function relay(argv: string[], io: CliIo = processIo): Promise<number> {
  if (argv[0] === 'authkey') return runAuthKeyCommand(argv.slice(1), io)
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(RELAY_USAGE)
    return 0
  }
  const log = jsonLinesLogger(io.stdout)
  let coordination: CoordinationHandler | undefined
  let meshFlags: Awaited<ReturnType<typeof parseMeshFlags>>
  let options
  try {
    const verifyClients = argv.includes('--verify-clients')
    const parsed = parseArgs(
      argv.filter((a) => a !== '--verify-clients'),
      FLAGS,
    )
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`)
    const { host, port } = parseListen(parsed.flags.get('listen') ?? '127.0.0.1:8080')
    const dataDir = parsed.flags.get('data-dir') ?? defaultDataDir()
    const rate = numberFlag(parsed, 'rate-limit', 0, 0, 2 ** 40, true)
    const burst = numberFlag(parsed, 'rate-burst', rate === 0 ? 0 : Math.max(rate, 65_568), 0, 2 ** 40, true)
    const allowedKeysFile = parsed.flags.get('allowed-keys')
    if (allowedKeysFile && !verifyClients) throw new UsageError('--allowed-keys only applies with --verify-clients')
    if (allowedKeysFile) await readAllowedKeys(allowedKeysFile) // fail early on a bad file
    const certFile = parsed.flags.get('tls-cert')
    const keyFile = parsed.flags.get('tls-key')
    if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together')
    meshFlags = await parseMeshFlags(parsed.flags)
    options = {
      meshKey: meshFlags?.key.bytes,
      tls: certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined,
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
    if (error instanceof TlsConfigError) io.stderr(`burrow relay: ${error.message}\n`)
    else io.stderr(`burrow relay: cannot listen on ${options.host}:${options.port}: ${(error as Error).message}\n`)
    return 1
  }
  const onHangup = () => {
    if (!options.tls) return log('info', 'SIGHUP ignored: no TLS files to reload')
    try {
      server.reloadTls()
      log('info', 'reloaded the TLS certificate and key', { cert: options.tls.certFile, key: options.tls.keyFile })
    } catch (error) {
      log('error', 'TLS reload failed; still serving the previous certificate', { error: (error as Error).message })
    }
  }
  process.on('SIGHUP', onHangup)
  const mesh =
    meshFlags && meshFlags.peers.length > 0
      ? startMesh({ relay: server.handler.relay, privateKey: key.privateKey, meshKey: meshFlags.key.hex, peers: meshFlags.peers, log })
      : undefined
  log('info', 'listening', {
    address: `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`,
    url: server.url,
    publicKey: formatNodeKey(publicKeyOf(key.privateKey)),
    verifyClients: options.admit !== undefined,
    tls: options.tls !== undefined,
    mesh: options.meshKey !== undefined,
  })

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  process.off('SIGHUP', onHangup)
  mesh?.close()
  log('info', 'shutting down: telling clients to reconnect', { signal })
  await server.close()
  log('info', 'stopped')
  return 0
}
