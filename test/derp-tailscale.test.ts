// Interop with Tailscale's own code: Burrow's client through Tailscale's derper, and Tailscale's
// derphttp client (test/go/derpclient) through `burrow relay`. Go is only the interop peer.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { formatNodeKey, generateKeyPair, type KeyPair } from '../src/crypto/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { httpUpgradeDialer, nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from './helpers/relay-process.ts'

/** The Tailscale release both the derper binary and test/go/derpclient/go.mod are pinned to. */
const TAILSCALE_VERSION = 'v1.102.5'
const ROOT = join(import.meta.dirname, '..')
const GO_CLIENT_DIR = join(ROOT, 'test', 'go', 'derpclient')
const BIN_DIR = join(homedir(), '.cache', 'burrow', 'go-bin', TAILSCALE_VERSION)
const hasGo = spawnSync('go', ['version']).status === 0
const goEnv = { ...process.env, GOTOOLCHAIN: 'local', GOBIN: BIN_DIR }

function ensureDerper(): string {
  const binary = join(BIN_DIR, 'derper')
  if (!existsSync(binary)) {
    mkdirSync(BIN_DIR, { recursive: true })
    execFileSync('go', ['install', `tailscale.com/cmd/derper@${TAILSCALE_VERSION}`], { env: goEnv, stdio: 'inherit', timeout: 600_000 })
  }
  return binary
}

function ensureGoClient(): string {
  const goMod = readFileSync(join(GO_CLIENT_DIR, 'go.mod'), 'utf8')
  if (!goMod.includes(`tailscale.com ${TAILSCALE_VERSION}`)) throw new Error(`test/go/derpclient/go.mod must pin tailscale.com ${TAILSCALE_VERSION}`)
  const digest = createHash('sha256')
  for (const f of ['main.go', 'go.mod', 'go.sum']) digest.update(readFileSync(join(GO_CLIENT_DIR, f)))
  const binary = join(BIN_DIR, `derpclient-${digest.digest('hex').slice(0, 16)}`)
  if (!existsSync(binary)) {
    mkdirSync(BIN_DIR, { recursive: true })
    execFileSync('go', ['build', '-o', binary, '.'], { cwd: GO_CLIENT_DIR, env: goEnv, stdio: 'inherit', timeout: 280_000 })
  }
  return binary
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

const children: ChildProcess[] = []
const connections: DerpConnection[] = []

afterEach(() => {
  for (const c of connections.splice(0)) c.close()
})

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
})

function connect(url: string, keys: KeyPair, transport: 'ws' | 'http'): DerpConnection {
  const c = new DerpConnection({ url, privateKey: keys.privateKey, dial: transport === 'ws' ? nodeWebSocketDialer() : httpUpgradeDialer() })
  connections.push(c.start())
  return c
}

/** Runs the Go derphttp client against `url`, introduces it to `peer`, and returns its key and output. */
async function runGoClient(binary: string, url: string, peer: Uint8Array, count: number) {
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

async function exchangeWithGo(goBinary: string, url: string, transport: 'ws' | 'http'): Promise<void> {
  const me = generateKeyPair()
  const burrow = connect(url, me, transport)
  await waitFor('Burrow to log in', () => burrow.isConnected)
  const fromGo: string[] = []
  const echoes: string[] = []
  const decoder = new TextDecoder()
  burrow.on('packet', (_source, packet) => {
    const text = decoder.decode(packet)
    if (text.startsWith('echo:')) echoes.push(text.slice(5))
    else fromGo.push(text)
  })
  const go = await runGoClient(goBinary, url, me.publicKey, 300)
  await waitFor('packets from the Go client', () => fromGo.length === 300)
  expect(fromGo).toEqual(Array.from({ length: 300 }, (_, i) => `from-go ${i}`))
  // Tailscale's relay queues 32 packets per client: keep fewer in flight.
  for (let i = 0; i < 300; i++) {
    burrow.send(go.key, new TextEncoder().encode(`burrow ${i}`))
    if (i % 16 === 15) await waitFor('echoes', () => echoes.length === i + 1)
  }
  await waitFor('echoes from the Go client', () => echoes.length === 300)
  expect(echoes).toEqual(Array.from({ length: 300 }, (_, i) => `burrow ${i}`))
  go.child.kill('SIGKILL')
}

// Skipped without a Go toolchain: the derper and test/go/derpclient are built from Tailscale's source at TAILSCALE_VERSION.
describe.skipIf(!hasGo)(`interop with Tailscale ${TAILSCALE_VERSION}`, () => {
  let derperUrl = ''
  let goClient = ''
  let relay: RelayProcess | undefined
  let derperDir = ''

  beforeAll(async () => {
    const derper = ensureDerper()
    goClient = ensureGoClient()
    const port = await freePort()
    const dir = (derperDir = mkdtempSync(join(tmpdir(), 'burrow-derper-')))
    const child = spawn(derper, ['-a', `127.0.0.1:${port}`, '-http-port', '-1', '-stun=false', '-c', join(dir, 'derper.json'), '-certdir', join(dir, 'certs')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    children.push(child)
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    derperUrl = `http://127.0.0.1:${port}/derp`
    await waitFor(`derper to serve (${stderr})`, () => child.exitCode === null && stderr.includes('derper: serving'), 30_000).catch(async () => {
      // Older releases log differently; fall back to probing.
      const deadline = Date.now() + 20_000
      while (Date.now() < deadline) {
        if (await fetch(`http://127.0.0.1:${port}/derp/probe`).then((r) => r.ok, () => false)) return
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error(`derper did not start: ${stderr}`)
    })
    relay = await startRelayProcess()
  }, 900_000) // a fresh machine downloads and compiles Tailscale first (cached afterwards)

  afterAll(async () => {
    await relay?.stop('SIGKILL')
    removeRelayDataDirs()
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
    if (derperDir) rmSync(derperDir, { recursive: true, force: true })
  })

  it('Burrow clients log in to derper over WebSocket and Upgrade: DERP and exchange packets', async () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    const ca = connect(derperUrl, a, 'ws')
    const cb = connect(derperUrl, b, 'http')
    await waitFor('logins to derper', () => ca.isConnected && cb.isConnected)
    const got: number[] = []
    cb.on('packet', (source, packet) => {
      expect(formatNodeKey(source)).toBe(formatNodeKey(a.publicKey))
      got.push(new DataView(packet.buffer, packet.byteOffset).getUint32(0))
    })
    const back: number[] = []
    ca.on('packet', (_s, packet) => back.push(packet.length))
    for (let i = 0; i < 2000; i++) {
      const p = new Uint8Array(1420)
      new DataView(p.buffer).setUint32(0, i)
      ca.send(b.publicKey, p)
      cb.send(a.publicKey, new Uint8Array(1 + (i % 100)))
      if (i % 16 === 15) await waitFor('delivery', () => got.length === i + 1 && back.length === i + 1)
    }
    expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => i))
    const pongs: Uint8Array[] = []
    ca.on('pong', (data) => pongs.push(data))
    ca.ping(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))
    await waitFor('derper to answer our ping', () => pongs.length === 1)
    expect(pongs[0]).toEqual(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))
  })

  it('Burrow learns PeerGone from derper when a peer that sent to it leaves', async () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    const ca = connect(derperUrl, a, 'ws')
    const cb = connect(derperUrl, b, 'ws')
    await waitFor('logins', () => ca.isConnected && cb.isConnected)
    let arrived = 0
    ca.on('packet', () => arrived++)
    cb.send(a.publicKey, new Uint8Array([1]))
    await waitFor('the packet', () => arrived === 1)
    const gone: Array<[string, number]> = []
    ca.on('peer-gone', (key, reason) => gone.push([formatNodeKey(key), reason]))
    cb.close()
    await waitFor('PeerGone', () => gone.length > 0)
    expect(gone[0]).toEqual([formatNodeKey(b.publicKey), 0])
  })

  it("Tailscale's derphttp client exchanges packets with a Burrow client through burrow relay", async () => {
    await exchangeWithGo(goClient, relay!.url, 'ws')
  })

  it("Tailscale's derphttp client exchanges packets with a Burrow client through derper (checks the Go peer itself)", async () => {
    await exchangeWithGo(goClient, derperUrl, 'http')
  })
})
