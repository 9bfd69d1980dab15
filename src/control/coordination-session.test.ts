import { describe, expect, it } from 'vitest'
import { boxKey, boxOpen, fromBase64, generateKeyPair, toBase64 } from '../crypto/index.ts'
import { CoordinationClientError, CoordinationSession, PONG_TIMEOUT_MS, WELCOME_TIMEOUT_MS, errorFromClose, type SessionOutput } from './coordination-session.ts'
import { PING_INTERVAL_MS, nodeKeyText, type HelloMessage, type PeerEntry } from './protocol.ts'

const server = generateKeyPair()
const node = generateKeyPair()
const previous = generateKeyPair()
const challenge = new Uint8Array(32).fill(9)
const challengeText = JSON.stringify({ type: 'challenge', version: 1, serverKey: toBase64(server.publicKey), challenge: toBase64(challenge) })

const peer: PeerEntry = {
  id: 2,
  nodeKey: `nodekey:${'ab'.repeat(32)}`,
  discoKey: `discokey:${'cd'.repeat(32)}`,
  hostname: 'b',
  addresses: ['100.64.0.2', 'fd00::2'],
  online: true,
  homeRelay: null,
  lastSeen: 5,
  ephemeral: false,
}
const self: PeerEntry = { ...peer, id: 1, nodeKey: nodeKeyText(node.publicKey), hostname: 'a' }
const welcomeText = JSON.stringify({ type: 'welcome', self, network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' }, peers: [peer] })

function session(now = 0): CoordinationSession {
  return new CoordinationSession({ nodeKeyPair: node, discoPublicKey: new Uint8Array(32).fill(1), hostname: 'a', authKey: 'bwauth-x', previousNodeKeyPair: previous }, now)
}

function sentHello(out: SessionOutput[]): HelloMessage {
  const send = out[0]
  if (send?.kind !== 'send' || send.message.type !== 'hello') throw new Error(`expected a hello, got ${JSON.stringify(out)}`)
  return send.message
}

describe('CoordinationSession', () => {
  it('answers the challenge with boxes the server can open with its private key', () => {
    const hello = sentHello(session().receive(challengeText, 0))
    expect(hello).toMatchObject({ nodeKey: nodeKeyText(node.publicKey), authKey: 'bwauth-x', hostname: 'a', previousNodeKey: nodeKeyText(previous.publicKey) })
    const opened = boxOpen(boxKey(server.privateKey, node.publicKey), fromBase64(hello.proof.nonce), fromBase64(hello.proof.box))
    expect(opened).toEqual(challenge)
    const openedPrevious = boxOpen(boxKey(server.privateKey, previous.publicKey), fromBase64(hello.previousProof!.nonce), fromBase64(hello.previousProof!.box))
    expect(openedPrevious).toEqual(challenge)
    // Nothing about the private key itself goes on the wire.
    expect(JSON.stringify(hello)).not.toContain(toBase64(node.privateKey))
  })

  it('reports welcome, peer deltas and self updates', () => {
    const s = session()
    s.receive(challengeText, 0)
    expect(s.receive(welcomeText, 1)).toEqual([{ kind: 'welcome', self, network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' }, peers: [peer] }])
    expect(s.phase).toBe('ready')
    expect(s.receive(JSON.stringify({ type: 'peers', upsert: [], remove: [peer.nodeKey] }), 2)).toEqual([{ kind: 'peers', upsert: [], remove: [peer.nodeKey] }])
    expect(s.receive(JSON.stringify({ type: 'self', self }), 3)).toEqual([{ kind: 'self', self }])
  })

  it('turns a server error into a typed failure; 401 is fatal, 408 is not', () => {
    const s = session()
    const [out] = s.receive(JSON.stringify({ type: 'error', status: 401, error: 'authKey is unknown or already used', closing: true }), 0)
    expect(out).toEqual({ kind: 'failed', error: new CoordinationClientError(401, 'authKey is unknown or already used') })
    expect(out?.kind === 'failed' && out.error.fatal).toBe(true)
    expect(s.receive(welcomeText, 1)).toEqual([])
    expect(new CoordinationClientError(408, 'x').fatal).toBe(false)
  })

  it('reports a refusal that keeps the session without failing it', () => {
    const s = session()
    s.receive(challengeText, 0)
    s.receive(welcomeText, 1)
    const out = s.receive(JSON.stringify({ type: 'error', status: 429, error: 'too many updates', closing: false }), 2)
    expect(out).toEqual([{ kind: 'server-error', error: new CoordinationClientError(429, 'too many updates') }])
    expect(s.phase).toBe('ready')
  })

  it('fails on a malformed server message, naming the field', () => {
    const [out] = session().receive('{"type":"challenge","version":1,"serverKey":"AAAA","challenge":"x"}', 0)
    expect(out?.kind === 'failed' && out.error.message).toBe('server sent a malformed message: serverKey must be 32 bytes, got 3')
  })

  it('fails on a peers message before welcome', () => {
    const [out] = session().receive(JSON.stringify({ type: 'peers', upsert: [], remove: [] }), 0)
    expect(out?.kind === 'failed' && out.error.message).toBe('server sent peers before welcome')
  })

  it('gives up on a server that never welcomes', () => {
    const s = session(100)
    expect(s.nextEvent()).toBe(100 + WELCOME_TIMEOUT_MS)
    expect(s.poll(99 + WELCOME_TIMEOUT_MS)).toEqual([])
    expect(s.poll(100 + WELCOME_TIMEOUT_MS)[0]?.kind).toBe('failed')
  })

  it('pings when idle and fails when the pong does not come', () => {
    const s = session()
    s.receive(challengeText, 0)
    s.receive(welcomeText, 1000)
    expect(s.nextEvent()).toBe(1000 + PING_INTERVAL_MS)
    expect(s.poll(1000 + PING_INTERVAL_MS)).toEqual([{ kind: 'send', message: { type: 'ping', id: 1 } }])
    expect(s.nextEvent()).toBe(1000 + PING_INTERVAL_MS + PONG_TIMEOUT_MS)
    // A pong clears the wait; the next ping is an interval after the last one.
    s.receive('{"type":"pong","id":1}', 1000 + PING_INTERVAL_MS + 5)
    expect(s.nextEvent()).toBe(1000 + 2 * PING_INTERVAL_MS)
    const t = 1000 + 2 * PING_INTERVAL_MS
    expect(s.poll(t)[0]).toMatchObject({ kind: 'send', message: { type: 'ping', id: 2 } })
    const [failure] = s.poll(t + PONG_TIMEOUT_MS)
    expect(failure?.kind === 'failed' && failure.error.message).toBe('server stopped answering pings')
    expect(s.nextEvent()).toBeUndefined()
  })

  it('pings on its own schedule while the server sends changes more often than the ping interval', () => {
    const s = session()
    s.receive(challengeText, 0)
    s.receive(welcomeText, 0)
    const change = JSON.stringify({ type: 'peers', upsert: [peer], remove: [] })
    const pings: number[] = []
    // A busy network: a change every 5 s for three minutes (the server's silence timeout is 60 s).
    for (let t = 0; t <= 180_000; t += 1000) {
      if (t % 5000 === 0) s.receive(change, t)
      for (const out of s.poll(t)) {
        if (out.kind === 'send' && out.message.type === 'ping') {
          pings.push(t)
          s.receive(JSON.stringify({ type: 'pong', id: out.message.id }), t)
        }
        expect(out.kind).not.toBe('failed')
      }
    }
    expect(pings.length).toBeGreaterThanOrEqual(180_000 / PING_INTERVAL_MS)
    for (let i = 1; i < pings.length; i++) expect(pings[i]! - pings[i - 1]!).toBeLessThanOrEqual(PING_INTERVAL_MS + 1000)
  })

  it('stays up on server keepalives alone and fails when the server goes silent', () => {
    const s = session()
    s.receive(challengeText, 0)
    s.receive(welcomeText, 0)
    // Pongs never come back here, but a ping's deadline counts from the ping: keepalives don't clear it.
    let t = 0
    for (; t < 55_000; t += 1000) {
      if (t % 20_000 === 0) expect(s.receive('{"type":"keepalive"}', t)).toEqual([])
      const out = s.poll(t)
      if (out.some((o) => o.kind === 'failed')) break
    }
    expect(s.phase).toBe('failed') // no pong within PONG_TIMEOUT_MS of the first ping
    const quiet = session()
    quiet.receive(challengeText, 0)
    quiet.receive(welcomeText, 0)
    // Nothing at all from the server for the silence timeout: the connection is dead.
    expect(quiet.poll(61_000)).toEqual([{ kind: 'failed', error: new CoordinationClientError(0, 'server sent nothing (not even a keepalive) for too long') }])
  })

  it('assembles an initial map sent in chunks before reporting the welcome', () => {
    const s = session()
    s.receive(challengeText, 0)
    const peers = Array.from({ length: 5 }, (_, i) => ({ ...peer, id: 10 + i, nodeKey: `nodekey:${(10 + i).toString(16).padStart(64, '0')}` }))
    const welcome = JSON.parse(welcomeText) as Record<string, unknown>
    expect(s.receive(JSON.stringify({ ...welcome, peers: peers.slice(0, 2), more: 2 }), 1)).toEqual([])
    expect(s.phase).toBe('loading')
    expect(s.receive('{"type":"keepalive"}', 2)).toEqual([])
    expect(s.receive(JSON.stringify({ type: 'peers', upsert: peers.slice(2, 4), remove: [] }), 3)).toEqual([])
    const [out] = s.receive(JSON.stringify({ type: 'peers', upsert: peers.slice(4), remove: [] }), 4)
    expect(out).toMatchObject({ kind: 'welcome', peers })
    expect(s.phase).toBe('ready')
    // A delta after the map is a delta again.
    expect(s.receive(JSON.stringify({ type: 'peers', upsert: [], remove: [peers[0]!.nodeKey] }), 5)).toEqual([{ kind: 'peers', upsert: [], remove: [peers[0]!.nodeKey] }])
  })

  it('sends home relay and disco key updates only once ready, and uses them in the hello', () => {
    const s = session()
    expect(s.setHomeRelay({ url: 'wss://r/derp', region: 'x' })).toEqual([])
    expect(sentHello(s.receive(challengeText, 0)).homeRelay).toEqual({ url: 'wss://r/derp', region: 'x' })
    s.receive(welcomeText, 1)
    expect(s.setHomeRelay(null)).toEqual([{ kind: 'send', message: { type: 'update', homeRelay: null } }])
    expect(s.setDiscoKey(new Uint8Array(32).fill(0xee))).toEqual([{ kind: 'send', message: { type: 'update', discoKey: `discokey:${'ee'.repeat(32)}` } }])
  })

  it('maps close codes to statuses', () => {
    expect(errorFromClose(4401, 'authKey is unknown or already used')).toMatchObject({ status: 401, fatal: true })
    expect(errorFromClose(1006, '')).toMatchObject({ status: 0, fatal: false, message: 'connection closed (code 1006)' })
  })
})
