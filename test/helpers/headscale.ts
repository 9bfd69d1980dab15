// A minimal Headscale on loopback for the control-transport tests (register + map need no
// namespace and no tailscaled). The full tailnet harness (Headscale, DERP, tailscaled in a
// network namespace) is test/helpers/tailnet.ts; this starter builds Headscale the same way.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './ports.ts'

export const HEADSCALE_VERSION = 'v0.29.2'
const GO_BIN = join(homedir(), '.cache', 'burrow', 'go-bin')
const run = promisify(execFile)

/**
 * `go install …@v0.29.2` fails (the module proxy refuses the version-list query behind Go's
 * deprecation check), so: `go mod download -json`, copy the module's Dir out, `go build ./cmd/headscale`.
 */
export function ensureHeadscale(): string {
  const binary = join(GO_BIN, `headscale-${HEADSCALE_VERSION}`)
  if (existsSync(binary)) return binary
  mkdirSync(GO_BIN, { recursive: true })
  const env = { ...process.env, GOTOOLCHAIN: 'local' }
  const info = JSON.parse(execFileSync('go', ['mod', 'download', '-json', `github.com/juanfont/headscale@${HEADSCALE_VERSION}`], { env, encoding: 'utf8', timeout: 600_000 })) as {
    Dir?: string
    Error?: string
  }
  if (!info.Dir) throw new Error(`go mod download of headscale failed: ${info.Error ?? 'no Dir'}`)
  const work = mkdtempSync(join(tmpdir(), 'burrow-headscale-src-'))
  try {
    cpSync(info.Dir, work, { recursive: true })
    execFileSync('chmod', ['-R', 'u+w', work])
    const partial = `${binary}.${process.pid}.partial`
    execFileSync('go', ['build', '-o', partial, './cmd/headscale'], { cwd: work, env, stdio: 'inherit', timeout: 900_000 })
    renameSync(partial, binary)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return binary
}

export { freePort }

export class LoopbackHeadscale {
  private output = ''
  private constructor(
    private readonly binary: string,
    readonly dir: string,
    readonly port: number,
    private child: ChildProcess,
  ) {
    this.track(child)
  }

  get controlURL(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get log(): string {
    return this.output
  }

  static async start(): Promise<LoopbackHeadscale> {
    const binary = ensureHeadscale()
    const dir = mkdtempSync(join(tmpdir(), 'burrow-headscale-'))
    const [port, metrics, grpc, derpPort] = [await freePort(), await freePort(), await freePort(), await freePort()]
    // A DERP map is required; nothing in these tests dials it (lower-case tailcfg.DERPMap YAML).
    writeFileSync(
      join(dir, 'derp.yaml'),
      `regions:\n  900:\n    regionid: 900\n    regioncode: lab\n    regionname: Lab\n    nodes:\n      - name: 900a\n        regionid: 900\n        hostname: 127.0.0.1\n        ipv4: 127.0.0.1\n        ipv6: none\n        stunport: -1\n        derpport: ${derpPort}\n        insecurefortests: true\n`,
    )
    const config = {
      server_url: `http://127.0.0.1:${port}`,
      listen_addr: `127.0.0.1:${port}`,
      metrics_listen_addr: `127.0.0.1:${metrics}`,
      grpc_listen_addr: `127.0.0.1:${grpc}`,
      grpc_allow_insecure: false,
      noise: { private_key_path: join(dir, 'noise_private.key') },
      prefixes: { v4: '100.64.0.0/10', v6: 'fd7a:115c:a1e0::/48', allocation: 'sequential' },
      derp: { server: { enabled: false }, urls: [], paths: [join(dir, 'derp.yaml')], auto_update_enabled: false, update_frequency: '24h' },
      disable_check_updates: true,
      database: { type: 'sqlite', sqlite: { path: join(dir, 'db.sqlite'), write_ahead_log: true } },
      tls_cert_path: '',
      tls_key_path: '',
      log: { level: 'info', format: 'text' },
      policy: { mode: 'file', path: '' },
      dns: { magic_dns: true, base_domain: 'tail.test', override_local_dns: false, nameservers: { global: [], split: {} }, search_domains: [], extra_records: [] },
      unix_socket: join(dir, 'headscale.sock'),
      unix_socket_permission: '0770',
      logtail: { enabled: false },
    }
    // JSON is YAML; viper reads either.
    writeFileSync(join(dir, 'config.yaml'), JSON.stringify(config))
    const headscale = new LoopbackHeadscale(binary, dir, port, LoopbackHeadscale.spawn(binary, dir))
    await headscale.waitHealthy()
    return headscale
  }

  private static spawn(binary: string, dir: string): ChildProcess {
    return spawn(binary, ['-c', join(dir, 'config.yaml'), 'serve'], { stdio: ['ignore', 'pipe', 'pipe'] })
  }

  private track(child: ChildProcess): void {
    child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()))
  }

  private async waitHealthy(): Promise<void> {
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`headscale exited: ${this.output}`)
      const ok = await fetch(`${this.controlURL}/health`).then(
        (r) => r.ok,
        () => false,
      )
      if (ok && existsSync(join(this.dir, 'headscale.sock'))) return
      await new Promise((r) => setTimeout(r, 200))
    }
    throw new Error(`headscale did not become healthy: ${this.output}`)
  }

  /** Kills Headscale (every map stream dies at once) and, after `downMs`, starts it again on the same database. */
  async restart(downMs = 0): Promise<void> {
    await this.kill()
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs))
    rmSync(join(this.dir, 'headscale.sock'), { force: true })
    this.child = LoopbackHeadscale.spawn(this.binary, this.dir)
    this.track(this.child)
    await this.waitHealthy()
  }

  async cli(args: string[]): Promise<string> {
    const { stdout } = await run(this.binary, ['-c', join(this.dir, 'config.yaml'), ...args], { timeout: 30_000 })
    return stdout
  }

  async createUser(name: string): Promise<number> {
    await this.cli(['users', 'create', name])
    const users = JSON.parse(await this.cli(['users', 'list', '-o', 'json'])) as Array<{ id: number | string; name: string }>
    return Number(users.find((u) => u.name === name)!.id)
  }

  async createAuthKey(userId: number): Promise<string> {
    const created = JSON.parse(await this.cli(['preauthkeys', 'create', '-u', String(userId), '--reusable', '-e', '24h', '-o', 'json'])) as { key?: string }
    if (!created.key) throw new Error('headscale preauthkeys create printed no key')
    return created.key
  }

  private async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill('SIGKILL')
    await exited
  }

  async stop(): Promise<void> {
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
