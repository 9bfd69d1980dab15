// Test harness: a real Tailscale-protocol tailnet inside a test-made network namespace — Headscale
// (sqlite, no TLS), one DERP server (Tailscale's `derper` or `burrow relay`) as the only region of
// its DERP map, and `tailscaled --tun=userspace-networking` nodes joined with pre-auth keys.
//
// Why a namespace: tailscaled's peer API listens on 0.0.0.0, and a namespace with only `lo` counts
// as "network down" (tailscaled never dials control); a veth pair with addresses and a default
// route makes it behave as on a real machine. Everything listens on the namespace's veth address,
// which the host (and an in-process Burrow node in the test) reaches directly.
//
// The Go binaries are interop peers for tests only: built from the Go module proxy when absent and
// cached in ~/.cache/burrow/go-bin (nothing in Burrow needs Go at run time).
import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { NetworkNamespace } from './netns.ts'

export const TAILSCALE_VERSION = 'v1.102.5'
export const HEADSCALE_VERSION = 'v0.29.2'
const ROOT = join(import.meta.dirname, '..', '..')
const GO_BIN = join(homedir(), '.cache', 'burrow', 'go-bin')
const TAILSCALE_BIN = join(GO_BIN, TAILSCALE_VERSION)

export const hasGo = spawnSync('go', ['version']).status === 0

/** The DERP region the harness's DERP map declares (Headscale serves it to every node). */
export const DERP_REGION_ID = 900
/** The region of the optional second DERP server (`TailnetOptions.secondDerp`). */
export const SECOND_DERP_REGION_ID = 901

const goEnv = (extra: Record<string, string> = {}) => ({ ...process.env, GOTOOLCHAIN: 'local', ...extra })

/** `tailscaled`, `tailscale` and `derper` at TAILSCALE_VERSION, built with `go install` when absent. */
export function ensureTailscaleBinaries(): { tailscaled: string; tailscale: string; derper: string } {
  const names = ['tailscaled', 'tailscale', 'derper'] as const
  const missing = names.filter((name) => !existsSync(join(TAILSCALE_BIN, name)))
  if (missing.length > 0) {
    mkdirSync(TAILSCALE_BIN, { recursive: true })
    const packages = missing.map((name) => `tailscale.com/cmd/${name}@${TAILSCALE_VERSION}`)
    execFileSync('go', ['install', ...packages], { env: goEnv({ GOBIN: TAILSCALE_BIN }), stdio: 'inherit', timeout: 900_000 })
  }
  return { tailscaled: join(TAILSCALE_BIN, 'tailscaled'), tailscale: join(TAILSCALE_BIN, 'tailscale'), derper: join(TAILSCALE_BIN, 'derper') }
}

/**
 * Headscale at HEADSCALE_VERSION. `go install …@v0.29.2` fails (the module proxy refuses the
 * version-list query behind Go's deprecation check), so: `go mod download -json` the module, copy
 * its read-only Dir out of the module cache, `go build ./cmd/headscale` there.
 */
export function ensureHeadscale(): string {
  const binary = join(GO_BIN, `headscale-${HEADSCALE_VERSION}`)
  if (existsSync(binary)) return binary
  mkdirSync(GO_BIN, { recursive: true })
  const info = JSON.parse(
    execFileSync('go', ['mod', 'download', '-json', `github.com/juanfont/headscale@${HEADSCALE_VERSION}`], { env: goEnv(), encoding: 'utf8', timeout: 600_000 }),
  ) as { Dir?: string; Error?: string }
  if (!info.Dir) throw new Error(`go mod download of headscale ${HEADSCALE_VERSION} failed: ${info.Error ?? 'no Dir'}`)
  const work = mkdtempSync(join(tmpdir(), 'burrow-headscale-src-'))
  try {
    cpSync(info.Dir, work, { recursive: true })
    execFileSync('chmod', ['-R', 'u+w', work])
    const partial = `${binary}.${process.pid}.partial`
    execFileSync('go', ['build', '-o', partial, './cmd/headscale'], { cwd: work, env: goEnv(), stdio: 'inherit', timeout: 900_000 })
    renameSync(partial, binary)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return binary
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Thrown inside a waitUntil check to stop waiting at once (a daemon exited: nothing will change). */
export class GiveUp extends Error {}

/** Polls `check` until it returns a value other than undefined/false; the error names `what` and the last failure. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      if (error instanceof GiveUp) throw error
      last = error
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    await sleep(100)
  }
}

/** A long-running child whose output is kept for failure messages. */
class Daemon {
  private out = ''
  constructor(
    readonly name: string,
    readonly process: ChildProcess,
  ) {
    process.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.out = (this.out + chunk).slice(-20_000)))
    process.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.out = (this.out + chunk).slice(-20_000)))
  }
  get output(): string {
    return this.out
  }
  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return
    const exited = new Promise<void>((resolve) => this.process.once('exit', () => resolve()))
    this.process.kill(signal)
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

/** A Headscale ACL policy (HuJSON accepted by Headscale; plain JSON here). */
export interface HeadscalePolicy {
  acls: Array<{ action: 'accept'; src: string[]; dst: string[]; proto?: string }>
  groups?: Record<string, string[]>
  hosts?: Record<string, string>
  tagOwners?: Record<string, string[]>
}

export interface TailnetOptions {
  /** Which DERP server the tailnet's DERP map points at. */
  derp: 'derper' | 'burrow'
  /**
   * A second DERP server as a second region (SECOND_DERP_REGION_ID, code `lab2`), for home-region
   * tests: the DERP map then lists both regions.
   */
  secondDerp?: 'derper' | 'burrow'
  /** An ACL policy file; without one Headscale allows all traffic. */
  policy?: HeadscalePolicy
  /** MagicDNS base domain (default `tail.test`). */
  baseDomain?: string
}

export interface TailscaleStatusPeer {
  ID: string
  PublicKey: string
  HostName: string
  DNSName: string
  TailscaleIPs: string[]
  Online: boolean
  Relay: string
  CurAddr: string
  RxBytes: number
  TxBytes: number
  [key: string]: unknown
}

export interface TailscaleStatus {
  BackendState: string
  TailscaleIPs: string[] | null
  Self: TailscaleStatusPeer
  Peer: Record<string, TailscaleStatusPeer> | null
  [key: string]: unknown
}

export interface TailscaledOptions {
  hostname: string
  /** A pre-auth key; made for the tailnet's default user when omitted. */
  authKey?: string
  /** Start tailscaled's SOCKS5 proxy on this port of the namespace's 127.0.0.1 (reaches tailnet addresses). */
  socks5Port?: number
  /** Start tailscaled's outbound HTTP proxy on this port of the namespace's 127.0.0.1. */
  httpProxyPort?: number
  /** Extra `tailscale up` flags. */
  upArgs?: string[]
  /**
   * Disable tailscaled's UDP sockets so every packet goes through DERP (default true). Nodes in one
   * namespace would otherwise find each other directly on the veth address, and DERP-only is the
   * path a Burrow node without UDP shares with them.
   */
  derpOnly?: boolean
  /** Called the moment `tailscale up` returns (the node is registered), before addNode waits for Running. */
  onUp?: () => void
}

/** One `tailscaled --tun=userspace-networking` node in the tailnet's namespace. */
export class TailscaledNode {
  constructor(
    readonly tailnet: Tailnet,
    readonly hostname: string,
    readonly socket: string,
    readonly daemon: Daemon,
    readonly socks5Port: number | undefined,
    readonly httpProxyPort: number | undefined,
  ) {}

  get output(): string {
    return this.daemon.output
  }

  /** Runs `tailscale --socket=S <args>` inside the namespace and returns stdout; throws with stderr on failure. */
  async tailscale(args: string[], timeoutMs = 30_000): Promise<string> {
    return this.tailnet.namespace.run(this.tailnet.binaries.tailscale, [`--socket=${this.socket}`, ...args], { timeoutMs })
  }

  async status(): Promise<TailscaleStatus> {
    return JSON.parse(await this.tailscale(['status', '--json'])) as TailscaleStatus
  }

  /** The node's tailnet IPv4 address (100.64.0.0/10). */
  async ipv4(): Promise<string> {
    return (await this.tailscale(['ip', '-4'])).trim()
  }

  /** The peer of this node whose HostName or tailnet address is `target`, or undefined. */
  async peer(target: string): Promise<TailscaleStatusPeer | undefined> {
    const status = await this.status()
    return Object.values(status.Peer ?? {}).find((p) => p.HostName === target || p.TailscaleIPs.includes(target) || p.DNSName.split('.')[0] === target)
  }

  /**
   * `tailscale ping` (a disco ping; over DERP when no direct path exists): one ping at a time until
   * the first pong, at most `attempts` pings. Resolves with tailscale's line for that pong; rejects
   * with everything it printed when none came.
   */
  async ping(target: string, options: { attempts?: number; tsmp?: boolean; timeoutS?: number } = {}): Promise<string> {
    const args = ['ping', '--c=1', `--timeout=${options.timeoutS ?? 3}s`, '--until-direct=false', ...(options.tsmp ? ['--tsmp'] : []), target]
    let printed = ''
    for (let attempt = 0; attempt < (options.attempts ?? 10); attempt++) {
      const result = await this.tailnet.namespace.tryRun(this.tailnet.binaries.tailscale, [`--socket=${this.socket}`, ...args], { timeoutMs: 30_000 })
      const pong = /^pong from .*$/m.exec(result.stdout)
      if (pong) return pong[0]
      printed += result.stdout + result.stderr
    }
    throw new Error(`no pong from ${target}: ${printed}`)
  }

  /**
   * Downloads `url` (a tailnet address or MagicDNS name) through this node's SOCKS5 or HTTP proxy
   * with curl inside the namespace; returns the byte count and SHA-256 (hex) of the body.
   */
  async fetchThroughProxy(url: string, via: 'socks5' | 'http', timeoutMs = 120_000): Promise<{ bytes: number; sha256: string }> {
    const port = via === 'socks5' ? this.socks5Port : this.httpProxyPort
    if (!port) throw new Error(`tailscaled ${this.hostname} was started without its ${via} proxy`)
    const proxy = via === 'socks5' ? `socks5h://127.0.0.1:${port}` : `http://127.0.0.1:${port}`
    const file = join(this.tailnet.dir, `download-${this.hostname}-${Date.now()}`)
    try {
      const result = await this.tailnet.namespace.tryRun('curl', ['-sSf', '--max-time', String(Math.floor(timeoutMs / 1000) - 5), '--proxy', proxy, '-o', file, url], {
        timeoutMs,
      })
      if (result.code !== 0) throw new Error(`curl ${url} via ${proxy} failed (${result.code}): ${result.stderr}`)
      const body = readFileSync(file)
      return { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') }
    } finally {
      rmSync(file, { force: true })
    }
  }

  /** Stops tailscaled (SIGTERM): on userspace nodes Headscale marks it offline. */
  async stop(): Promise<void> {
    await this.daemon.stop()
  }
}

/** Ports inside the namespace (it is fresh, so fixed numbers never collide). */
const HEADSCALE_PORT = 8080
const DERP_PORT = 3340
const SECOND_DERP_PORT = 3341

/** One region of the harness's DERP map. */
interface DerpRegion {
  id: number
  code: string
  port: number
  kind: 'derper' | 'burrow'
}

/**
 * A Headscale tailnet in its own network namespace. `start()` brings up the DERP server and
 * Headscale, and creates user `test`; `addNode()` joins tailscaled nodes; `stop()` tears it all down.
 */
export class Tailnet {
  private headscaleDaemon: Daemon | undefined
  private readonly derpDaemons: Daemon[] = []
  /** The regions the DERP map Headscale serves lists (see setDerpRegions). */
  private servedRegions: number[] = []
  private readonly nodes: TailscaledNode[] = []
  private nodeCount = 0
  private defaultUserId = 0

  private constructor(
    readonly namespace: NetworkNamespace,
    readonly dir: string,
    readonly options: TailnetOptions,
    readonly binaries: { tailscaled: string; tailscale: string; derper: string; headscale: string },
  ) {}

  /** The address every service listens on: the namespace end of the veth (reachable from the host). */
  get address(): string {
    return this.namespace.nsAddress
  }

  /** Headscale's URL (plain HTTP) — what `tailscale up --login-server` and Burrow's `controlURL` take. */
  get controlURL(): string {
    return `http://${this.address}:${HEADSCALE_PORT}`
  }

  /** The DERP server's plain-HTTP URL (`/derp`), as its DERP map node describes it. */
  get derpURL(): string {
    return `http://${this.address}:${DERP_PORT}/derp`
  }

  /** MagicDNS base domain: peers are `<hostname>.<baseDomain>`. */
  get baseDomain(): string {
    return this.options.baseDomain ?? 'tail.test'
  }

  get headscaleOutput(): string {
    return this.headscaleDaemon?.output ?? ''
  }

  get derpOutput(): string {
    return this.derpDaemons.map((d) => d.output).join('\n')
  }

  /** Every DERP region the harness runs a server for (the first, and `secondDerp`'s). */
  get derpRegions(): Array<{ id: number; code: string; url: string; kind: 'derper' | 'burrow' }> {
    return this.regions().map((r) => ({ id: r.id, code: r.code, url: `http://${this.address}:${r.port}/derp`, kind: r.kind }))
  }

  private regions(): DerpRegion[] {
    const regions: DerpRegion[] = [{ id: DERP_REGION_ID, code: 'lab', port: DERP_PORT, kind: this.options.derp }]
    if (this.options.secondDerp) regions.push({ id: SECOND_DERP_REGION_ID, code: 'lab2', port: SECOND_DERP_PORT, kind: this.options.secondDerp })
    return regions
  }

  static async start(options: TailnetOptions): Promise<Tailnet> {
    const binaries = { ...ensureTailscaleBinaries(), headscale: ensureHeadscale() }
    const namespace = await NetworkNamespace.create()
    const dir = mkdtempSync(join(tmpdir(), 'burrow-tailnet-'))
    const tailnet = new Tailnet(namespace, dir, options, binaries)
    try {
      await namespace.run('ip', ['route', 'add', 'default', 'via', namespace.hostAddress])
      await tailnet.startDerp()
      tailnet.writeConfig()
      await tailnet.startHeadscale()
      tailnet.defaultUserId = await tailnet.createUser('test')
    } catch (error) {
      await tailnet.stop()
      throw error
    }
    return tailnet
  }

  private async startDerp(): Promise<void> {
    for (const region of this.regions()) await this.startDerpServer(region)
  }

  private async startDerpServer(region: DerpRegion): Promise<void> {
    const listen = `${this.address}:${region.port}`
    let derp: Daemon
    if (region.kind === 'derper') {
      // A port other than 443 and no -certmode manual: derper serves plain HTTP (cmd/derper/derper.go).
      const child = this.namespace.spawn(this.binaries.derper, [
        '-a',
        listen,
        '-http-port',
        '-1',
        '-stun=false',
        '-c',
        join(this.dir, `derper-${region.id}.json`),
        '-certdir',
        join(this.dir, `derper-certs-${region.id}`),
      ])
      derp = new Daemon(`derper ${region.code}`, child)
    } else {
      const child = this.namespace.spawn(process.execPath, [join(ROOT, 'bin', 'burrow.mjs'), 'relay', '--listen', listen, '--data-dir', join(this.dir, `relay-${region.id}`)])
      derp = new Daemon(`burrow relay ${region.code}`, child)
    }
    this.derpDaemons.push(derp)
    await waitUntil(`${derp.name} to answer /derp/probe (${derp.output})`, async () => {
      if (!derp.running) throw new GiveUp(`${derp.name} exited: ${derp.output}`)
      const response = await fetch(`http://${listen}/derp/probe`, { method: 'HEAD' })
      return response.ok
    })
  }

  /**
   * Writes the DERP map Headscale serves: every harness region whose id is in `ids` (default:
   * all). Headscale reads it at start, so a change takes effect with restartHeadscale().
   */
  setDerpRegions(ids: number[] = this.regions().map((r) => r.id)): void {
    this.servedRegions = ids
    // The DERP map in Headscale's YAML form: lower-case tailcfg.DERPMap field names (hscontrol/derp/derp.go
    // unmarshals it into tailcfg.DERPMap). insecurefortests skips TLS verification; with
    // TS_DEBUG_USE_DERP_HTTP=1 tailscaled speaks plain HTTP to derpport anyway.
    const lines = ['regions:']
    for (const region of this.regions().filter((r) => ids.includes(r.id))) {
      lines.push(
        `  ${region.id}:`,
        `    regionid: ${region.id}`,
        `    regioncode: ${region.code}`,
        `    regionname: ${region.code === 'lab' ? 'Lab' : `Lab ${region.code}`}`,
        '    nodes:',
        `      - name: ${region.id}a`,
        `        regionid: ${region.id}`,
        `        hostname: ${this.address}`,
        `        ipv4: ${this.address}`,
        '        ipv6: none',
        '        stunport: -1',
        `        derpport: ${region.port}`,
        '        insecurefortests: true',
      )
    }
    writeFileSync(join(this.dir, 'derp.yaml'), [...lines, ''].join('\n'))
  }

  /** The region ids of the DERP map Headscale was last given. */
  get servedDerpRegions(): number[] {
    return [...this.servedRegions]
  }

  private writeConfig(): void {
    this.setDerpRegions()
    let policyPath = ''
    if (this.options.policy) {
      policyPath = join(this.dir, 'policy.json')
      writeFileSync(policyPath, JSON.stringify(this.options.policy, null, 2))
    }
    const config = {
      server_url: this.controlURL,
      listen_addr: `${this.address}:${HEADSCALE_PORT}`,
      metrics_listen_addr: '127.0.0.1:9090',
      grpc_listen_addr: '127.0.0.1:50443',
      grpc_allow_insecure: false,
      noise: { private_key_path: join(this.dir, 'noise_private.key') },
      prefixes: { v4: '100.64.0.0/10', v6: 'fd7a:115c:a1e0::/48', allocation: 'sequential' },
      derp: {
        server: { enabled: false },
        urls: [],
        paths: [join(this.dir, 'derp.yaml')],
        auto_update_enabled: false,
        update_frequency: '24h',
      },
      disable_check_updates: true,
      // The shortest inactivity timeout Headscale accepts (it demands more than 1m5s).
      node: { expiry: 0, ephemeral: { inactivity_timeout: '70s' } },
      database: { type: 'sqlite', sqlite: { path: join(this.dir, 'db.sqlite'), write_ahead_log: true } },
      tls_cert_path: '',
      tls_key_path: '',
      log: { level: 'info', format: 'text' },
      policy: { mode: 'file', path: policyPath },
      dns: { magic_dns: true, base_domain: this.baseDomain, override_local_dns: false, nameservers: { global: [], split: {} }, search_domains: [], extra_records: [] },
      unix_socket: join(this.dir, 'headscale.sock'),
      unix_socket_permission: '0770',
      logtail: { enabled: false },
    }
    // JSON is YAML, and Headscale reads its config through viper, which takes either.
    writeFileSync(join(this.dir, 'config.yaml'), JSON.stringify(config, null, 2))
  }

  private async startHeadscale(): Promise<void> {
    const child = this.namespace.spawn(this.binaries.headscale, ['-c', join(this.dir, 'config.yaml'), 'serve'])
    const daemon = (this.headscaleDaemon = new Daemon('headscale', child))
    await waitUntil(
      'headscale to serve /health',
      async () => {
        if (!daemon.running) throw new GiveUp(`headscale exited: ${daemon.output}`)
        const response = await fetch(`${this.controlURL}/health`)
        return response.ok && existsSync(join(this.dir, 'headscale.sock'))
      },
      60_000,
    )
  }

  /** Kills Headscale (SIGKILL: every map stream dies at once) and starts it again on the same database. */
  async restartHeadscale(options: { downMs?: number } = {}): Promise<void> {
    await this.headscaleDaemon?.stop('SIGKILL')
    rmSync(join(this.dir, 'headscale.sock'), { force: true })
    if (options.downMs) await sleep(options.downMs)
    await this.startHeadscale()
  }

  /** Runs the headscale CLI (over its unix socket) and returns stdout. */
  /**
   * The `Burrow.start` options of a Node peer joining this tailnet as `hostname` with a fresh
   * pre-auth key: memory key store, DERP over plain HTTP (the test DERP servers have no TLS), and
   * no direct paths (tailscaled sees Burrow on DERP only).
   */
  async burrowJoin(hostname: string): Promise<{ controlURL: string; authKey: string; hostname: string; storage: 'memory'; derpOverHTTP: true; direct: false }> {
    return { controlURL: this.controlURL, authKey: await this.createAuthKey(), hostname, storage: 'memory', derpOverHTTP: true, direct: false }
  }

  /**
   * Serves `dir` (default: the tailnet's scratch dir) over HTTP on 127.0.0.1:`port` inside the
   * namespace: userspace tailscaled forwards connections to its tailnet address's ports to the
   * same port on its own 127.0.0.1, so this is "a server behind every tailscaled node".
   */
  serveFiles(port = 8000, dir = this.dir): ChildProcess {
    return this.namespace.spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir])
  }

  async headscale(args: string[]): Promise<string> {
    return this.namespace.run(this.binaries.headscale, ['-c', join(this.dir, 'config.yaml'), ...args], { timeoutMs: 30_000 })
  }

  /** `headscale users create NAME`; returns the new user's numeric id. */
  async createUser(name: string): Promise<number> {
    await this.headscale(['users', 'create', name])
    const users = JSON.parse(await this.headscale(['users', 'list', '-o', 'json'])) as Array<{ id: number | string; name: string }>
    const user = users.find((u) => u.name === name)
    if (!user) throw new Error(`headscale users list has no ${name}: ${JSON.stringify(users)}`)
    return Number(user.id)
  }

  /** `headscale preauthkeys create`; returns the key (`hskey-auth-…`). */
  async createAuthKey(options: { userId?: number; reusable?: boolean; ephemeral?: boolean } = {}): Promise<string> {
    const args = ['preauthkeys', 'create', '-u', String(options.userId ?? this.defaultUserId), '-e', '24h', '-o', 'json']
    if (options.reusable ?? true) args.push('--reusable')
    if (options.ephemeral) args.push('--ephemeral')
    const created = JSON.parse(await this.headscale(args)) as { key?: string }
    if (!created.key) throw new Error(`headscale preauthkeys create printed no key`)
    return created.key
  }

  /** `headscale nodes list -o json`. */
  async listNodes(): Promise<Array<{ id: number | string; name: string; given_name?: string; online?: boolean; ip_addresses?: string[]; [key: string]: unknown }>> {
    return JSON.parse(await this.headscale(['nodes', 'list', '-o', 'json'])) as Array<{ id: number | string; name: string }>
  }

  /**
   * Headscale's own record of every node, Hostinfo included (`nodes list` leaves Hostinfo out):
   * its debug endpoint `/debug/nodestore` on the metrics listener, which answers loopback callers
   * (hscontrol/debug.go, tsweb.AllowDebugAccess). Go field names, as types.Node has no JSON tags.
   */
  async nodeStore(): Promise<Array<{ ID: number; GivenName: string; Hostname: string; Hostinfo?: { NetInfo?: { PreferredDERP?: number } } | null }>> {
    const out = await this.namespace.run('curl', ['-sSf', '--max-time', '20', '-H', 'Accept: application/json', 'http://127.0.0.1:9090/debug/nodestore'], { timeoutMs: 30_000 })
    return Object.values(JSON.parse(out) as Record<string, { ID: number; GivenName: string; Hostname: string; Hostinfo?: { NetInfo?: { PreferredDERP?: number } } | null }>)
  }

  /** The PreferredDERP Headscale holds for the node named `name` (given name), or undefined. */
  async preferredDERP(name: string): Promise<number | undefined> {
    return (await this.nodeStore()).find((n) => n.GivenName === name)?.Hostinfo?.NetInfo?.PreferredDERP
  }

  /** The tailscaled nodes addNode() started (stopped ones included). */
  get tailscaledNodes(): readonly TailscaledNode[] {
    return this.nodes
  }

  /** `headscale nodes delete --identifier ID --force`: control forgets the node, every peer's map drops it. */
  async deleteNode(id: number | string): Promise<void> {
    await this.headscale(['nodes', 'delete', '--identifier', String(id), '--force'])
  }

  /** Starts a userspace tailscaled, runs `tailscale up` against Headscale and waits until it is Running with an address. */
  async addNode(options: TailscaledOptions): Promise<TailscaledNode> {
    const n = this.nodeCount++
    const stateDir = join(this.dir, `ts-${n}-${options.hostname}`)
    mkdirSync(stateDir, { recursive: true })
    const socket = join(stateDir, 'tailscaled.sock')
    const args = ['--tun=userspace-networking', '--state=mem:', `--socket=${socket}`, `--statedir=${stateDir}`, '--port=0']
    if (options.socks5Port) args.push(`--socks5-server=127.0.0.1:${options.socks5Port}`)
    if (options.httpProxyPort) args.push(`--outbound-http-proxy-listen=127.0.0.1:${options.httpProxyPort}`)
    const child = this.namespace.spawn(this.binaries.tailscaled, args, {
      // Plain-HTTP DERP (the harness's DERP server has no TLS): derp/derphttp/derphttp_client.go.
      TS_DEBUG_USE_DERP_HTTP: '1',
      // No log uploads to log.tailscale.com from a test.
      TS_NO_LOGS_NO_SUPPORT: 'true',
      // magicsock binds no UDP socket at all (wgengine/magicsock/debugknobs.go).
      ...((options.derpOnly ?? true) ? { TS_DEBUG_ALWAYS_USE_DERP: '1' } : {}),
    })
    const node = new TailscaledNode(this, options.hostname, socket, new Daemon(`tailscaled ${options.hostname}`, child), options.socks5Port, options.httpProxyPort)
    this.nodes.push(node)
    await waitUntil(`tailscaled ${options.hostname} to open its socket (${node.output})`, () => {
      if (!node.daemon.running) throw new GiveUp(`tailscaled exited: ${node.output}`)
      return existsSync(socket)
    })
    const authKey = options.authKey ?? (await this.createAuthKey())
    await node.tailscale(
      ['up', `--login-server=${this.controlURL}`, `--authkey=${authKey}`, `--hostname=${options.hostname}`, '--accept-dns=false', ...(options.upArgs ?? [])],
      60_000,
    )
    options.onUp?.()
    await waitUntil(`tailscaled ${options.hostname} to be Running`, async () => {
      const status = await node.status()
      return status.BackendState === 'Running' && (status.TailscaleIPs?.length ?? 0) > 0
    })
    return node
  }

  /** Stops every node, Headscale and the DERP server, removes the namespace and the scratch directory. */
  async stop(): Promise<void> {
    for (const node of this.nodes.splice(0)) await node.stop().catch(() => {})
    await this.headscaleDaemon?.stop().catch(() => {})
    for (const derp of this.derpDaemons) await derp.stop().catch(() => {})
    await this.namespace.cleanup()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
