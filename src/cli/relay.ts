// `burrow relay --listen HOST:PORT [--data-dir DIR] …`: runs the DERP relay until SIGTERM/SIGINT.
import { readFile } from 'node:fs/promises'
import { formatNodeKey, parseKey, publicKeyOf, toHex } from '../crypto/index.ts'
import { jsonLinesLogger } from '../server/log.ts'
import { loadOrCreateRelayKey } from '../server/relay-key.ts'
import { startRelayServer } from '../server/relay-server.ts'
import { type IceConfig, iceServersFor, hostOfHostHeader } from '../server/ice-servers.ts'
import { startStunServer, type StunServer } from '../server/stun/udp.ts'
import { TlsConfigError } from '../server/tls.ts'
import { MeshConfigError, meshPeerURL, parseMeshKey, startMesh } from '../server/mesh.ts'
import { RelayMapError, parseRelayMapText, readRelayMapFile } from '../server/relay-map.ts'
import type { RelayMapEntry } from '../control/protocol.ts'
import { defaultDataDir, runAuthKeyCommand } from './authkey.ts'
import { createCoordinationHandler, type CoordinationHandler } from '../server/coordination/http.ts'
import { numberFlag, parseArgs, UsageError } from './args.ts'
import { parseDuration } from './duration.ts'
import { relayNodes } from './relay-nodes.ts'
import { type CliIo, EXIT_USAGE, processIo } from './io.ts'

export const RELAY_USAGE = `usage: burrow relay [--listen HOST:PORT] [--data-dir DIR] [--queue-packets N] [--queue-bytes N]
                    [--rate-limit BYTES_PER_S --rate-burst BYTES] [--write-timeout MS]
                    [--control-rate FRAMES_PER_S --control-burst FRAMES] [--handshake-rate N] [--idle-timeout MS]
                    [--max-connections N] [--max-connections-per-ip N] [--header-timeout MS] [--max-buffered-bytes N]
                    [--verify-clients [--allowed-keys FILE] [--reverify-interval MS]] [--tls-cert FILE --tls-key FILE]
                    [--mesh-key HEX | --mesh-key-file FILE] [--mesh-with HOST:PORT|URL[,…]]
                    [--stun-port N] [--turn URL[,URL…] [--turn-secret-file FILE] [--turn-ttl SECONDS]]
                    [--relay-map FILE | --relay-url URL[,URL…] [--region-id N --region-code CODE]]
                    [--node-expiry DURATION] [--database postgres://…]
       burrow relay authkey create [--reusable] [--ephemeral] [--expires DURATION] [--data-dir DIR | --database URL]
       burrow relay authkey list [--data-dir DIR | --database URL]
       burrow relay authkey revoke ID|KEY [--data-dir DIR | --database URL]
       burrow relay nodes list [--json] [--data-dir DIR | --database URL]
       burrow relay nodes remove ID|HOSTNAME|NODEKEY [--data-dir DIR | --database URL]
  Serves DERP over WebSocket and HTTP Upgrade at /derp, plus /derp/probe, /healthz and /metrics,
  and the coordination service (registration, live peer map) as a WebSocket at /control.
  --verify-clients admits only node keys registered with the coordination service (or, with
  --allowed-keys FILE, the keys listed there). --tls-cert/--tls-key (PEM) serve https and wss
  (SIGHUP re-reads both files). --mesh-key (64 hex digits, derper's mesh PSK format) lets other
  relays of the region log in as mesh peers; --mesh-with dials them, so clients on any of the
  region's relays reach each other (wire-compatible with Tailscale's derper mesh).
  --relay-url lists the DERP URLs nodes may name as their home relay, as nodes reach them
  (default: this relay's own listening URL); any other is not passed on to other nodes.
  --relay-map FILE hands nodes relay regions instead (JSON, like Tailscale's DERP map:
  {"regions":[{"id":1,"code":"fra","name":"Frankfurt","nodes":[{"name":"fra1","url":"https://fra1.example"}]}]};
  optional "avoid": true per region and "stunPort" per relay). The relays of a region are meshed
  (--mesh-with); each node measures every region's latency (/derp/latency-check), homes in the
  nearest, and re-homes to another relay of its region, or the next-nearest region, when its
  relay dies. --region-id N --region-code CODE make the --relay-url list one such region.
  Errors in the file name the field (regions[0].nodes[1].url).
  --node-expiry (e.g. 30d) removes nodes offline for longer than that.
  --database postgres://USER[:PASSWORD]@HOST[:PORT]/DB keeps registrations, addresses, auth keys
  and hostnames in PostgreSQL instead of the data dir's SQLite file, so several relays serve
  one network: a change made through one reaches nodes on the others (LISTEN/NOTIFY). Without
  the database a relay keeps forwarding DERP packets and answers registrations with 503.
  The password may come from PGPASSWORD instead of the URL (the command line shows in ps).
  The data dir's files are created readable only by their owner; the relay refuses to start
  on a key or database file that other users can read.
  --stun-port answers STUN Binding requests (RFC 8489) on that UDP port of the listen address
  (default 3478; 0 disables it); nodes get it as their default ICE server. --turn hands out TURN
  servers too, with time-limited credentials (TURN REST: HMAC-SHA1 of the secret in FILE, the
  secret coturn calls static-auth-secret) valid for --turn-ttl seconds (default 43200).
  \`authkey create\` prints a new auth key.
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
  'handshake-rate',
  'tls-cert',
  'tls-key',
  'mesh-key',
  'mesh-key-file',
  'mesh-with',
  'relay-url',
  'relay-map',
  'region-id',
  'region-code',
  'node-expiry',
  'stun-port',
  'turn',
  'turn-secret-file',
  'turn-ttl',
  // Coordination on PostgreSQL (several relays, one network).
  'database',
] as const

export const DEFAULT_STUN_PORT = 3478

/** `--turn a,b`: each a turn:/turns: URL (RFC 7065). */
export function parseTurnUrls(text: string): string[] {
  const urls = text
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '')
  if (urls.length === 0) throw new UsageError('--turn needs at least one turn: or turns: URL')
  for (const url of urls)
    if (!/^turns?:[^\s,]+$/.test(url)) throw new UsageError(`--turn: ${JSON.stringify(url)} is not a turn: or turns: URL (e.g. turn:turn.example:3478?transport=udp)`)
  return urls
}

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
    const peers = (peersText ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .map(meshPeerURL)
    return { key, peers }
  } catch (error) {
    if (error instanceof MeshConfigError) throw new UsageError(error.message)
    throw error
  }
}

/** `--relay-map FILE`, or `--relay-url` with `--region-id`/`--region-code` (one region of those relays); undefined: a flat relay list. */
export async function parseRegionFlags(flags: Map<string, string>, relayUrls: string[] | undefined): Promise<RelayMapEntry | undefined> {
  const file = flags.get('relay-map')
  const idText = flags.get('region-id')
  const code = flags.get('region-code')
  if (file !== undefined) {
    if (relayUrls !== undefined || idText !== undefined || code !== undefined)
      throw new UsageError('give --relay-map FILE or --relay-url (with --region-id/--region-code), not both')
    try {
      return await readRelayMapFile(file)
    } catch (error) {
      if (error instanceof RelayMapError) throw new UsageError(`--relay-map ${error.message}`)
      throw error
    }
  }
  if (idText === undefined && code === undefined) return undefined
  if (idText === undefined || code === undefined) throw new UsageError('--region-id and --region-code go together')
  if (relayUrls === undefined) throw new UsageError('--region-id/--region-code name the region of the --relay-url list; give --relay-url too')
  const id = Number(idText)
  try {
    return parseRelayMapFlags(id, code, relayUrls)
  } catch (error) {
    if (error instanceof RelayMapError) throw new UsageError(error.message)
    throw error
  }
}

function parseRelayMapFlags(id: number, code: string, urls: string[]): RelayMapEntry {
  const text = JSON.stringify({ regions: [{ id, code, name: code, nodes: urls.map((url) => ({ url })) }] })
  // The same validation as a file; the flags stand in for its field names.
  try {
    return parseRelayMapText(text, 'flags')
  } catch (error) {
    if (!(error instanceof RelayMapError)) throw error
    const flag = error.field.endsWith('.id') ? '--region-id' : error.field.endsWith('.code') ? '--region-code' : '--relay-url'
    throw new RelayMapError(`${flag}: ${error.message.replace(/^flags: regions\[0\]\.(nodes\[\d+\]\.)?/, '')}`, error.field)
  }
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
  let regionMap: RelayMapEntry | undefined
  let database: string | undefined
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
    if (parsed.flags.has('reverify-interval') && !verifyClients) throw new UsageError('--reverify-interval only applies with --verify-clients')
    const controlRate = numberFlag(parsed, 'control-rate', 50, 1, 1_000_000, false)
    // The allow-list is read again at most once a second, however many clients are re-checked.
    let allowed: { at: number; keys: Promise<Set<string>> } | undefined
    const allowedKeys = (path: string): Promise<Set<string>> => {
      if (!allowed || Date.now() - allowed.at >= 1000) allowed = { at: Date.now(), keys: readAllowedKeys(path) }
      return allowed.keys
    }
    const relayUrls = parsed.flags
      .get('relay-url')
      ?.split(',')
      .map((u) => u.trim())
      .filter((u) => u !== '')
    for (const url of relayUrls ?? []) {
      if (!/^(wss?|https?):\/\/[^\s]+$/.test(url)) throw new UsageError(`--relay-url must list http(s) or ws(s) URLs, got ${JSON.stringify(url)}`)
    }
    database = parsed.flags.get('database')
    if (database !== undefined && !/^postgres(ql)?:\/\/\S+$/.test(database))
      throw new UsageError(`--database must be a postgres:// or postgresql:// URL, got ${JSON.stringify(database.slice(0, 100))}`)
    const expiry = parsed.flags.get('node-expiry')
    nodeExpiryMs = expiry === undefined ? undefined : parseDuration(expiry, '--node-expiry')
    relayMap = relayUrls?.map((url) => ({ url }))
    regionMap = await parseRegionFlags(parsed.flags, relayUrls)
    const stunPortGiven = parsed.flags.has('stun-port')
    const stunPort = numberFlag(parsed, 'stun-port', DEFAULT_STUN_PORT, 0, 65535, true)
    const turnText = parsed.flags.get('turn')
    const turnSecretFile = parsed.flags.get('turn-secret-file')
    if ((turnSecretFile !== undefined || parsed.flags.has('turn-ttl')) && turnText === undefined) throw new UsageError('--turn-secret-file and --turn-ttl only apply with --turn')
    let turnSecret: string | undefined
    if (turnSecretFile !== undefined) {
      try {
        turnSecret = (await readFile(turnSecretFile, 'utf8')).trim()
      } catch (error) {
        throw new UsageError(`--turn-secret-file: cannot read ${turnSecretFile}: ${(error as Error).message}`)
      }
      if (turnSecret === '') throw new UsageError(`--turn-secret-file: ${turnSecretFile} is empty`)
    }
    const turn =
      turnText === undefined
        ? undefined
        : { urls: parseTurnUrls(turnText), ttlSeconds: numberFlag(parsed, 'turn-ttl', 43_200, 60, 30 * 86_400, true), ...(turnSecret ? { secret: turnSecret } : {}) }
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
      stunPort,
      stunPortGiven,
      turn,
      queuePackets: numberFlag(parsed, 'queue-packets', 1024, 1, 1 << 20, true),
      queueBytes: numberFlag(parsed, 'queue-bytes', 4 << 20, 70_000, 2 ** 32, true),
      writeTimeoutMs: numberFlag(parsed, 'write-timeout', 10_000, 100, 600_000, true),
      rateLimit: rate > 0 ? { bytesPerSecond: rate, burstBytes: burst } : undefined,
      controlFrameRate: { perSecond: controlRate, burst: numberFlag(parsed, 'control-burst', Math.max(200, Math.ceil(controlRate)), 1, 1_000_000, true) },
      idleTimeoutMs: numberFlag(parsed, 'idle-timeout', 120_000, 1000, 86_400_000, true),
      handshakesPerSecond: numberFlag(parsed, 'handshake-rate', 5, 0, 1_000_000, false),
      maxConnections: numberFlag(parsed, 'max-connections', 10_000, 1, 1_000_000, true),
      maxConnectionsPerIp: numberFlag(parsed, 'max-connections-per-ip', 2_000, 1, 1_000_000, true),
      headerTimeoutMs: numberFlag(parsed, 'header-timeout', 10_000, 100, 600_000, true),
      maxBufferedBytes: numberFlag(parsed, 'max-buffered-bytes', 64 << 20, 1 << 20, 2 ** 40, true),
      reverifyMs: numberFlag(parsed, 'reverify-interval', 10_000, 100, 86_400_000, true),
      admit: allowedKeysFile
        ? async (key: Uint8Array) => (await allowedKeys(allowedKeysFile)).has(toHex(key))
        : verifyClients
          ? async (key: Uint8Array) => (await coordination?.service.isRegistered(key)) === true
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

  // STUN first: its port decides what the welcome's iceServers say.
  let stun: StunServer | undefined
  if (options.stunPort > 0) {
    try {
      stun = await startStunServer({ host: options.host, port: options.stunPort, log })
    } catch (error) {
      if (options.stunPortGiven) {
        io.stderr(`burrow relay: cannot listen for STUN on UDP ${options.host}:${options.stunPort}: ${(error as Error).message}\n`)
        return 1
      }
      // The default port taken (another relay on this host): run without STUN, and say so.
      log('warn', 'STUN disabled: the default port is not available (pass --stun-port N to choose one, 0 to silence this)', {
        port: options.stunPort,
        error: (error as Error).message,
      })
    }
  }
  const ice: IceConfig = { ...(stun ? { stunPort: stun.port } : {}), ...(options.turn ? { turn: options.turn } : {}) }

  try {
    coordination = await createCoordinationHandler({
      dataDir: options.dataDir,
      database,
      log,
      ...(nodeExpiryMs !== undefined ? { nodeExpiryMs } : {}),
      iceServers: (node, hostHeader, now) => iceServersFor(ice, hostOfHostHeader(hostHeader), now, node.nodeKey.slice('nodekey:'.length, 'nodekey:'.length + 16)),
    })
  } catch (error) {
    await stun?.close()
    io.stderr(`burrow relay: cannot open the coordination store ${database === undefined ? `in ${options.dataDir}` : '(--database)'}: ${(error as Error).message}\n`)
    return 1
  }

  let server
  try {
    server = await startRelayServer({ ...options, privateKey: key.privateKey, log, mounts: [coordination] })
  } catch (error) {
    await coordination.close()
    await stun?.close()
    if (error instanceof TlsConfigError) io.stderr(`burrow relay: ${error.message}\n`)
    else io.stderr(`burrow relay: cannot listen on ${options.host}:${options.port}: ${(error as Error).message}\n`)
    return 1
  }
  // Only relays the operator named may be a node's home relay: by default this one, as it listens.
  coordination.service.setRelayMap(relayMap ?? [{ url: server.url }])
  if (regionMap) coordination.service.setRegionMap(regionMap)
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
  if (stun) server.handler.metrics.extra.push(() => stun.counters.render())
  log('info', 'listening', {
    address: `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`,
    url: server.url,
    publicKey: formatNodeKey(publicKeyOf(key.privateKey)),
    verifyClients: options.admit !== undefined,
    stun: stun ? `${stun.host.includes(':') ? `[${stun.host}]` : stun.host}:${stun.port}` : null,
    turn: options.turn ? { urls: options.turn.urls, credentials: options.turn.secret !== undefined } : null,
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
  await stun?.close()
  log('info', 'stopped')
  return 0
}
