// README.md's "Joining a tailnet (Headscale)" examples, run for real against a Headscale tailnet
// (test/helpers/tailnet.ts: Headscale v0.29.2, derper, a tailscaled node `alpha` serving
// "hello from alpha" on port 8000): the ```ts readme-tailnet block through tsx, and the
// ```sh readme-tailnet-up line as a `burrow up` that alpha then fetches from through its SOCKS5
// proxy. The test fills in the control URL and key and adds the plain-HTTP DERP option (the
// test tailnet's DERP server has no TLS). A README edit that breaks an example fails here.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BurrowProcess, spawnBurrow } from './helpers/burrow-process.ts'
import { readmeBlock, replaceOnce } from './helpers/readme-blocks.ts'
import { hasGo, Tailnet, type TailscaledNode, waitUntil } from './helpers/tailnet.ts'

const isRoot = process.getuid?.() === 0
const ROOT = join(import.meta.dirname, '..')

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
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

describe.skipIf(!hasGo || !isRoot)('README.md: joining a tailnet (Headscale)', () => {
  let tailnet: Tailnet | undefined
  let alpha: TailscaledNode
  let up: BurrowProcess | undefined
  let app: Server | undefined
  // Inside the repository, so `import … from 'burrow/node'` resolves through package.json's self-reference.
  const workDir = join(ROOT, `.readme-tailnet-test-${process.pid}`)
  const scratch = mkdtempSync(join(tmpdir(), 'burrow-readme-tailnet-'))

  beforeAll(async () => {
    mkdirSync(workDir, { recursive: true })
    tailnet = await Tailnet.start({ derp: 'derper' })
    alpha = await tailnet.addNode({ hostname: 'alpha', socks5Port: 1080 })
    const site = join(tailnet.dir, 'site')
    mkdirSync(site)
    writeFileSync(join(site, 'index.html'), 'hello from alpha\n')
    // Userspace tailscaled forwards connections to its tailnet address to the same port on its own 127.0.0.1.
    tailnet.serveFiles(8000, site)
  }, 900_000)

  afterAll(async () => {
    if (up && up.proc.exitCode === null && up.proc.signalCode === null) {
      up.proc.kill('SIGTERM')
      await up.exited
    }
    await new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)))
    await tailnet?.stop()
    rmSync(workDir, { recursive: true, force: true })
    rmSync(scratch, { recursive: true, force: true })
  })

  it('the Node example joins with a pre-auth key, fetches from alpha and pings it by MagicDNS name', async () => {
    let example = readmeBlock('ts', 'readme-tailnet')
    expect(example).toContain("from 'burrow/node'")
    example = replaceOnce(example, "'https://headscale.example.com'", JSON.stringify(tailnet!.controlURL))
    example = replaceOnce(example, "'hskey-auth-0123456789ab-0123456789abcdef0123456789abcdef'", JSON.stringify(await tailnet!.createAuthKey()))
    example = replaceOnce(example, "storage: 'memory',", "storage: 'memory', derpOverHTTP: true,")
    const file = join(workDir, 'tailnet-example.ts')
    writeFileSync(file, example)
    const result = await run(process.execPath, ['--import', 'tsx', file], { timeoutMs: 120_000 })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const lines = result.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(/^joined as burrow-laptop at 100\.\d+\.\d+\.\d+$/)
    expect(lines[1]).toBe(`alpha is at ${await alpha.ipv4()}`)
    expect(lines[2]).toBe('fetch: 200 hello from alpha')
    expect(lines[3]).toMatch(/^ping alpha: \d+\.\d ms$/)
  })

  it('the burrow up line joins the tailnet and tailscaled reaches the bridged service by MagicDNS name', async () => {
    const line = readmeBlock('sh', 'readme-tailnet-up').trim().split(/\s+/)
    expect(line[0]).toBe('burrow')
    const swap = (argv: string[], flag: string, expected: string, value: string): string[] => {
      const index = argv.indexOf(flag)
      if (index < 0 || argv[index + 1] !== expected) throw new Error(`the README line should have ${flag} ${expected}: ${argv.join(' ')}`)
      return argv.map((arg, i) => (i === index + 1 ? value : arg))
    }
    app = createServer((request, response) => response.end(`the app on 3000 got ${request.url}`))
    await new Promise<void>((resolve) => app!.listen(0, '127.0.0.1', resolve))
    const appPort = (app.address() as { port: number }).port
    let argv = swap(line.slice(1), '--control', 'https://headscale.example.com', tailnet!.controlURL)
    argv = swap(argv, '--authkey', 'hskey-auth-…', await tailnet!.createAuthKey())
    argv = swap(argv, '--serve', '8080=127.0.0.1:3000', `8080=127.0.0.1:${appPort}`)
    up = spawnBurrow([...argv, '--derp-over-http', '--no-direct'], { XDG_STATE_HOME: join(scratch, 'state') })
    await waitUntil(`burrow up to join (${up.stderr()})`, () => up!.logs.some((l) => l.msg === 'up') || up!.proc.exitCode !== null, 120_000)
    expect(
      up.logs.find((l) => l.msg === 'up'),
      up.stderr(),
    ).toMatchObject({ hostname: 'devbox' })
    await waitUntil('alpha to see devbox', () => alpha.peer('devbox'), 120_000)
    const body = 'the app on 3000 got /'
    const got = await waitUntil('the bridged app through alpha', () => alpha.fetchThroughProxy(`http://devbox.${tailnet!.baseDomain}:8080/`, 'socks5'), 120_000)
    expect(got).toEqual({ bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') })
  })
})
