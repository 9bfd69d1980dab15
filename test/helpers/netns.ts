// Test harness: a throwaway network namespace joined to the host by a veth pair, and wireguard-go instances inside it.
// Needs root, iproute2, wireguard-go and wireguard-tools. Everything it creates is removed by cleanup(), which also runs
// on process exit and on SIGINT/SIGTERM; namespaces left by a killed run are swept by the next one.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface CommandResult {
  code: number
  stdout: string
  stderr: string
}

export class CommandError extends Error {
  constructor(
    readonly command: string[],
    readonly result: CommandResult,
  ) {
    super(`${command.join(' ')} exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`)
    this.name = 'CommandError'
  }
}

/** Runs a command to completion and collects its output; never throws for a non-zero exit. */
export function runCommand(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr })
    })
    if (child.stdin) {
      // A command that exits without reading its input must not turn into an EPIPE crash.
      child.stdin.on('error', () => {})
      child.stdin.end(options.input)
    }
  })
}

/** Runs a command and throws a CommandError naming it when it fails. */
export async function mustRun(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await runCommand(command, args, options)
  if (result.code !== 0) throw new CommandError([command, ...args], result)
  return result.stdout
}

export interface WireguardGoPeer {
  /** base64 */
  publicKey: string
  presharedKey?: string
  allowedIps: string[]
  /** `host:port` or `[v6]:port` */
  endpoint?: string
  persistentKeepalive?: number
}

export interface WireguardGoOptions {
  /** base64; generated with `wg genkey` when omitted. */
  privateKey?: string
  listenPort: number
  /** Overlay addresses with prefix length, IPv4 and/or IPv6, e.g. `10.99.0.1/24`, `fd99::1/64`. */
  addresses: string[]
  peers?: WireguardGoPeer[]
  mtu?: number
}

const WG_SOCKET_DIR = '/var/run/wireguard'

export class WireguardGo {
  private exited = false
  private exitWaiters: Array<() => void> = []
  private log = ''

  constructor(
    readonly namespace: NetworkNamespace,
    /** Unique across the machine: wireguard-go's control socket is named after it and shared by all namespaces. */
    readonly interfaceName: string,
    readonly privateKey: string,
    readonly publicKey: string,
    readonly listenPort: number,
    readonly process: ChildProcess,
  ) {
    process.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.log += chunk))
    process.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.log += chunk))
    process.on('exit', () => {
      this.exited = true
      for (const wake of this.exitWaiters.splice(0)) wake()
    })
  }

  /** What wireguard-go printed so far (for failure messages). */
  get output(): string {
    return this.log
  }

  get running(): boolean {
    return !this.exited
  }

  /** Runs `wg <args>` against this instance (the control socket is global, so no namespace is needed). */
  wg(args: string[]): Promise<string> {
    return mustRun('wg', args)
  }

  /** `wg set <if> peer …` */
  async setPeer(peer: WireguardGoPeer): Promise<void> {
    await this.wg(['set', this.interfaceName, ...peerArgs(peer, this.namespace.scratchFile(`psk-${peer.publicKey}`, peer.presharedKey))])
  }

  /** Unix seconds of the last handshake per peer public key (0 = never), from `wg show <if> latest-handshakes`. */
  async latestHandshakes(): Promise<Map<string, number>> {
    const text = await this.wg(['show', this.interfaceName, 'latest-handshakes'])
    const result = new Map<string, number>()
    for (const line of text.split('\n')) {
      const [key, seconds] = line.trim().split(/\s+/)
      if (key && seconds) result.set(key, Number(seconds))
    }
    return result
  }

  /** Bytes received from / sent to each peer public key, from `wg show <if> transfer`. */
  async transfer(): Promise<Map<string, { rx: number; tx: number }>> {
    const text = await this.wg(['show', this.interfaceName, 'transfer'])
    const result = new Map<string, { rx: number; tx: number }>()
    for (const line of text.split('\n')) {
      const [key, rx, tx] = line.trim().split(/\s+/)
      if (key && rx && tx) result.set(key, { rx: Number(rx), tx: Number(tx) })
    }
    return result
  }

  /** Stops the daemon and waits for it to exit; its TUN device goes with it. */
  async stop(): Promise<void> {
    if (this.exited) return
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve))
    this.process.kill('SIGTERM')
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }
}

function peerArgs(peer: WireguardGoPeer, presharedKeyFile: string | undefined): string[] {
  const args = ['peer', peer.publicKey, 'allowed-ips', peer.allowedIps.join(',')]
  if (presharedKeyFile) args.push('preshared-key', presharedKeyFile)
  if (peer.endpoint) args.push('endpoint', peer.endpoint)
  if (peer.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(peer.persistentKeepalive))
  return args
}

const live = new Set<NetworkNamespace>()
let counter = 0
let exitHooksInstalled = false

function installExitHooks(): void {
  if (exitHooksInstalled) return
  exitHooksInstalled = true
  process.on('exit', () => {
    for (const ns of live) ns.cleanupSync()
  })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const ns of live) ns.cleanupSync()
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15))
    })
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Deletes `bw-<pid>-<n>` namespaces whose creating process is gone (left behind by a run that was SIGKILLed). */
function sweepAbandonedNamespaces(): void {
  let listing = ''
  try {
    listing = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  } catch {
    return
  }
  for (const line of listing.split('\n')) {
    const match = /^(bw-(\d+)-\d+)\b/.exec(line.trim())
    if (!match || processAlive(Number(match[2]))) continue
    killNamespaceProcesses(match[1]!)
    try {
      execFileSync('ip', ['netns', 'delete', match[1]!], { stdio: 'ignore' })
    } catch {
      // Someone else swept it first.
    }
  }
}

/** Removes control sockets of wireguard-go instances this harness started in processes that are gone. */
function sweepAbandonedSockets(): void {
  let names: string[] = []
  try {
    names = readdirSync(WG_SOCKET_DIR)
  } catch {
    return
  }
  for (const name of names) {
    const match = /^bwg(\d+)x\d+[a-z]\.sock$/.exec(name)
    if (match && !processAlive(Number(match[1]))) rmSync(join(WG_SOCKET_DIR, name), { force: true })
  }
}

function killNamespaceProcesses(name: string): void {
  let pids: string[] = []
  try {
    pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)
  } catch {
    return
  }
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
}

function hostHasAddress(prefix: string): boolean {
  const text = execFileSync('ip', ['-o', 'addr', 'show'], { encoding: 'utf8' })
  return text.includes(` ${prefix}`)
}

/**
 * A network namespace `bw-<pid>-<n>` with a veth pair: `hostInterface` (on the host) has `hostAddress`/`hostAddress6`,
 * `nsInterface` (inside) has `nsAddress`/`nsAddress6`, on a /30 in 10.128.0.0/9 and a /64 in fd62:7277::/32.
 */
export class NetworkNamespace {
  private readonly processes = new Set<ChildProcess>()
  private readonly scratchDir: string
  private wireguardCount = 0
  private readonly wireguardInterfaces: string[] = []
  private cleanedUp = false

  private constructor(
    readonly name: string,
    readonly index: number,
    readonly hostInterface: string,
    readonly nsInterface: string,
    readonly hostAddress: string,
    readonly nsAddress: string,
    readonly hostAddress6: string,
    readonly nsAddress6: string,
  ) {
    this.scratchDir = mkdtempSync(join(tmpdir(), `${name}-`))
  }

  static async create(): Promise<NetworkNamespace> {
    installExitHooks()
    sweepAbandonedNamespaces()
    sweepAbandonedSockets()
    const n = counter++
    const name = `bw-${process.pid}-${n}`
    // Spread instances over 10.128.0.0/9 in /30 steps; skip a block some other process already uses.
    let block = ((process.pid * 64 + n) * 4) % (1 << 23)
    while (hostHasAddress(`10.${128 + (block >> 16)}.${(block >> 8) & 255}.${(block & 255) + 1}/`)) block = (block + 4) % (1 << 23)
    const base = `10.${128 + (block >> 16)}.${(block >> 8) & 255}.`
    const six = `fd62:7277:${(block >> 16).toString(16)}:${(block & 0xffff).toString(16)}::`
    const ns = new NetworkNamespace(
      name,
      n,
      `bw${process.pid}h${n}`.slice(0, 15),
      `bw${process.pid}n${n}`.slice(0, 15),
      `${base}${(block & 255) + 1}`,
      `${base}${(block & 255) + 2}`,
      `${six}1`,
      `${six}2`,
    )
    live.add(ns)
    try {
      await mustRun('ip', ['netns', 'add', name])
      await mustRun('ip', ['link', 'add', ns.hostInterface, 'type', 'veth', 'peer', 'name', ns.nsInterface])
      await mustRun('ip', ['link', 'set', ns.nsInterface, 'netns', name])
      await mustRun('ip', ['addr', 'add', `${ns.hostAddress}/30`, 'dev', ns.hostInterface])
      await mustRun('ip', ['-6', 'addr', 'add', `${ns.hostAddress6}/64`, 'dev', ns.hostInterface, 'nodad'])
      await mustRun('ip', ['link', 'set', ns.hostInterface, 'up'])
      await ns.run('ip', ['link', 'set', 'lo', 'up'])
      await ns.run('ip', ['addr', 'add', `${ns.nsAddress}/30`, 'dev', ns.nsInterface])
      await ns.run('ip', ['-6', 'addr', 'add', `${ns.nsAddress6}/64`, 'dev', ns.nsInterface, 'nodad'])
      await ns.run('ip', ['link', 'set', ns.nsInterface, 'up'])
    } catch (error) {
      await ns.cleanup()
      throw error
    }
    return ns
  }

  /** Runs a command inside the namespace; throws CommandError on a non-zero exit. */
  run(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    return mustRun('ip', ['netns', 'exec', this.name, command, ...args], options)
  }

  /** Runs a command inside the namespace and returns its exit code and output, whatever they are. */
  tryRun(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    return runCommand('ip', ['netns', 'exec', this.name, command, ...args], options)
  }

  /** Starts a long-running process inside the namespace; cleanup() kills it. */
  spawn(command: string, args: string[], env: Record<string, string> = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, command, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.processes.add(child)
    child.on('exit', () => this.processes.delete(child))
    return child
  }

  /** Writes a secret to a private scratch file (wg reads keys only from files); undefined in, undefined out. */
  scratchFile(label: string, content: string | undefined): string | undefined {
    if (content === undefined) return undefined
    const path = join(this.scratchDir, label.replace(/[^A-Za-z0-9]/g, '_'))
    writeFileSync(path, content + '\n', { mode: 0o600 })
    return path
  }

  /** Starts wireguard-go on a fresh TUN device inside the namespace and configures keys, peers, addresses and link state. */
  async startWireguardGo(options: WireguardGoOptions): Promise<WireguardGo> {
    const interfaceName = `bwg${process.pid}x${this.index}${String.fromCharCode(97 + this.wireguardCount++)}`.slice(0, 15)
    const privateKey = options.privateKey ?? (await mustRun('wg', ['genkey'])).trim()
    const publicKey = (await mustRun('wg', ['pubkey'], { input: privateKey })).trim()
    this.wireguardInterfaces.push(interfaceName)
    const child = this.spawn('wireguard-go', ['-f', interfaceName], { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'verbose' })
    const instance = new WireguardGo(this, interfaceName, privateKey, publicKey, options.listenPort, child)
    const socket = join(WG_SOCKET_DIR, `${interfaceName}.sock`)
    for (let waited = 0; !existsSync(socket); waited += 20) {
      if (!instance.running || waited > 5000) {
        throw new Error(`wireguard-go ${interfaceName} did not create ${socket}: ${instance.output}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const keyFile = this.scratchFile(`key-${interfaceName}`, privateKey)!
    await instance.wg(['set', interfaceName, 'private-key', keyFile, 'listen-port', String(options.listenPort)])
    for (const peer of options.peers ?? []) await instance.setPeer(peer)
    for (const address of options.addresses) {
      const family = address.includes(':') ? ['-6'] : []
      await this.run('ip', [...family, 'addr', 'add', address, 'dev', interfaceName, ...(family.length ? ['nodad'] : [])])
    }
    if (options.mtu !== undefined) await this.run('ip', ['link', 'set', interfaceName, 'mtu', String(options.mtu)])
    await this.run('ip', ['link', 'set', interfaceName, 'up'])
    return instance
  }

  /** Kills every process started here, removes the namespace (and with it the veth pair) and the scratch files. */
  async cleanup(): Promise<void> {
    if (this.cleanedUp) return
    const exits = [...this.processes].map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())))
    for (const child of this.processes) child.kill('SIGTERM')
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 3000))
    await Promise.race([Promise.all(exits), timeout])
    this.cleanupSync()
  }

  /** The synchronous part of cleanup, also run from process exit hooks where nothing async can happen. */
  cleanupSync(): void {
    if (this.cleanedUp) return
    this.cleanedUp = true
    live.delete(this)
    for (const child of this.processes) child.kill('SIGKILL')
    killNamespaceProcesses(this.name)
    for (const command of [
      ['netns', 'delete', this.name],
      // The veth pair normally dies with the namespace; delete it explicitly in case the namespace never got it.
      ['link', 'delete', this.hostInterface],
    ]) {
      try {
        execFileSync('ip', command, { stdio: 'ignore' })
      } catch {
        // Already gone.
      }
    }
    // A SIGKILLed wireguard-go leaves its control socket behind; `wg show all` would then list a dead interface.
    for (const name of this.wireguardInterfaces) rmSync(join(WG_SOCKET_DIR, `${name}.sock`), { force: true })
    rmSync(this.scratchDir, { recursive: true, force: true })
  }
}
