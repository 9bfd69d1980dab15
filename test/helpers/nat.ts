// A small internet with two home networks behind Linux NAT routers, all in test-made network
// namespaces (needs root, iproute2, iptables, conntrack):
//
//   hostA 192.168.1.2 ── routerA (MASQUERADE) 198.51.100.2 ─┐
//                                                          inet: 203.0.113.1 (relay, STUN, TURN)
//   hostB 192.168.2.2 ── routerB (MASQUERADE) 198.51.100.6 ─┘
//
// Addresses are the RFC 5737 documentation ranges and RFC 1918 LANs, and exist only inside these
// namespaces. `inet` routes between the two WAN links and knows no route to either LAN, so a host
// candidate of one side never reaches the other: only what the NATs map can. Plain MASQUERADE
// keeps one mapping per inside socket (endpoint-independent, what STUN-learnt server-reflexive
// candidates need); `--random-fully` picks a new random port per destination, a symmetric NAT.
import type { ChildProcess } from 'node:child_process'
import { execFileSync, spawn } from 'node:child_process'
import { type CommandResult, mustRun, runCommand } from './netns.ts'

export const INTERNET_ADDRESS = '203.0.113.1'

export class LabNamespace {
  readonly processes = new Set<ChildProcess>()
  constructor(readonly name: string) {}

  run(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    return mustRun('ip', ['netns', 'exec', this.name, command, ...args], options)
  }

  tryRun(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    return runCommand('ip', ['netns', 'exec', this.name, command, ...args], options)
  }

  /** A long-running process inside the namespace; the lab's cleanup kills it. */
  spawn(command: string, args: string[], options: { env?: Record<string, string>; cwd?: string; stdin?: 'pipe' } = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, command, ...args], {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    })
    this.processes.add(child)
    child.on('exit', () => this.processes.delete(child))
    return child
  }
}

export interface NatSide {
  router: LabNamespace
  host: LabNamespace
  /** The router's WAN address: what the world (and STUN) sees the host as. */
  wanAddress: string
  lanAddress: string
  symmetric: boolean
}

export interface NatLabOptions {
  /** `MASQUERADE --random-fully` on that side's router (a symmetric NAT). */
  symmetricA?: boolean
  symmetricB?: boolean
}

const labs = new Set<NatLab>()
let hooksInstalled = false
let counter = 0

function installExitHooks(): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.once('exit', () => {
    for (const lab of labs) lab.cleanupSync()
  })
}

export class NatLab {
  readonly inet: LabNamespace
  readonly a: NatSide
  readonly b: NatSide
  private readonly namespaces: LabNamespace[]
  private cleanedUp = false

  private constructor(prefix: string, options: NatLabOptions) {
    // `bw-<pid>-<n>` so netns.ts sweeps what a SIGKILLed run leaves behind.
    const ns = (k: number) => new LabNamespace(`${prefix}${k}`)
    this.inet = ns(0)
    this.a = { router: ns(1), host: ns(2), wanAddress: '198.51.100.2', lanAddress: '192.168.1.2', symmetric: options.symmetricA === true }
    this.b = { router: ns(3), host: ns(4), wanAddress: '198.51.100.6', lanAddress: '192.168.2.2', symmetric: options.symmetricB === true }
    this.namespaces = [this.inet, this.a.router, this.a.host, this.b.router, this.b.host]
  }

  static async create(options: NatLabOptions = {}): Promise<NatLab> {
    installExitHooks()
    const lab = new NatLab(`bw-${process.pid}-${900 + 10 * counter++}`, options)
    labs.add(lab)
    try {
      await lab.build()
    } catch (error) {
      await lab.cleanup()
      throw error
    }
    return lab
  }

  private async build(): Promise<void> {
    for (const ns of this.namespaces) {
      await mustRun('ip', ['netns', 'add', ns.name])
      await ns.run('ip', ['link', 'set', 'lo', 'up'])
    }
    const link = async (left: LabNamespace, leftIf: string, leftAddr: string, right: LabNamespace, rightIf: string, rightAddr: string) => {
      // Created inside `left` and moved: interface names only need to be unique per namespace then.
      await left.run('ip', ['link', 'add', leftIf, 'type', 'veth', 'peer', 'name', rightIf, 'netns', right.name])
      await left.run('ip', ['addr', 'add', leftAddr, 'dev', leftIf])
      await right.run('ip', ['addr', 'add', rightAddr, 'dev', rightIf])
      await left.run('ip', ['link', 'set', leftIf, 'up'])
      await right.run('ip', ['link', 'set', rightIf, 'up'])
    }
    await this.inet.run('ip', ['addr', 'add', `${INTERNET_ADDRESS}/32`, 'dev', 'lo'])
    await this.inet.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
    await link(this.inet, 'wana', '198.51.100.1/30', this.a.router, 'wan', `${this.a.wanAddress}/30`)
    await link(this.inet, 'wanb', '198.51.100.5/30', this.b.router, 'wan', `${this.b.wanAddress}/30`)
    for (const [side, lan, gateway] of [
      [this.a, '192.168.1', '198.51.100.1'],
      [this.b, '192.168.2', '198.51.100.5'],
    ] as const) {
      await link(side.router, 'lan', `${lan}.1/24`, side.host, 'eth0', `${side.lanAddress}/24`)
      await side.router.run('ip', ['route', 'add', 'default', 'via', gateway])
      await side.router.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
      await side.router.run('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE', ...(side.symmetric ? ['--random-fully'] : [])])
      // The firewall every home router has: nothing from the WAN unless it answers something sent
      // out. It also matters to NAT traversal: an unsolicited packet accepted by the router's own
      // stack leaves a confirmed conntrack entry whose reply tuple then clashes with the mapping
      // a LAN host's answer needs, so the router picks another port (symmetric by accident).
      // Dropped in the filter table, the packet's entry is never confirmed.
      for (const chain of ['INPUT', 'FORWARD']) {
        await side.router.run('iptables', ['-A', chain, '-i', 'wan', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'])
        await side.router.run('iptables', ['-A', chain, '-i', 'wan', '-j', 'DROP'])
      }
      // Chromium gathers candidates only on the interface of the default route.
      await side.host.run('ip', ['route', 'add', 'default', 'via', `${lan}.1`])
    }
  }

  /** Forgets every NAT mapping of one side (`conntrack -F`): the next packet out gets a fresh one, packets in find none. */
  async flushNat(side: NatSide): Promise<void> {
    await side.router.run('conntrack', ['-F'], { timeoutMs: 10_000 }).catch(async (error: unknown) => {
      // conntrack exits 1 when the table was already empty.
      const result = await side.router.tryRun('conntrack', ['-L'])
      if (result.code !== 0) throw error
    })
  }

  /** Drops every UDP packet the router would forward (a NAT that lost its mappings and hands out none). */
  async blockUdp(side: NatSide, blocked: boolean): Promise<void> {
    await side.router.run('iptables', [blocked ? '-I' : '-D', 'FORWARD', '-p', 'udp', '-j', 'DROP'])
  }

  async cleanup(): Promise<void> {
    if (this.cleanedUp) return
    const all = this.namespaces.flatMap((ns) => [...ns.processes])
    const exits = all.map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())))
    for (const child of all) child.kill('SIGTERM')
    await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 3000))])
    this.cleanupSync()
  }

  cleanupSync(): void {
    if (this.cleanedUp) return
    this.cleanedUp = true
    labs.delete(this)
    for (const ns of this.namespaces) {
      for (const child of ns.processes) child.kill('SIGKILL')
      try {
        for (const pid of execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL')
          } catch {
            // Already gone.
          }
        }
      } catch {
        // Namespace never made.
      }
      try {
        execFileSync('ip', ['netns', 'delete', ns.name], { stdio: 'ignore' })
      } catch {
        // Already gone.
      }
    }
  }
}
