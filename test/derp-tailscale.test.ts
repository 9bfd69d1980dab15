// Interop with Tailscale's own code: Burrow's client through Tailscale's derper, and Tailscale's
// derphttp client (test/go/derpclient) through `burrow relay`. Go is only the interop peer.
import type { ChildProcess } from 'node:child_process'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { formatNodeKey, generateKeyPair, type KeyPair } from '../src/crypto/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { httpUpgradeDialer, nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from './helpers/relay-process.ts'
import { type Derper, ensureGoDerpClient, hasGo, runGoDerpClient, startDerper, TAILSCALE_VERSION } from './helpers/tailscale-go.ts'

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
  const go = await runGoDerpClient(goBinary, url, me.publicKey, 300, children)
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
  let derper: Derper | undefined

  beforeAll(async () => {
    goClient = ensureGoDerpClient()
    derper = await startDerper()
    derperUrl = derper.url
    relay = await startRelayProcess()
  }, 900_000) // a fresh machine downloads and compiles Tailscale first (cached afterwards)

  afterAll(async () => {
    await relay?.stop('SIGKILL')
    removeRelayDataDirs()
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
    derper?.stop()
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

  it('a burst coalesced past 32 KiB over WebSocket keeps the derper connection (derper reads at most 32768 bytes per message) and every packet arrives', async () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    const ca = connect(derperUrl, a, 'ws')
    const cb = connect(derperUrl, b, 'http')
    await waitFor('logins to derper', () => ca.isConnected && cb.isConnected)
    const drops: string[] = []
    ca.on('disconnected', (reason) => drops.push(reason))
    const got: number[] = []
    cb.on('packet', (_source, packet) => got.push(packet[0]!))
    // 8 packets of 16400 bytes (Burrow's default MTU is 16384) in one task: the session coalesces
    // them into chunks of two and three frames (33 and 49 KB), fewer than derper's 32-packet queue.
    for (let i = 0; i < 8; i++) ca.send(b.publicKey, new Uint8Array(16_400).fill(i))
    await waitFor('the burst', () => got.length === 8 || drops.length > 0)
    expect(drops).toEqual([])
    expect(got).toEqual(Array.from({ length: 8 }, (_, i) => i))
    expect(ca.stats.connects).toBe(1)
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
