// Tailscale's own programs as interop peers, built from Tailscale's source at one pinned release
// with the Go toolchain and cached under ~/.cache/burrow/go-bin/<version> (Go is needed only to
// build them, never at run time): `derper`, and test/go/derpclient (Tailscale's derphttp client).
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { formatNodeKey } from '../../src/crypto/index.ts'
import { waitFor } from './relay-process.ts'
import { freePort } from './ports.ts'

/** The Tailscale release the derper binary and test/go/derpclient/go.mod are pinned to. */
export const TAILSCALE_VERSION = 'v1.102.5'
const ROOT = join(import.meta.dirname, '..', '..')
const GO_CLIENT_DIR = join(ROOT, 'test', 'go', 'derpclient')
export const GO_BIN_DIR = join(homedir(), '.cache', 'burrow', 'go-bin', TAILSCALE_VERSION)
export const hasGo = spawnSync('go', ['version']).status === 0
const goEnv = { ...process.env, GOTOOLCHAIN: 'local', GOBIN: GO_BIN_DIR }

export function ensureDerper(): string {
  const binary = join(GO_BIN_DIR, 'derper')
  if (!existsSync(binary)) {
    mkdirSync(GO_BIN_DIR, { recursive: true })
    execFileSync('go', ['install', `tailscale.com/cmd/derper@${TAILSCALE_VERSION}`], { env: goEnv, stdio: 'inherit', timeout: 600_000 })
  }
  return binary
}

export function ensureGoDerpClient(): string {
  const goMod = readFileSync(join(GO_CLIENT_DIR, 'go.mod'), 'utf8')
  if (!goMod.includes(`tailscale.com ${TAILSCALE_VERSION}`)) throw new Error(`test/go/derpclient/go.mod must pin tailscale.com ${TAILSCALE_VERSION}`)
  const digest = createHash('sha256')
  for (const f of ['main.go', 'go.mod', 'go.sum']) digest.update(readFileSync(join(GO_CLIENT_DIR, f)))
  const binary = join(GO_BIN_DIR, `derpclient-${digest.digest('hex').slice(0, 16)}`)
  if (!existsSync(binary)) {
    mkdirSync(GO_BIN_DIR, { recursive: true })
    execFileSync('go', ['build', '-o', binary, '.'], { cwd: GO_CLIENT_DIR, env: goEnv, stdio: 'inherit', timeout: 280_000 })
  }
  return binary
}

export { freePort }

export interface Derper {
  child: ChildProcess
  port: number
  /** `http://127.0.0.1:<port>/derp` */
  url: string
  stderr(): string
  stop(): void
}

/**
 * Starts Tailscale's derper on 127.0.0.1 (plain HTTP, no STUN), with `extraArgs` (e.g. mesh flags)
 * and `env` added, and waits until it serves.
 */
export async function startDerper(extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Derper> {
  const derper = ensureDerper()
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'burrow-derper-'))
  const child = spawn(derper, ['-a', `127.0.0.1:${port}`, '-http-port', '-1', '-stun=false', '-c', join(dir, 'derper.json'), '-certdir', join(dir, 'certs'), ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  await waitFor(`derper to serve (${stderr})`, () => child.exitCode === null && stderr.includes('derper: serving'), 30_000).catch(async () => {
    // Older releases log differently; fall back to probing.
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline) {
      if (
        await fetch(`http://127.0.0.1:${port}/derp/probe`).then(
          (r) => r.ok,
          () => false,
        )
      )
        return
      await new Promise((r) => setTimeout(r, 100))
    }
    stop()
    throw new Error(`derper did not start: ${stderr}`)
  })
  return { child, port, url: `http://127.0.0.1:${port}/derp`, stderr: () => stderr, stop }
}

export interface GoDerpClient {
  child: ChildProcess
  key: Uint8Array
  lines: string[]
  stderr(): string
}

/**
 * Runs the Go derphttp client against `url`: it logs in, learns `peer`, sends it `count` numbered
 * packets ("from-go N") and echoes back ("echo:…") every packet it receives from `peer`.
 */
export async function runGoDerpClient(binary: string, url: string, peer: Uint8Array, count: number, children: ChildProcess[]): Promise<GoDerpClient> {
  const child = spawn(binary, ['-url', url, '-count', String(count)], { stdio: ['pipe', 'pipe', 'pipe'] })
  children.push(child)
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const lines: string[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line))
  await waitFor(`the Go client to log in (${stderr})`, () => lines.some((l) => l.startsWith('KEY ')) || child.exitCode !== null)
  const keyLine = lines.find((l) => l.startsWith('KEY '))
  if (!keyLine) throw new Error(`Go client failed: ${stderr}`)
  child.stdin!.write(`PEER ${formatNodeKey(peer)}\n`)
  const hex = keyLine.slice('KEY nodekey:'.length)
  return { child, key: Uint8Array.from(Buffer.from(hex, 'hex')), lines, stderr: () => stderr }
}
