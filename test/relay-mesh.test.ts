// The relay mesh between real processes: two `burrow relay`s meshed with each other, and a
// `burrow relay` meshed with Tailscale's own derper (same mesh key). Clients on different relays
// of the region exchange packets, byte-exact and in order; Tailscale's derphttp client is the
// peer on derper's side.
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair, type KeyPair, randomBytes, toHex } from '../src/crypto/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { httpUpgradeDialer, nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from './helpers/relay-process.ts'
import { type Derper, ensureGoDerpClient, freePort, hasGo, runGoDerpClient, startDerper } from './helpers/tailscale-go.ts'

const MESH_KEY = toHex(randomBytes(32))
const scratch = mkdtempSync(join(tmpdir(), 'burrow-mesh-'))
const keyFile = join(scratch, 'mesh.key')
writeFileSync(keyFile, `${MESH_KEY}\n`)

const connections: DerpConnection[] = []
const children: ChildProcess[] = []
const relays: RelayProcess[] = []

afterEach(() => {
  for (const c of connections.splice(0)) c.close()
})

afterAll(async () => {
  for (const relay of relays) await relay.stop('SIGKILL')
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  removeRelayDataDirs()
  rmSync(scratch, { recursive: true, force: true })
})

function connect(url: string, keys: KeyPair, options: { meshKey?: string; watchConnections?: boolean; transport?: 'ws' | 'http' } = {}): DerpConnection {
  const { transport = 'ws', ...mesh } = options
  const c = new DerpConnection({ url, privateKey: keys.privateKey, dial: transport === 'ws' ? nodeWebSocketDialer() : httpUpgradeDialer(), ...mesh })
  connections.push(c.start())
  return c
}

async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const metric = async (relay: RelayProcess, name: string) => {
  const text = await (await fetch(`http://127.0.0.1:${relay.port}/metrics`)).text()
  return Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
}

describe('two burrow relays meshed in one region', () => {
  let a: RelayProcess
  let b: RelayProcess

  beforeAll(async () => {
    const [portA, portB] = [await freePort(), await freePort()]
    a = await startRelayProcess(['--mesh-key', MESH_KEY, '--mesh-with', `127.0.0.1:${portB}`], { port: portA })
    b = await startRelayProcess(['--mesh-key-file', keyFile, '--mesh-with', `127.0.0.1:${portA},127.0.0.1:${portB}`], { port: portB })
    relays.push(a, b)
    await waitFor('both mesh links', () => [a, b].every((r) => r.logs.some((l) => l.msg === 'mesh peer connected')), 20_000)
  })

  it('a client on A and a client on B exchange 500 packets each way, byte-exact and in order', async () => {
    const x = generateKeyPair()
    const y = generateKeyPair()
    const onA = connect(a.url, x)
    const onB = connect(b.url, y, { transport: 'http' })
    await waitFor('logins', () => onA.isConnected && onB.isConnected)
    // The other relay learns of each client through its watch of the mesh link.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const atB: number[] = []
    const atA: number[] = []
    onB.on('packet', (_s, p) => atB.push(new DataView(p.buffer, p.byteOffset).getUint32(0)))
    onA.on('packet', (_s, p) => atA.push(new DataView(p.buffer, p.byteOffset).getUint32(0)))
    for (let i = 0; i < 500; i++) {
      const big = new Uint8Array(1400)
      new DataView(big.buffer).setUint32(0, i)
      const small = new Uint8Array(8)
      new DataView(small.buffer).setUint32(0, i)
      onA.send(y.publicKey, big)
      onB.send(x.publicKey, small)
      if (i % 32 === 31) await waitFor('delivery through the mesh', () => atB.length === i + 1 && atA.length === i + 1)
    }
    await waitFor('all of it', () => atB.length === 500 && atA.length === 500)
    expect(atB).toEqual(Array.from({ length: 500 }, (_, i) => i))
    expect(atA).toEqual(Array.from({ length: 500 }, (_, i) => i))
    expect(await metric(a, 'burrow_relay_mesh_packets_forwarded_total{direction="out"}')).toBeGreaterThanOrEqual(500)
    expect(await metric(b, 'burrow_relay_mesh_packets_forwarded_total{direction="in"}')).toBeGreaterThanOrEqual(500)
    expect(b.logs.some((l) => l.msg === 'mesh peer is this relay itself; not meshing with it')).toBe(true)
  })

  it('a client that leaves B shows up as PeerGone at its correspondent on A', async () => {
    const x = generateKeyPair()
    const y = generateKeyPair()
    const onA = connect(a.url, x)
    const onB = connect(b.url, y)
    await waitFor('logins', () => onA.isConnected && onB.isConnected)
    await new Promise((resolve) => setTimeout(resolve, 200))
    let arrived = 0
    onB.on('packet', () => arrived++)
    onA.send(y.publicKey, new Uint8Array([1]))
    await waitFor('the packet', () => arrived === 1)
    const gone: Uint8Array[] = []
    onA.on('peer-gone', (key) => gone.push(key))
    onB.close()
    await waitFor('PeerGone at A', () => gone.length > 0)
    expect(gone[0]).toEqual(y.publicKey)
  })

  it('mesh frames from a client with a wrong mesh key are refused and that client closed; others keep working', async () => {
    const intruder = connect(a.url, generateKeyPair(), { meshKey: 'ee'.repeat(32), watchConnections: true })
    const reasons: string[] = []
    intruder.on('disconnected', (reason) => reasons.push(reason))
    await waitFor('the intruder to be dropped', () => reasons.length > 0)
    expect(a.logs.some((l) => l.msg === 'connection closed' && String(l.reason).includes('only for relay mesh peers'))).toBe(true)
    intruder.close()
    const x = generateKeyPair()
    const y = generateKeyPair()
    const onA = connect(a.url, x)
    const onB = connect(b.url, y)
    await waitFor('logins', () => onA.isConnected && onB.isConnected)
    await new Promise((resolve) => setTimeout(resolve, 200))
    let got = 0
    onB.on('packet', () => got++)
    onA.send(y.publicKey, new Uint8Array([7]))
    await waitFor('a packet through the mesh after the intruder', () => got === 1)
  })

  it('refuses --mesh-with without a mesh key, and a malformed key, with a clear message', async () => {
    await expect(startRelayProcess(['--mesh-with', '127.0.0.1:1'])).rejects.toThrow(/--mesh-with needs --mesh-key or --mesh-key-file/)
    await expect(startRelayProcess(['--mesh-key', 'abc'])).rejects.toThrow(/--mesh-key must be 64 hexadecimal digits/)
  })
})

// Skipped without a Go toolchain: derper and test/go/derpclient are built from Tailscale's source.
describe.skipIf(!hasGo)("burrow relay meshed with Tailscale's derper", () => {
  let derper: Derper
  let relay: RelayProcess
  let goClient: string

  beforeAll(async () => {
    goClient = ensureGoDerpClient()
    const relayPort = await freePort()
    // derper dials its mesh peers at https://HOST/derp; TS_DEBUG_USE_DERP_HTTP makes that plain HTTP on loopback.
    derper = await startDerper(['-mesh-psk-file', keyFile, '-mesh-with', `127.0.0.1:${relayPort}`], { TS_DEBUG_USE_DERP_HTTP: '1' })
    relay = await startRelayProcess(['--mesh-key-file', keyFile, '--mesh-with', `http://127.0.0.1:${derper.port}`], { port: relayPort })
    relays.push(relay)
    await waitFor('burrow relay to mesh with derper', () => relay.logs.some((l) => l.msg === 'mesh peer connected'), 20_000)
    // derper's own mesh client is the first client of burrow relay.
    await waitUntil('derper to mesh with burrow relay', async () => (await metric(relay, 'burrow_relay_clients')) >= 1)
  }, 900_000)

  afterAll(() => derper?.stop())

  it("a Burrow client on burrow relay and Tailscale's derphttp client on derper exchange packets, both directions", async () => {
    const me = generateKeyPair()
    const burrow = connect(relay.url, me, { transport: 'http' })
    await waitFor('Burrow to log in', () => burrow.isConnected)
    // derper learns our client through its mesh watch of burrow relay.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const fromGo: string[] = []
    const echoes: string[] = []
    const decoder = new TextDecoder()
    burrow.on('packet', (_source, packet) => {
      const text = decoder.decode(packet)
      if (text.startsWith('echo:')) echoes.push(text.slice(5))
      else fromGo.push(text)
    })
    const go = await runGoDerpClient(goClient, derper.url, me.publicKey, 200, children)
    await waitFor(`packets from the Go client through the mesh (${go.stderr()})`, () => fromGo.length === 200, 30_000)
    expect(fromGo).toEqual(Array.from({ length: 200 }, (_, i) => `from-go ${i}`))
    // Burrow relay learns the Go client's key from derper's PeerPresent before it can forward to it.
    expect(await metric(relay, 'burrow_relay_mesh_peers')).toBe(1)
    for (let i = 0; i < 200; i++) {
      burrow.send(go.key, new TextEncoder().encode(`burrow ${i}`))
      // derper queues 32 packets per client: keep fewer in flight.
      if (i % 16 === 15) await waitFor('echoes', () => echoes.length === i + 1)
    }
    await waitFor('echoes from the Go client', () => echoes.length === 200)
    expect(echoes).toEqual(Array.from({ length: 200 }, (_, i) => `burrow ${i}`))
    expect(await metric(relay, 'burrow_relay_mesh_packets_forwarded_total{direction="out"}')).toBeGreaterThanOrEqual(200)
    expect(await metric(relay, 'burrow_relay_mesh_packets_forwarded_total{direction="in"}')).toBeGreaterThanOrEqual(200)
    go.child.kill('SIGKILL')
  }, 120_000)
})
