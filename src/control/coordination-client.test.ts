import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { generateKeyPair, toBase64 } from '../crypto/index.ts'
import { BACKOFF_CAP_MS, CoordinationClient, CoordinationClientError, backoffDelay, controlUrl } from './coordination-client.ts'
import { nodeKeyText, type PeerEntry } from './protocol.ts'
import { peerEntry } from './testing/peer-entry.ts'
import { ScriptedSocket as FakeSocket } from './testing/scripted-socket.ts'

const server = generateKeyPair()
const pair = generateKeyPair()
const peer = peerEntry
const self = { ...peer(1), nodeKey: nodeKeyText(pair.publicKey) }
const welcome = (peers: PeerEntry[]) => ({ type: 'welcome', self, network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' }, peers })
const challenge = { type: 'challenge', version: 1, serverKey: toBase64(server.publicKey), challenge: toBase64(new Uint8Array(32)) }

let sockets: FakeSocket[]
let client: CoordinationClient

beforeEach(() => {
  vi.useFakeTimers()
  sockets = []
  client = new CoordinationClient({
    url: 'https://relay.example',
    nodeKeyPair: pair,
    discoPublicKey: new Uint8Array(32).fill(2),
    hostname: 'me',
    authKey: 'bwauth-k',
    socketFactory: (url) => {
      const s = new FakeSocket(url)
      sockets.push(s)
      return s
    },
    random: () => 0.5,
  })
})

afterEach(() => {
  client.stop()
  vi.useRealTimers()
})

async function connected(peers: PeerEntry[]): Promise<FakeSocket> {
  await vi.advanceTimersByTimeAsync(0)
  const socket = sockets.at(-1)!
  socket.deliver(challenge)
  socket.deliver(welcome(peers))
  return socket
}

describe('backoffDelay', () => {
  it('is uniform below min(cap, base·2^attempt)', () => {
    expect(backoffDelay(0, () => 0.999, 500)).toBe(499)
    expect(backoffDelay(3, () => 0.5, 500)).toBe(2000)
    expect(backoffDelay(100, () => 0.999999, 500)).toBe(BACKOFF_CAP_MS - 1)
    expect(backoffDelay(5, () => 0, 500)).toBe(0)
  })
})

describe('controlUrl', () => {
  it('maps a relay base URL to its control WebSocket', () => {
    expect(controlUrl('https://relay.example')).toBe('wss://relay.example/control')
    expect(controlUrl('http://127.0.0.1:8080/')).toBe('ws://127.0.0.1:8080/control')
    expect(controlUrl('wss://relay.example/custom/control')).toBe('wss://relay.example/custom/control')
    expect(() => controlUrl('ftp://x')).toThrow('coordination URL must be http(s) or ws(s), got ftp:')
  })
})

describe('CoordinationClient', () => {
  it('registers, keeps the peer map from deltas and resolves ready with our entry', async () => {
    client.start()
    const ready = client.ready()
    const socket = await connected([peer(2), peer(3)])
    expect(socket.url).toBe('wss://relay.example/control')
    expect(socket.sent[0]).toMatchObject({ type: 'hello', authKey: 'bwauth-k', hostname: 'me' })
    expect(await ready).toEqual(self)
    expect(client.peers().map((p) => p.id)).toEqual([2, 3])

    const changes: unknown[] = []
    client.on('peers', (peers, change) => changes.push({ ids: peers.map((p) => p.id), change }))
    socket.deliver({ type: 'peers', upsert: [peer(4), peer(2, { online: false })], remove: [peer(3).nodeKey] })
    expect(changes).toEqual([{ ids: [2, 4], change: { upsert: [peer(4), peer(2, { online: false })], remove: [peer(3).nodeKey] } }])
    expect(client.peers().find((p) => p.id === 2)?.online).toBe(false)
  })

  it('sends the home relay when it changes', async () => {
    client.start()
    const socket = await connected([])
    client.setHomeRelay({ url: 'wss://relay.example/derp', region: 'fra' })
    expect(socket.sent.at(-1)).toEqual({ type: 'update', homeRelay: { url: 'wss://relay.example/derp', region: 'fra' } })
  })

  it('reconnects with jittered backoff after a drop, then resets the backoff on welcome', async () => {
    const states: Array<[string, number | undefined]> = []
    client.on('state', (s, detail) => states.push([s, detail?.retryInMs]))
    client.start()
    await connected([peer(2)])
    sockets[0]!.serverClose(1006)
    expect(states.at(-1)).toEqual(['reconnecting', 250])
    await vi.advanceTimersByTimeAsync(249)
    expect(sockets).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(sockets).toHaveLength(2)
    sockets[1]!.serverClose(1006)
    expect(states.at(-1)).toEqual(['reconnecting', 500])
    await vi.advanceTimersByTimeAsync(500)
    // The peer map from before the drop stays until the new welcome replaces it.
    expect(client.peers().map((p) => p.id)).toEqual([2])
    const changes: unknown[] = []
    client.on('peers', (_, change) => changes.push(change))
    await connected([peer(5)])
    expect(client.state).toBe('connected')
    expect(changes).toEqual([{ upsert: [peer(5)], remove: [peer(2).nodeKey] }])
    sockets[2]!.serverClose(1006)
    expect(states.at(-1)).toEqual(['reconnecting', 250])
  })

  it('caps the backoff at 30 s', async () => {
    let retry = 0
    client.on('state', (_, detail) => (retry = detail?.retryInMs ?? retry))
    client.start()
    for (let i = 0; i < 12; i++) {
      await vi.advanceTimersByTimeAsync(BACKOFF_CAP_MS)
      sockets.at(-1)!.serverClose(1006)
    }
    expect(retry).toBe(BACKOFF_CAP_MS / 2)
  })

  it('stops for good on a wrong auth key and reports the server message', async () => {
    client.start()
    const errors: CoordinationClientError[] = []
    client.on('error', (e) => errors.push(e))
    const ready = client.ready()
    await vi.advanceTimersByTimeAsync(0)
    const socket = sockets[0]!
    socket.deliver({ type: 'error', status: 401, error: 'authKey is unknown or already used', closing: true })
    socket.serverClose(4401, 'authKey is unknown or already used')
    await expect(ready).rejects.toMatchObject({ status: 401, message: 'authKey is unknown or already used' })
    expect(client.state).toBe('failed')
    expect(errors).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(60_000)
    expect(sockets).toHaveLength(1)
    await expect(client.ready()).rejects.toBeInstanceOf(CoordinationClientError)
  })

  it('reports a refusal that keeps the session as an error event and stays connected', async () => {
    client.start()
    const socket = await connected([])
    const errors: CoordinationClientError[] = []
    client.on('error', (e) => errors.push(e))
    socket.deliver({ type: 'error', status: 429, error: 'too many updates', closing: false })
    expect(errors.map((e) => [e.status, e.message])).toEqual([[429, 'too many updates']])
    expect(client.state).toBe('connected')
    expect(socket.closedWith).toBeUndefined()
  })

  it('treats a 4xxx close without an error message by its code', async () => {
    client.start()
    await vi.advanceTimersByTimeAsync(0)
    sockets[0]!.serverClose(4403, 'proof does not prove possession of the node private key')
    expect(client.state).toBe('failed')
  })

  it('drops a silent connection after the ping goes unanswered and reconnects', async () => {
    client.start()
    const socket = await connected([])
    await vi.advanceTimersByTimeAsync(20_000)
    expect(socket.sent.at(-1)).toEqual({ type: 'ping', id: 1 })
    await vi.advanceTimersByTimeAsync(10_000)
    expect(socket.closedWith?.reason).toBe('server stopped answering pings')
    expect(client.state).toBe('reconnecting')
  })

  it('stop closes the socket and rejects pending ready calls', async () => {
    client.start()
    const ready = client.ready()
    await vi.advanceTimersByTimeAsync(0)
    client.stop()
    await expect(ready).rejects.toThrow('coordination client was stopped')
    expect(sockets[0]!.closedWith).toEqual({ code: 1000, reason: 'client stopped' })
  })
})
