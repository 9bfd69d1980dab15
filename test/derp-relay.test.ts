// Burrow's DERP client against a real `burrow relay` child process.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { boxKey, formatNodeKey, generateKeyPair, type KeyPair } from '../src/crypto/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { encodeFrame } from '../src/underlay/derp/frames.ts'
import { sealJson } from '../src/underlay/derp/info.ts'
import { httpUpgradeDialer, nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { DerpClientSession } from '../src/underlay/derp/session.ts'
import { type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from './helpers/relay-process.ts'

const relays: RelayProcess[] = []
const connections: DerpConnection[] = []

afterEach(async () => {
  for (const c of connections.splice(0)) c.close()
  for (const r of relays.splice(0)) await r.stop('SIGKILL')
})

afterAll(() => removeRelayDataDirs())

async function relay(args: string[] = [], options: { port?: number; dataDir?: string } = {}): Promise<RelayProcess> {
  const r = await startRelayProcess(args, options)
  relays.push(r)
  return r
}

function connect(url: string, keys: KeyPair, transport: 'ws' | 'http' = 'ws', extra: Partial<ConstructorParameters<typeof DerpConnection>[0]> = {}): DerpConnection {
  const c = new DerpConnection({
    url,
    privateKey: keys.privateKey,
    dial: transport === 'ws' ? nodeWebSocketDialer() : httpUpgradeDialer(),
    backoff: { baseMs: 50, capMs: 1000 },
    ...extra,
  })
  connections.push(c.start())
  return c
}

async function connected(...cs: DerpConnection[]): Promise<void> {
  await waitFor('clients to log in', () => cs.every((c) => c.isConnected))
}

async function metric(r: RelayProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  return Number(line?.split(' ').at(-1))
}

function packet(seq: number, size: number): Uint8Array {
  const p = new Uint8Array(size).fill(seq & 0xff)
  new DataView(p.buffer).setUint32(0, seq)
  return p
}

/** Sends `count` packets from `from` to `to`, never more than `window` unacknowledged, checking order and content. */
function stream(from: DerpConnection, fromKey: Uint8Array, to: DerpConnection, toKey: Uint8Array, count: number, window: number) {
  let sent = 0
  let received = 0
  const errors: string[] = []
  const pump = () => {
    while (sent < count && sent - received < window) {
      from.send(toKey, packet(sent, 16 + ((sent * 7919) % 1400)))
      sent++
    }
  }
  to.on('packet', (source, p) => {
    if (formatNodeKey(source) !== formatNodeKey(fromKey)) return
    const seq = new DataView(p.buffer, p.byteOffset).getUint32(0)
    if (seq !== received) errors.push(`expected ${received}, got ${seq}`)
    else if (p.length !== 16 + ((seq * 7919) % 1400) || p[p.length - 1] !== (seq & 0xff)) errors.push(`packet ${seq} corrupted`)
    received++
    pump()
  })
  pump()
  return { done: () => received >= count, received: () => received, errors }
}

describe('burrow relay process', () => {
  it('carries 100 000 packets between two clients (WebSocket and Upgrade: DERP) with none lost', async () => {
    const r = await relay(['--queue-packets', '1024'])
    const a = generateKeyPair()
    const b = generateKeyPair()
    const ca = connect(r.url, a, 'ws')
    const cb = connect(r.url, b, 'http')
    await connected(ca, cb)
    const ab = stream(ca, a.publicKey, cb, b.publicKey, 50_000, 256)
    const ba = stream(cb, b.publicKey, ca, a.publicKey, 50_000, 256)
    await waitFor('100 000 packets', () => ab.done() && ba.done(), 90_000)
    expect(ab.errors.slice(0, 5)).toEqual([])
    expect(ba.errors.slice(0, 5)).toEqual([])
    expect(await metric(r, 'burrow_relay_packets_forwarded_total')).toBe(100_000)
    for (const reason of ['queue_full_oldest', 'queue_full_newest', 'unknown_dest', 'rate_limited']) {
      expect(await metric(r, `burrow_relay_packets_dropped_total{reason="${reason}"}`)).toBe(0)
    }
    expect(ca.stats.droppedBackpressure + cb.stats.droppedBackpressure).toBe(0)
  })

  it('clients reconnect and traffic resumes when the relay is killed and restarted mid-stream', async () => {
    const first = await relay()
    const a = generateKeyPair()
    const b = generateKeyPair()
    const ca = connect(first.url, a, 'ws', { pendingLimit: 100 })
    const cb = connect(first.url, b, 'http')
    await connected(ca, cb)
    let received = 0
    cb.on('packet', () => received++)
    const sender = setInterval(() => {
      for (let i = 0; i < 20; i++) ca.send(b.publicKey, packet(i, 200))
    }, 5)
    try {
      await waitFor('traffic before the kill', () => received > 500)
      await first.stop('SIGKILL')
      await waitFor('clients to notice', () => !ca.isConnected && !cb.isConnected)
      await new Promise((resolve) => setTimeout(resolve, 300)) // packets queue meanwhile
      expect(ca.pendingCount).toBeLessThanOrEqual(100)
      const second = await relay([], { port: first.port, dataDir: first.dataDir })
      expect(second.publicKey).toBe(first.publicKey) // the key survived in the data dir
      await connected(ca, cb)
      const before = received
      await waitFor('traffic after the restart', () => received > before + 500)
      expect(ca.stats.connects).toBeGreaterThanOrEqual(2)
      expect(ca.stats.droppedWhileReconnecting).toBeGreaterThan(0)
    } finally {
      clearInterval(sender)
    }
  })

  it('sends Restarting on SIGTERM and clients come back to the new process', async () => {
    const first = await relay()
    const a = generateKeyPair()
    const ca = connect(first.url, a, 'ws')
    await connected(ca)
    const restarting: number[][] = []
    ca.on('restarting', (reconnectIn, tryFor) => restarting.push([reconnectIn, tryFor]))
    expect(await first.stop('SIGTERM')).toBe(0)
    expect(restarting).toEqual([[500, 30_000]])
    expect(first.logs.some((l) => l.msg === 'shutting down: telling clients to reconnect')).toBe(true)
    await relay([], { port: first.port, dataDir: first.dataDir })
    await connected(ca)
  })

  it('closes only the offender for malformed, oversize, text, unadmitted and badly sealed input', async () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    const offender = generateKeyPair()
    const dir = mkdtempSync(join(tmpdir(), 'burrow-allow-'))
    const allowFile = join(dir, 'allowed')
    writeFileSync(allowFile, [a, b, offender].map((k) => formatNodeKey(k.publicKey)).join('\n') + '\n')
    const r = await relay(['--verify-clients', '--allowed-keys', allowFile])
    const ca = connect(r.url, a, 'ws')
    const cb = connect(r.url, b, 'http')
    await connected(ca, cb)
    let received = 0
    cb.on('packet', () => received++)

    const wsUrl = r.url.replace('http:', 'ws:')
    const malformed = await rawLogin(wsUrl, offender)
    malformed.send(new Uint8Array([0x07, 0, 0, 0, 3, 1, 1, 1]))
    expect(await closeOf(malformed)).toBeGreaterThan(0)

    const oversize = await rawLogin(wsUrl, offender)
    oversize.send(new Uint8Array([0x04, 0, 0x01, 0x10, 0x00]))
    await closeOf(oversize)

    const text = await rawLogin(wsUrl, offender)
    text.send('hello')
    await closeOf(text)

    const badBox = new WebSocket(wsUrl, 'derp')
    await new Promise((resolve) => badBox.once('open', resolve))
    const wrongShared = boxKey(offender.privateKey, generateKeyPair().publicKey)
    badBox.send(encodeFrame({ type: 'client-info', clientKey: offender.publicKey, sealed: sealJson(wrongShared, { version: 2 }) }))
    await closeOf(badBox)

    const stranger = connect(r.url, generateKeyPair(), 'ws')
    await waitFor('the stranger to be refused', () => r.logs.some((l) => l.reason === 'client not admitted'))
    expect(stranger.isConnected).toBe(false)
    stranger.close()

    const reasons = r.logs.filter((l) => l.msg === 'connection closed').map((l) => String(l.reason))
    expect(reasons).toEqual(
      expect.arrayContaining([
        'NotePreferred frame must be 1 byte, got 3',
        'frame type 0x4 announces 69632 bytes, over the 65568-byte limit',
        'text WebSocket message (DERP is binary only)',
        'ClientInfo box failed to open (wrong key or corrupted)',
        'client not admitted',
      ]),
    )
    for (let i = 0; i < 100; i++) ca.send(b.publicKey, packet(i, 100))
    await waitFor('the good clients to keep working', () => received === 100)
    expect(ca.isConnected && cb.isConnected).toBe(true)
    expect(await metric(r, 'burrow_relay_clients')).toBe(2)
    rmSync(dir, { recursive: true, force: true })
  })

  it('disconnects a client that stops reading (write timeout) while others keep flowing', async () => {
    const r = await relay(['--write-timeout', '1000', '--queue-packets', '4096', '--queue-bytes', '8000000'])
    const a = generateKeyPair()
    const b = generateKeyPair()
    const slow = generateKeyPair()
    const ca = connect(r.url, a, 'ws')
    const cb = connect(r.url, b, 'ws')
    await connected(ca, cb)
    const stalled = await rawLogin(r.url.replace('http:', 'ws:'), slow)
    stalled.pause() // stop reading: the relay's writes back up into the kernel buffers and stay there
    const closed = closeOf(stalled)
    let received = 0
    cb.on('packet', () => received++)
    const big = new Uint8Array(1420)
    const flood = setInterval(() => {
      for (let i = 0; i < 500; i++) ca.send(slow.publicKey, big)
      ca.send(b.publicKey, big)
    }, 5)
    try {
      await waitFor('the slow reader to be cut off', () => r.logs.some((l) => String(l.reason).startsWith('write timed out')), 60_000)
      const before = received
      await waitFor('traffic to the healthy client to continue', () => received > before + 20)
    } finally {
      clearInterval(flood)
      stalled.resume()
      await closed
    }
    expect(ca.isConnected && cb.isConnected).toBe(true)
  })

  it('holds 1000 concurrent WebSocket clients', async () => {
    const r = await relay()
    const keys = Array.from({ length: 1000 }, () => generateKeyPair())
    const clients = keys.map((k) => connect(r.url, k, 'ws'))
    await waitFor('1000 logins', () => clients.every((c) => c.isConnected), 90_000)
    expect(await metric(r, 'burrow_relay_clients')).toBe(1000)
    let received = 0
    for (const c of clients) c.on('packet', () => received++)
    clients.forEach((c, i) => c.send(keys[(i + 1) % keys.length]!.publicKey, packet(i, 64)))
    await waitFor('a packet around the ring', () => received === 1000)
  }, 180_000)
})

/** Logs in by hand over a raw WebSocket so the test can then misbehave. */
async function rawLogin(url: string, keys: KeyPair): Promise<WebSocket> {
  const ws = new WebSocket(url, 'derp')
  const session = new DerpClientSession({ privateKey: keys.privateKey }, 0)
  ws.on('message', (data: Buffer) => {
    session.receive(new Uint8Array(data), 0)
    for (let out = session.takeOutput(); out; out = session.takeOutput()) ws.send(out)
  })
  await waitFor('raw login', () => session.state === 'ready')
  ws.removeAllListeners('message')
  return ws
}

function closeOf(ws: WebSocket): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(-1)
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)))
}
