// The README's examples, run for real: the ```ts readme-node block against a real `burrow relay`
// process, the ```sh readme-cli block through bin/burrow.mjs, and the ```ts readme-browser block
// (and the Node one) through the TypeScript compiler. A README edit that breaks an example fails here.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatKey, parseKey, publicKeyOf } from '../src/crypto/index.ts'
import { Burrow } from '../src/node.ts'
import { type BurrowProcess, spawnBurrow } from './helpers/burrow-process.ts'
import { readmeBlock, replaceOnce } from './helpers/readme-blocks.ts'
import { NetworkNamespace } from './helpers/netns.ts'
import { createAuthKey, startRelayProcess, removeRelayDataDirs, waitFor, type RelayProcess } from './helpers/relay-process.ts'

const ROOT = join(import.meta.dirname, '..')
const README = readFileSync(join(ROOT, 'README.md'), 'utf8')
/** What the Node example says where a reader puts their relay URL and auth key. */
const CONTROL_URL_PLACEHOLDER = "'http://127.0.0.1:8080'"
const AUTH_KEY_PLACEHOLDER = "'bwauth-0123456789abcdef0123456789abcdef0123456789abcdef'"

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
    child.once('error', reject)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** The README's command lines: `\\` continuations joined, `#` comments dropped, split into argv. */
function commandLines(block: string): string[][] {
  return block
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.replace(/\s#.*$/, '').trim())
    .filter((line) => line !== '')
    .map((line) => line.split(/\s+/))
}

/** Replaces the value after `flag` (which must be present) in a README command line. */
function withFlag(argv: string[], flag: string, expected: string, value: string): string[] {
  const index = argv.indexOf(flag)
  if (index < 0 || argv[index + 1] !== expected) throw new Error(`the README line ${argv.join(' ')} should have ${flag} ${expected}`)
  return argv.map((arg, i) => (i === index + 1 ? value : arg))
}

/** A long-running `burrow …` (relay, up) with its JSON-line logs collected, stopped in afterAll. */
function spawnDaemon(argv: string[], env: NodeJS.ProcessEnv): BurrowProcess {
  const daemon = spawnBurrow(argv, env)
  daemons.push(daemon.proc)
  return daemon
}

// Inside the repository, so `import … from 'burrow/node'` resolves through package.json's self-reference.
const workDir = join(ROOT, `.readme-test-${process.pid}`)
const scratch = mkdtempSync(join(tmpdir(), 'burrow-readme-'))
let relay: RelayProcess | undefined
const nodes: Burrow[] = []
const daemons: ChildProcess[] = []
let namespace: NetworkNamespace | undefined

beforeAll(() => {
  mkdirSync(workDir, { recursive: true })
})

afterAll(async () => {
  await Promise.allSettled(nodes.map((node) => node.close()))
  for (const proc of daemons) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  await relay?.stop('SIGKILL')
  await namespace?.cleanup()
  removeRelayDataDirs()
  rmSync(workDir, { recursive: true, force: true })
  rmSync(scratch, { recursive: true, force: true })
})

describe('README.md examples', () => {
  it('npm start prints what the quick start shows, serves the demo and its relay config, and stops on ^C', async () => {
    const sample = readmeBlock('text', 'readme-start-output')
    // The sample with its run-specific parts (ports, key, log path) as wildcards.
    const pattern = sample
      .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      .replace('http://127\\.0\\.0\\.1:5173/', 'http://127\\.0\\.0\\.1:(\\d+)/')
      .replaceAll('http://127\\.0\\.0\\.1:41234', 'http://127\\.0\\.0\\.1:\\d+')
      .replace('http://127\\.0\\.0\\.1:41235', 'http://127\\.0\\.0\\.1:(\\d+)')
      .replaceAll('bwauth-…', 'bwauth-[0-9a-f]{48}')
      .replace('…/\\.data/relay/relay\\.log', '\\S+/relay\\.log')
    const dataDir = join(scratch, 'start-data')
    // npm start is `burrow start`; a free demo port and a temporary data dir keep it off the developer's.
    const start = spawnDaemon(['start', '--port', '0', '--data-dir', dataDir], {})
    let stdout = ''
    start.proc.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    await waitFor(`burrow start to be ready (${start.stderr()})`, () => stdout.includes('Press Ctrl-C to stop.') || start.proc.exitCode !== null, 60_000)
    const match = new RegExp(`^${pattern}$`).exec(stdout)
    expect(match, stdout).not.toBeNull()
    expect(start.stderr()).toContain(`created a reusable dev auth key in ${join(dataDir, 'dev-authkey')}`)
    const demo = `http://127.0.0.1:${match![1]}/`
    const page = await fetch(demo)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('<h1>Burrow</h1>')
    const config = (await (await fetch(new URL('/burrow-demo-config.json', demo))).json()) as { controlURL: string; authKey: string; proxyPort: number }
    expect(stdout).toContain(`relay    ${config.controlURL} `)
    // The demo's tabs get the ephemeral key; the printed one is for nodes that should stay listed.
    const printedKey = /authkey {2}(\S+) /.exec(stdout)![1]!
    expect(config.authKey).toMatch(/^bwauth-[0-9a-f]{48}$/)
    expect(config.authKey).not.toBe(printedKey)
    expect(start.stderr()).toContain(`created a reusable ephemeral dev auth key in ${join(dataDir, 'dev-authkey-ephemeral')}`)
    // The proxy origin serves the Service Worker built from src/proxy, and nothing of the demo.
    expect(config.proxyPort).toBe(Number(match![2]))
    const worker = await fetch(`http://127.0.0.1:${config.proxyPort}/burrow-sw.js`)
    expect(worker.status).toBe(200)
    expect(worker.headers.get('content-type')).toMatch(/^text\/javascript/)
    expect(await worker.text()).toContain('burrow-proxy-serve')
    expect((await fetch(`http://127.0.0.1:${config.proxyPort}/`)).status).toBe(404)
    // The printed Node line joins the network.
    const node = await Burrow.start({ controlURL: config.controlURL, authKey: printedKey, hostname: 'laptop', storage: 'memory' })
    nodes.push(node)
    expect(node.state).toBe('online')
    await Promise.allSettled(nodes.splice(0).map((n) => n.close()))
    start.proc.kill('SIGINT')
    await new Promise((resolve) => (start.proc.exitCode !== null ? resolve(null) : start.proc.once('exit', resolve)))
    expect(start.proc.exitCode, start.stderr()).toBe(0)
  })

  it('the Node API example runs against a real burrow relay, and keeps its identities on a second run', async () => {
    relay = await startRelayProcess()
    const controlURL = new URL(relay.url).origin
    const authKey = createAuthKey(relay.dataDir, '--reusable')
    let example = readmeBlock('ts', 'readme-node')
    expect(example).toContain("from 'burrow/node'")
    example = replaceOnce(example, CONTROL_URL_PLACEHOLDER, JSON.stringify(controlURL))
    example = replaceOnce(example, AUTH_KEY_PLACEHOLDER, JSON.stringify(authKey))
    const file = join(workDir, 'node-example.ts')
    writeFileSync(file, example)
    // The example uses the default state directory; point it at a temporary one.
    const env = { XDG_STATE_HOME: join(scratch, 'state') }

    const first = await run(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, env, timeoutMs: 90_000 })
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    const lines = first.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(5)
    const [, v4, v6] = /^laptop is laptop at (100\.\d+\.\d+\.\d+), (fd[0-9a-f:]+)$/.exec(lines[0]!) ?? []
    expect(v4, lines[0]).toBeDefined()
    expect(v6).toBeDefined()
    expect(lines[1]).toMatch(/^ping server: \d+\.\d ms$/)
    expect(lines[2]).toBe('fetch: 200 hello from server: /readme')
    expect(lines[3]).toBe('tcp echo: echo me')
    expect(lines[4]).toBe('typed error: unknown-host')

    // The README promises the printed output and that a second run keeps both nodes.
    expect(README).toContain('fetch: 200 hello from server: /readme\ntcp echo: echo me\ntyped error: unknown-host')
    const stateFiles = readFileSync(join(scratch, 'state', 'burrow', 'laptop.key'), 'utf8')
    expect(stateFiles.trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/)
    const second = await run(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, env, timeoutMs: 90_000 })
    expect(second.stderr).toBe('')
    expect(second.code).toBe(0)
    expect(second.stdout.split('\n')[0]).toBe(`laptop is laptop at ${v4}, ${v6}`)
    expect(second.stdout).toContain('fetch: 200 hello from server: /readme')
  })

  it('the CLI key and auth key examples work: the public key matches, the auth key admits a node', async () => {
    const block = readmeBlock('sh', 'readme-cli')
    const cwd = join(scratch, 'cli')
    mkdirSync(cwd, { recursive: true })
    // `burrow` in the README is bin/burrow.mjs; the block runs as written, stopping at the first failure.
    const script = `set -e\nburrow() { "${process.execPath}" "${join(ROOT, 'bin/burrow.mjs')}" "$@"; }\n${block}`
    const result = await run('sh', ['-c', script], { cwd, timeoutMs: 60_000 })
    expect(result.code, result.stderr).toBe(0)
    const privateKey = readFileSync(join(cwd, 'node.key'), 'utf8').trim()
    const [publicKey, authKey, ...rest] = result.stdout.trimEnd().split('\n')
    expect(rest).toEqual([])
    expect(publicKey).toBe(formatKey(publicKeyOf(parseKey(privateKey))))
    expect(authKey).toMatch(/^bwauth-[0-9a-f]{48}$/)

    // The auth key was made in ./relay-data: a relay on that data directory accepts it (twice: --reusable).
    const cliRelay = await startRelayProcess([], { dataDir: join(cwd, 'relay-data') })
    try {
      const controlURL = new URL(cliRelay.url).origin
      for (const hostname of ['cli-one', 'cli-two']) {
        const node = await Burrow.start({ controlURL, authKey: authKey!, hostname, storage: 'memory' })
        nodes.push(node)
        expect(node.state).toBe('online')
        expect(node.hostname).toBe(hostname)
      }
    } finally {
      await Promise.allSettled(nodes.splice(0).map((node) => node.close()))
      await cliRelay.stop('SIGKILL')
    }
  })

  it('the relay / authkey / up / status example: tab fetches the served app, another node is refused', async () => {
    const [relayLine, authKeyLine, upLine, statusLine, ...rest] = commandLines(readmeBlock('sh', 'readme-network'))
    expect(rest).toEqual([])
    for (const line of [relayLine, authKeyLine, upLine, statusLine]) expect(line?.[0]).toBe('burrow')
    const dataDir = join(scratch, 'network-relay')
    const env = { XDG_STATE_HOME: join(scratch, 'network-state') }

    let argv = withFlag(relayLine!.slice(1), '--listen', '0.0.0.0:8080', '127.0.0.1:0')
    argv = withFlag(argv, '--data-dir', '/var/lib/burrow/relay', dataDir)
    const relayDaemon = spawnDaemon(argv, env)
    await waitFor(`the relay to listen (${relayDaemon.stderr()})`, () => relayDaemon.logs.some((l) => l.msg === 'listening') || relayDaemon.proc.exitCode !== null, 30_000)
    const listening = relayDaemon.logs.find((l) => l.msg === 'listening')
    expect(listening, relayDaemon.stderr()).toMatchObject({ verifyClients: true })
    const controlURL = new URL(listening!.url as string).origin

    const authKey = execFileSync(process.execPath, ['bin/burrow.mjs', ...withFlag(authKeyLine!.slice(1), '--data-dir', '/var/lib/burrow/relay', dataDir)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim()
    expect(authKey).toMatch(/^bwauth-[0-9a-f]{48}$/)

    const app = createServer((request, response) => response.end(`the app on 3000 got ${request.url}`))
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
    try {
      const appPort = (app.address() as { port: number }).port
      argv = withFlag(upLine!.slice(1), '--control', 'http://relay.example:8080', controlURL)
      argv = withFlag(argv, '--authkey', 'bwauth-…', authKey)
      argv = withFlag(argv, '--serve', '8080=127.0.0.1:3000', `8080=127.0.0.1:${appPort}`)
      const up = spawnDaemon(argv, env)
      await waitFor(`burrow up to join (${up.stderr()})`, () => up.logs.some((l) => l.msg === 'up') || up.proc.exitCode !== null, 30_000)
      expect(
        up.logs.find((l) => l.msg === 'up'),
        up.stderr(),
      ).toMatchObject({ hostname: 'devbox' })

      const tab = await Burrow.start({ controlURL, authKey, hostname: 'tab', storage: 'memory' })
      nodes.push(tab)
      const other = await Burrow.start({ controlURL, authKey, hostname: 'other', storage: 'memory' })
      nodes.push(other)
      const response = await tab.fetch('http://devbox:8080/')
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('the app on 3000 got /')
      await expect(other.fetch('http://devbox:8080/')).rejects.toThrow()
      await waitFor('the denial in the log', () => up.logs.some((l) => l.msg === 'connection denied'))

      let table = ''
      await waitFor('burrow status to list tab', () => {
        table = execFileSync(process.execPath, ['bin/burrow.mjs', ...statusLine!.slice(1)], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' })
        return /\btab\b/.test(table)
      })
      expect(table).toMatch(/\bdevbox\b/)
      expect(table).toMatch(/\bother\b/)

      await Promise.allSettled(nodes.splice(0).map((node) => node.close()))
      up.proc.kill('SIGTERM')
      await new Promise((resolve) => (up.proc.exitCode !== null ? resolve(null) : up.proc.once('exit', resolve)))
      expect(up.proc.exitCode).toBe(0)
    } finally {
      await new Promise((resolve) => app.close(resolve))
      relayDaemon.proc.kill('SIGTERM')
    }
  })

  it('the wg-quick example pings and fetches through wireguard-go (a standard WireGuard peer)', async () => {
    const cwd = join(scratch, 'wireguard')
    mkdirSync(cwd, { recursive: true })
    const burrowKey = execFileSync(process.execPath, ['bin/burrow.mjs', 'keygen'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const burrowPublic = formatKey(publicKeyOf(parseKey(burrowKey)))
    namespace = await NetworkNamespace.create()
    // The other side, as the README describes it: 10.77.0.1 / fd77::1, Burrow's key with 10.77.0.2/32, fd77::2/128.
    const wg = await namespace.startWireguardGo({
      listenPort: 51820,
      addresses: ['10.77.0.1/24', 'fd77::1/64'],
      peers: [{ publicKey: burrowPublic, allowedIps: ['10.77.0.2/32', 'fd77::2/128'] }],
    })
    const site = join(cwd, 'site')
    mkdirSync(site)
    writeFileSync(join(site, 'index.html'), '<h1>served by the WireGuard peer</h1>\n')
    const web = namespace.spawn('python3', ['-m', 'http.server', '8000', '--bind', '::', '--directory', site])
    daemons.push(web)
    for (let i = 0; i < 100; i++) {
      const probe = await namespace.tryRun('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://10.77.0.1:8000/', '--max-time', '5'])
      if (probe.stdout === '200') break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }

    let config = readmeBlock('ini', 'readme-wg-quick')
    config = replaceOnce(config, '<contents of node.key>', burrowKey)
    config = replaceOnce(config, "<the WireGuard peer's public key>", wg.publicKey)
    config = replaceOnce(config, '192.0.2.10:51820', `${namespace.nsAddress}:51820`)
    writeFileSync(join(cwd, 'burrow.conf'), config)

    const block = readmeBlock('sh', 'readme-wireguard')
    const script = `set -e\nburrow() { "${process.execPath}" "${join(ROOT, 'bin/burrow.mjs')}" "$@"; }\n${block}`
    const result = await run('sh', ['-c', script], { cwd, timeoutMs: 90_000 })
    expect(result.code, `${result.stdout}\n${result.stderr}\n${wg.output}`).toBe(0)
    expect(result.stdout).toMatch(/^PING 10\.77\.0\.1 from 10\.77\.0\.2 through WireGuard/m)
    expect(result.stdout).toMatch(/bytes from 10\.77\.0\.1: icmp_seq=\d+ ttl=\d+ time=/)
    expect(result.stdout).toMatch(/^PING fd77::1 from fd77::2 through WireGuard/m)
    expect(result.stdout).toMatch(/bytes from fd77::1: icmp_seq=\d+ ttl=\d+ time=/)
    expect(result.stderr).toMatch(/200/)
    expect(readFileSync(join(cwd, 'index.html'), 'utf8')).toBe('<h1>served by the WireGuard peer</h1>\n')
  })

  it('names the Tailscale version the interop tests pin', () => {
    const pinned = /const TAILSCALE_VERSION = '([^']+)'/.exec(readFileSync(join(ROOT, 'test/helpers/tailscale-go.ts'), 'utf8'))?.[1]
    expect(pinned).toMatch(/^v\d+\.\d+\.\d+$/)
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(`Tailscale pinned to ${pinned}`)
  })

  it('the browser and Node examples typecheck against the package exports', async () => {
    const browser = readmeBlock('ts', 'readme-browser')
    expect(browser).toContain("from 'burrow'")
    const dir = join(workDir, 'typecheck')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'browser-example.ts'), `${browser}\nexport {}\n`)
    writeFileSync(join(dir, 'node-example.ts'), `${readmeBlock('ts', 'readme-node')}\nexport {}\n`)
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: '../../tsconfig.json', include: ['browser-example.ts', 'node-example.ts'] }, null, 2))
    const result = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', dir], { cwd: ROOT, timeoutMs: 120_000 })
    // The whole program is checked (the examples import src/); only errors in the examples are ours to
    // judge here — the rest of the tree is `npm test`'s typecheck step.
    const exampleErrors = (result.stdout + result.stderr).split('\n').filter((line) => /(browser|node)-example\.ts\(\d+,\d+\): error/.test(line))
    expect(exampleErrors).toEqual([])
    expect(result.stdout + result.stderr, 'tsc did not run').not.toMatch(/error TS5\d\d\d|Cannot find|ENOENT/)
    expect([0, 2]).toContain(result.code)
  })
})
