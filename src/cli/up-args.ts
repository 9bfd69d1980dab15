// Flags of `burrow up`. Unlike the other commands, --serve, --serve-udp and --allow repeat and
// --ephemeral takes no value, so this parser is its own.
import { isIP } from 'node:net'
import { AllowPolicy, AllowPolicyError } from '../node/allow.ts'
import type { ServiceTarget } from '../node/bridge.ts'
import { LOG_LEVELS, type LogLevel } from '../server/log.ts'
import { UsageError } from './args.ts'

export interface ServeSpec {
  /** The overlay port peers connect to. */
  port: number
  target: ServiceTarget
  /** As given, for logs. */
  text: string
}

export interface UpConfig {
  controlURL: string
  authKey: string | undefined
  hostname: string | undefined
  stateDir: string | undefined
  ephemeral: boolean
  /** --no-direct: stay on relays, never try WebRTC direct paths. */
  noDirect: boolean
  serveTcp: ServeSpec[]
  serveUdp: ServeSpec[]
  allow: string[]
  policy: AllowPolicy
  /** Seconds a forwarded UDP flow may stay silent before its real socket is closed. */
  udpIdleSeconds: number
  /** Write the overlay's packets here as a pcap. */
  pcapPath: string | undefined
  /** `debug` also logs a one-line summary of every overlay packet. */
  logLevel: LogLevel
  /** Tailnet only (--control-key): the control server's Noise key, `mkey:<64 hex>`, instead of fetching /key. */
  controlKey: string | undefined
  /** Tailnet only (--derp-over-http): dial the tailnet's DERP servers over plain HTTP (test tailnets without TLS). */
  derpOverHTTP: boolean
  /** --home-region N: call that relay region home while it is up. */
  homeRegion: number | undefined
}

const VALUE_FLAGS = ['control', 'authkey', 'hostname', 'state-dir', 'serve', 'serve-udp', 'allow', 'udp-idle', 'pcap', 'log-level', 'control-key', 'home-region'] as const
const REPEATABLE = new Set(['serve', 'serve-udp', 'allow'])
const BOOLEAN_FLAGS = ['ephemeral', 'no-direct', 'derp-over-http'] as const

export function parseUpArgs(args: string[]): UpConfig {
  const single = new Map<string, string>()
  const repeated = new Map<string, string[]>()
  let ephemeral = false
  let noDirect = false
  let derpOverHTTP = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)} (burrow up takes only --options)`)
    const equals = arg.indexOf('=')
    const name = arg.slice(2, equals < 0 ? undefined : equals)
    if ((BOOLEAN_FLAGS as readonly string[]).includes(name)) {
      if (equals >= 0) throw new UsageError(`--${name} takes no value`)
      if (name === 'ephemeral') ephemeral = true
      else if (name === 'derp-over-http') derpOverHTTP = true
      else noDirect = true
      continue
    }
    if (!(VALUE_FLAGS as readonly string[]).includes(name)) throw new UsageError(`unknown option --${name}`)
    const value = equals >= 0 ? arg.slice(equals + 1) : args[++i]
    if (value === undefined) throw new UsageError(`--${name} needs a value`)
    if (REPEATABLE.has(name)) repeated.set(name, [...(repeated.get(name) ?? []), value])
    else if (single.has(name)) throw new UsageError(`--${name} given twice`)
    else single.set(name, value)
  }
  const controlURL = single.get('control')
  if (controlURL === undefined) throw new UsageError('--control URL is required (the relay, e.g. http://relay.example:8080)')
  try {
    const protocol = new URL(controlURL).protocol
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(protocol)) throw new Error()
  } catch {
    throw new UsageError(`--control ${JSON.stringify(controlURL)} is not an http(s) or ws(s) URL`)
  }
  const serveTcp = (repeated.get('serve') ?? []).map((text) => parseServeSpec('serve', text))
  const serveUdp = (repeated.get('serve-udp') ?? []).map((text) => parseServeSpec('serve-udp', text))
  checkDistinct('serve', serveTcp)
  checkDistinct('serve-udp', serveUdp)
  const allow = repeated.get('allow') ?? []
  let policy: AllowPolicy
  try {
    policy = new AllowPolicy(allow)
  } catch (error) {
    if (error instanceof AllowPolicyError) throw new UsageError(error.message)
    throw error
  }
  const idleText = single.get('udp-idle')
  const udpIdleSeconds = idleText === undefined ? 60 : Number(idleText)
  if (!Number.isFinite(udpIdleSeconds) || udpIdleSeconds <= 0 || udpIdleSeconds > 86_400) {
    throw new UsageError(`--udp-idle must be seconds from more than 0 to 86400, got ${JSON.stringify(idleText)}`)
  }
  const logLevel = (single.get('log-level') ?? 'info') as LogLevel
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`)
  const controlKey = single.get('control-key')
  if (controlKey !== undefined && !/^mkey:[0-9a-fA-F]{64}$/.test(controlKey))
    throw new UsageError(`--control-key must be mkey: and 64 hex digits (the control server's /key publicKey), got ${JSON.stringify(controlKey)}`)
  const homeText = single.get('home-region')
  const homeRegion = homeText === undefined ? undefined : Number(homeText)
  if (homeRegion !== undefined && (!Number.isSafeInteger(homeRegion) || homeRegion < 1))
    throw new UsageError(`--home-region must be a relay region id (a whole number ≥ 1), got ${JSON.stringify(homeText)}`)
  return {
    homeRegion,
    logLevel,
    controlKey,
    derpOverHTTP,
    controlURL,
    authKey: single.get('authkey'),
    hostname: single.get('hostname'),
    stateDir: single.get('state-dir'),
    ephemeral,
    noDirect,
    serveTcp,
    serveUdp,
    allow,
    policy,
    udpIdleSeconds,
    pcapPath: single.get('pcap'),
  }
}

/** `PORT=HOST:PORT`, `PORT=[IPV6]:PORT`, or `PORT=PORT` (the service on 127.0.0.1). */
export function parseServeSpec(flag: string, text: string): ServeSpec {
  const bad = (why: string): UsageError => new UsageError(`--${flag} ${JSON.stringify(text)}: ${why} (expected PORT=HOST:PORT, e.g. 80=127.0.0.1:8080)`)
  const equals = text.indexOf('=')
  if (equals < 0) throw bad('missing "="')
  const port = parsePort(text.slice(0, equals))
  if (port === undefined) throw bad(`overlay port ${JSON.stringify(text.slice(0, equals))} is not 1..65535`)
  const rest = text.slice(equals + 1)
  let host: string
  let portText: string
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']')
    if (close < 0 || rest[close + 1] !== ':') throw bad('an IPv6 host needs the form [ADDRESS]:PORT')
    host = rest.slice(1, close)
    portText = rest.slice(close + 2)
    if (isIP(host) !== 6) throw bad(`${JSON.stringify(host)} is not an IPv6 address`)
  } else {
    const colon = rest.lastIndexOf(':')
    host = colon < 0 ? '127.0.0.1' : rest.slice(0, colon)
    portText = colon < 0 ? rest : rest.slice(colon + 1)
    if (host.includes(':')) throw bad('write an IPv6 host in brackets')
    if (host === '') throw bad('the host is empty')
  }
  const targetPort = parsePort(portText)
  if (targetPort === undefined) throw bad(`service port ${JSON.stringify(portText)} is not 1..65535`)
  return { port, target: { host, port: targetPort }, text }
}

function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined
  const port = Number(text)
  return port >= 1 && port <= 65535 ? port : undefined
}

function checkDistinct(flag: string, specs: ServeSpec[]): void {
  const seen = new Set<number>()
  for (const spec of specs) {
    if (seen.has(spec.port)) throw new UsageError(`--${flag}: overlay port ${spec.port} is served twice`)
    seen.add(spec.port)
  }
}
