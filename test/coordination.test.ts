// Coordination over real sockets: an HTTP server with attachCoordination on 127.0.0.1 and real
// clients (the same code the worker runs) talking to it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createServer, type Server } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import { generateKeyPair, type KeyPair } from '../src/crypto/index.ts'
import { attachCoordination, createCoordinationHandler, type AttachedCoordination } from '../src/server/coordination/http.ts'
import { CoordinationClient, CoordinationClientError } from '../src/control/coordination-client.ts'
import type { PeerEntry } from '../src/control/protocol.ts'

let dataDir: string
let server: Server
let coordination: AttachedCoordination
let baseUrl: string
const clients: CoordinationClient[] = []

async function startServer(port = 0): Promise<void> {
  server = createServer()
  coordination = await attachCoordination(server, { dataDir, relayMap: [{ url: 'wss://relay.example/derp', region: 'ams' }] })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function stopServer(): Promise<void> {
  await coordination.close()
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

function client(options: { pair?: KeyPair; authKey?: string; hostname?: string; url?: string }): CoordinationClient {
  const c = new CoordinationClient({
    url: options.url ?? baseUrl,
    nodeKeyPair: options.pair ?? generateKeyPair(),
    discoPublicKey: generateKeyPair().publicKey,
    hostname: options.hostname ?? 'node',
    ...(options.authKey !== undefined ? { authKey: options.authKey } : {}),
    backoffBaseMs: 50,
    backoffCapMs: 200,
  })
  clients.push(c)
  c.start()
  return c
}

/** Resolves when `predicate` holds on the client's peer map, checked on every push. */
function peersMatch(c: CoordinationClient, predicate: (peers: PeerEntry[]) => boolean, withinMs: number, what: string): Promise<PeerEntry[]> {
  return new Promise((resolve, reject) => {
    if (predicate(c.peers())) return resolve(c.peers())
    const timer = setTimeout(() => {
      off()
      reject(new Error(`within ${withinMs} ms the peer map never showed ${what}: ${JSON.stringify(c.peers())}`))
    }, withinMs)
    const off = c.on('peers', (peers) => {
      if (!predicate(peers)) return
      clearTimeout(timer)
      off()
      resolve(peers)
    })
  })
}

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'burrow-coord-'))
  await startServer()
})

afterEach(async () => {
  for (const c of clients.splice(0)) c.stop()
  await stopServer()
  rmSync(dataDir, { recursive: true, force: true })
})

describe('coordination over WebSocket', () => {
  it('two clients see each other, their home relays and their going offline within a second', async () => {
    const authKey = await coordination.service.createAuthKey({ reusable: true }, Date.now())
    const a = client({ authKey, hostname: 'alpha' })
    const selfA = await a.ready()
    expect(selfA.hostname).toBe('alpha')
    expect(selfA.addresses[0]).toMatch(/^100\./)
    expect(selfA.addresses[1]).toMatch(/^fd/)

    const bPair = generateKeyPair()
    const b = client({ pair: bPair, authKey, hostname: 'alpha' })
    const selfB = await b.ready()
    expect(selfB.hostname).toBe('alpha-2')
    expect(b.peers().map((p) => p.hostname)).toEqual(['alpha'])
    await peersMatch(a, (peers) => peers.some((p) => p.nodeKey === selfB.nodeKey && p.online), 1000, 'b online')
    expect(await coordination.service.isRegistered(bPair.publicKey)).toBe(true)

    b.setHomeRelay({ url: 'wss://relay.example/derp', region: 'ams' })
    await peersMatch(a, (peers) => peers.some((p) => p.homeRelay?.region === 'ams'), 1000, "b's home relay")

    b.stop()
    const peers = await peersMatch(a, (ps) => ps.some((p) => p.nodeKey === selfB.nodeKey && !p.online), 1000, 'b offline')
    expect(peers.find((p) => p.nodeKey === selfB.nodeKey)?.lastSeen).toBeGreaterThan(0)
  })

  it('an ephemeral node disappears from the map when it disconnects', async () => {
    const a = client({ authKey: await coordination.service.createAuthKey({}, Date.now()) })
    await a.ready()
    const e = client({ authKey: await coordination.service.createAuthKey({ ephemeral: true }, Date.now()), hostname: 'tab' })
    const selfE = await e.ready()
    await peersMatch(a, (ps) => ps.some((p) => p.nodeKey === selfE.nodeKey), 1000, 'e joined')
    e.stop()
    await peersMatch(a, (ps) => ps.every((p) => p.nodeKey !== selfE.nodeKey), 1000, 'e removed')
  })

  it('keeps addresses, hostnames and keys across a relay restart, and clients reconnect by themselves', async () => {
    const authKey = await coordination.service.createAuthKey({}, Date.now())
    const pair = generateKeyPair()
    const a = client({ pair, authKey, hostname: 'keeper' })
    const before = await a.ready()
    const states: string[] = []
    a.on('state', (s) => states.push(s))
    const port = (server.address() as AddressInfo).port

    await stopServer()
    await startServer(port)
    await new Promise<void>((resolve) => {
      if (a.state === 'connected' && states.includes('reconnecting')) return resolve()
      const off = a.on('state', (s) => {
        if (s === 'connected') {
          off()
          resolve()
        }
      })
    })
    expect(states).toContain('reconnecting')
    expect(a.self?.addresses).toEqual(before.addresses)
    expect(a.self?.hostname).toBe('keeper')
    expect(await coordination.service.isRegistered(pair.publicKey)).toBe(true)

    // The single-use key was spent before the restart, and stays spent.
    const other = client({ authKey })
    await expect(other.ready()).rejects.toThrow('authKey is unknown or already used')
  })

  it('a wrong auth key fails with a clear 401 and no retry', async () => {
    const c = client({ authKey: 'bwauth-not-a-real-key' })
    const errors: CoordinationClientError[] = []
    c.on('error', (e) => errors.push(e))
    const failure = await c.ready().catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(CoordinationClientError)
    expect(failure).toMatchObject({ status: 401, message: 'authKey is unknown or already used', fatal: true })
    expect(c.state).toBe('failed')
    expect(errors).toHaveLength(1)
  })

  it('garbage gets a 4xx error and a close with a reason while other clients keep working', async () => {
    const authKey = await coordination.service.createAuthKey({ reusable: true }, Date.now())
    const a = client({ authKey, hostname: 'a' })
    await a.ready()

    const raw = new WebSocket(`${baseUrl.replace('http', 'ws')}/control`)
    const messages: string[] = []
    raw.on('message', (data) => messages.push(data.toString()))
    const closed = new Promise<{ code: number; reason: string }>((resolve) => raw.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    await new Promise((resolve) => raw.on('open', resolve))
    raw.send('{"type":"hello","version":1,"nodeKey":42}')
    expect(await closed).toEqual({ code: 4400, reason: 'nodeKey must be a string' })
    expect(JSON.parse(messages.at(-1)!)).toEqual({ type: 'error', status: 400, error: 'nodeKey must be a string', closing: true })

    const http = await fetch(`${baseUrl}/control`)
    expect(http.status).toBe(426)
    expect(await http.json()).toEqual({ error: 'GET /control must be a WebSocket upgrade (see PROTOCOL.md)' })

    const b = client({ authKey, hostname: 'b' })
    const selfB = await b.ready()
    await peersMatch(a, (ps) => ps.some((p) => p.nodeKey === selfB.nodeKey), 1000, 'b joined after the garbage')
    expect(a.state).toBe('connected')
  })
})

describe('sharing the HTTP server', () => {
  it('attachCoordination leaves other upgrade paths to their own handler', async () => {
    const { WebSocketServer } = await import('ws')
    const other = new WebSocketServer({ noServer: true })
    const onUpgrade = (req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): void => {
      if (req.url === '/derp') other.handleUpgrade(req, socket, head, (ws) => ws.send('derp here'))
    }
    server.on('upgrade', onUpgrade)
    try {
      const derp = new WebSocket(`${baseUrl.replace('http', 'ws')}/derp`)
      const first = await new Promise<string>((resolve, reject) => {
        derp.on('message', (data) => resolve(data.toString()))
        derp.on('error', reject)
      })
      expect(first).toBe('derp here')
      derp.close()
      const c = client({ authKey: await coordination.service.createAuthKey({}, Date.now()) })
      await c.ready()
    } finally {
      server.off('upgrade', onUpgrade)
      other.close()
    }
  })

  it('createCoordinationHandler works under a server that dispatches itself and refuses unknown upgrades', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-coord-handler-'))
    const handler = await createCoordinationHandler({ dataDir: dir })
    const own = createServer((req, res) => {
      if (handler.handleRequest(req, res)) return
      res.writeHead(404).end()
    })
    own.on('upgrade', (req, socket, head) => {
      if (!handler.handleUpgrade(req, socket, head)) socket.end('HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\n\r\n')
    })
    await new Promise<void>((resolve) => own.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(own.address() as AddressInfo).port}`
    try {
      const c = client({ url, authKey: await handler.service.createAuthKey({}, Date.now()), hostname: 'dispatched' })
      expect((await c.ready()).hostname).toBe('dispatched')
      expect((await fetch(`${url}/elsewhere`)).status).toBe(404)
      c.stop()
    } finally {
      await handler.close()
      own.closeAllConnections()
      await new Promise<void>((resolve) => own.close(() => resolve()))
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
