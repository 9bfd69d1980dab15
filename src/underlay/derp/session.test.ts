import { describe, expect, it } from 'vitest'
import { boxKey, generateKeyPair } from '../../crypto/index.ts'
import { FrameReader } from './frame-reader.ts'
import { MAGIC, decodeFrame, encodeFrame } from './frames.ts'
import { openJson, sealJson } from './info.ts'
import { DerpClientSession } from './session.ts'

const relay = generateKeyPair()
const me = generateKeyPair()
const shared = boxKey(relay.privateKey, me.publicKey)

function serverKeyFrame(magic = MAGIC): Uint8Array {
  const frame = encodeFrame({ type: 'server-key', key: relay.publicKey })
  frame.set(magic, 5)
  return frame
}

function loggedIn(info: object = { version: 2 }): DerpClientSession {
  const session = new DerpClientSession({ privateKey: me.privateKey }, 0)
  session.receive(serverKeyFrame(), 0)
  session.takeOutput()
  session.receive(encodeFrame({ type: 'server-info', sealed: sealJson(shared, info) }), 0)
  return session
}

function framesOf(bytes: Uint8Array | undefined) {
  const reader = new FrameReader()
  if (bytes) reader.push(bytes)
  const out = []
  for (let raw = reader.next(); raw; raw = reader.next()) out.push(decodeFrame(raw.type, raw.payload))
  return out
}

describe('DerpClientSession', () => {
  it('answers ServerKey with a ClientInfo sealed to the relay key', () => {
    const session = new DerpClientSession({ privateKey: me.privateKey }, 0)
    session.receive(serverKeyFrame(), 0)
    const [frame] = framesOf(session.takeOutput())
    expect(frame?.type).toBe('client-info')
    if (frame?.type !== 'client-info') return
    expect(frame.clientKey).toEqual(me.publicKey)
    expect(openJson(shared, frame.sealed, 'ClientInfo')).toEqual({ version: 2, CanAckPings: true })
  })

  it('rejects a wrong magic with a clear error', () => {
    const session = new DerpClientSession({ privateKey: me.privateKey }, 0)
    session.receive(serverKeyFrame(new Uint8Array(8)), 0)
    expect(session.takeEvent()).toEqual({ type: 'closed', reason: 'ServerKey frame has the wrong magic (not a DERP server)' })
    expect(session.state).toBe('closed')
  })

  it('rejects a relay speaking another protocol version', () => {
    const session = loggedIn({ version: 3 })
    expect(session.takeEvent()).toEqual({ type: 'closed', reason: 'relay speaks DERP protocol version 3, this client speaks 2' })
  })

  it('rejects an unexpected relay key', () => {
    const session = new DerpClientSession({ privateKey: me.privateKey, expectedServerKey: generateKeyPair().publicKey }, 0)
    session.receive(serverKeyFrame(), 0)
    expect(session.takeEvent()?.type).toBe('closed')
  })

  it('reassembles frames split across and merged within messages', () => {
    const session = loggedIn()
    expect(session.takeEvent()?.type).toBe('connected')
    const stream = new Uint8Array([
      ...encodeFrame({ type: 'recv-packet', source: relay.publicKey, packet: new Uint8Array([1, 2]) }),
      ...encodeFrame({ type: 'keep-alive' }),
      ...encodeFrame({ type: 'recv-packet', source: relay.publicKey, packet: new Uint8Array([3]) }),
      ...encodeFrame({ type: 'health', problem: 'overloaded' }),
    ])
    session.receive(stream.subarray(0, 7), 1)
    session.receive(stream.subarray(7, 50), 1)
    session.receive(stream.subarray(50), 1)
    expect([session.takeEvent(), session.takeEvent(), session.takeEvent(), session.takeEvent()]).toEqual([
      { type: 'packet', source: relay.publicKey, packet: new Uint8Array([1, 2]) },
      { type: 'packet', source: relay.publicKey, packet: new Uint8Array([3]) },
      { type: 'health', problem: 'overloaded' },
      undefined,
    ])
  })

  it('coalesces many sends into messages of at most 64 KiB holding whole frames', () => {
    const session = loggedIn()
    for (let i = 0; i < 200; i++) session.send(relay.publicKey, new Uint8Array(1420).fill(i), 0)
    const messages = []
    for (let m = session.takeOutput(); m; m = session.takeOutput()) messages.push(m)
    // 200 × 1457 bytes: chunks grow from 4 KiB to 64 KiB, so a handful of messages, not 200.
    expect(messages.length).toBeLessThanOrEqual(10)
    expect(messages.at(-2)!.length).toBeGreaterThan(60_000)
    expect(Math.max(...messages.map((m) => m.length))).toBeLessThanOrEqual(65536)
    const frames = messages.flatMap(framesOf)
    expect(frames).toHaveLength(200)
    expect(frames.every((f, i) => f.type === 'send-packet' && f.packet[0] === i % 256)).toBe(true)
  })

  it('answers the relay ping and declares the relay dead when our own ping goes unanswered', () => {
    const session = loggedIn()
    session.takeEvent()
    session.receive(encodeFrame({ type: 'ping', data: new Uint8Array(8).fill(5) }), 0)
    expect(framesOf(session.takeOutput())).toEqual([{ type: 'pong', data: new Uint8Array(8).fill(5) }])
    expect(session.nextEvent()).toBe(15_000)
    session.poll(15_000)
    expect(framesOf(session.takeOutput())[0]?.type).toBe('ping')
    expect(session.nextEvent()).toBe(25_000)
    session.poll(25_000)
    expect(session.takeEvent()).toEqual({ type: 'closed', reason: 'relay stopped responding (no reply within 10000 ms of a ping)' })
  })

  it('any frame from the relay counts as life', () => {
    const session = loggedIn()
    session.poll(15_000)
    session.receive(encodeFrame({ type: 'keep-alive' }), 20_000)
    session.poll(25_000)
    expect(session.state).toBe('ready')
    expect(session.nextEvent()).toBe(35_000)
  })

  it('does not send before login and surfaces Restarting and PeerGone', () => {
    const session = new DerpClientSession({ privateKey: me.privateKey }, 0)
    expect(session.send(relay.publicKey, new Uint8Array(1), 0)).toBe(false)
    expect(session.counters.droppedNotReady).toBe(1)
    const ready = loggedIn()
    ready.takeEvent()
    ready.receive(encodeFrame({ type: 'restarting', reconnectInMs: 10, tryForMs: 20 }), 0)
    ready.receive(encodeFrame({ type: 'peer-gone', key: relay.publicKey }), 0)
    expect(ready.takeEvent()).toEqual({ type: 'restarting', reconnectInMs: 10, tryForMs: 20 })
    expect(ready.takeEvent()).toEqual({ type: 'peer-gone', key: relay.publicKey, reason: 0 })
  })

  it('times out a login that never completes', () => {
    const session = new DerpClientSession({ privateKey: me.privateKey, loginTimeoutMs: 3000 }, 0)
    expect(session.nextEvent()).toBe(3000)
    session.poll(3000)
    expect(session.takeEvent()).toEqual({ type: 'closed', reason: 'login timed out' })
  })
  it('with holdLogin takes the ServerKey but sends ClientInfo only at login(), and runs no login deadline until then', () => {
    const session = new DerpClientSession({ privateKey: me.privateKey, holdLogin: true, loginTimeoutMs: 1000 }, 0)
    expect(session.nextEvent()).toBeUndefined()
    session.receive(serverKeyFrame(), 5)
    expect(session.takeOutput()).toBeUndefined()
    expect(session.serverKey).toEqual(relay.publicKey)
    session.poll(60_000)
    expect(session.state).not.toBe('closed')
    session.login(60_000)
    expect(session.nextEvent()).toBe(61_000)
    const [frame] = framesOf(session.takeOutput())
    expect(frame?.type).toBe('client-info')
    if (frame?.type !== 'client-info') return
    expect(frame.clientKey).toEqual(me.publicKey)
    expect(openJson(shared, frame.sealed, 'ClientInfo')).toMatchObject({ version: 2 })
    session.receive(encodeFrame({ type: 'server-info', sealed: sealJson(shared, { version: 2 }) }), 60_001)
    expect(session.state).toBe('ready')
    expect(session.takeEvent()).toMatchObject({ type: 'connected' })
  })

  it('with holdLogin released before the ServerKey arrives sends ClientInfo as soon as it does', () => {
    const session = new DerpClientSession({ privateKey: me.privateKey, holdLogin: true }, 0)
    session.login(1)
    expect(session.loginHeld).toBe(false)
    expect(session.takeOutput()).toBeUndefined()
    session.receive(serverKeyFrame(), 2)
    expect(framesOf(session.takeOutput()).map((f) => f.type)).toEqual(['client-info'])
  })

  it('times out a held login only after login() was called', () => {
    const session = new DerpClientSession({ privateKey: me.privateKey, holdLogin: true, loginTimeoutMs: 100 }, 0)
    session.receive(serverKeyFrame(), 0)
    session.poll(10_000)
    expect(session.state).toBe('awaiting-server-info')
    session.login(10_000)
    session.poll(10_099)
    expect(session.state).toBe('awaiting-server-info')
    session.poll(10_100)
    expect(session.state).toBe('closed')
    expect(session.closeReason).toBe('login timed out')
  })
})
