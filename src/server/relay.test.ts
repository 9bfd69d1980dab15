import { describe, expect, it } from 'vitest'
import { boxKey, generateKeyPair } from '../crypto/index.ts'
import { encodeFrame } from '../underlay/derp/frames.ts'
import { openJson, sealJson } from '../underlay/derp/info.ts'
import { Relay, type RelayClient, type RelayOptions } from './relay.ts'
import { type DerpLink, InMemoryDerp, packetsOf } from './testing/in-memory-derp.ts'

/** Client sessions wired to one relay in memory. */
class Harness {
  readonly relay: Relay
  private readonly derp = new InMemoryDerp()

  constructor(options: Partial<RelayOptions> = {}) {
    this.relay = new Relay({ privateKey: generateKeyPair().privateKey, random: () => 0, ...options })
  }

  get now(): number {
    return this.derp.now
  }

  set now(value: number) {
    this.derp.now = value
  }

  get links(): DerpLink[] {
    return this.derp.links
  }

  connect(privateKey = generateKeyPair().privateKey): DerpLink {
    return this.derp.connect(this.relay, { privateKey }, 'test')
  }

  pump(): void {
    this.derp.pump()
  }
}

const packets = packetsOf

describe('Relay core with client sessions', () => {
  it('logs clients in and forwards packets both ways', () => {
    const h = new Harness()
    const a = h.connect()
    const b = h.connect()
    expect(a.events[0]).toMatchObject({ type: 'connected', serverInfo: { version: 2 } })
    expect(h.relay.metrics.clients).toBe(2)
    a.session.send(b.session.publicKey, new Uint8Array([1, 2, 3]), h.now)
    b.session.send(a.session.publicKey, new Uint8Array([4]), h.now)
    h.pump()
    expect(packets(b)).toEqual([{ type: 'packet', source: a.session.publicKey, packet: new Uint8Array([1, 2, 3]) }])
    expect(packets(a)).toEqual([{ type: 'packet', source: b.session.publicKey, packet: new Uint8Array([4]) }])
    expect(h.relay.metrics.packetsForwarded).toBe(2)
  })

  it('answers pings and sends keepalives on schedule', () => {
    const h = new Harness({ keepAliveMs: 60_000, idleTimeoutMs: 600_000 })
    const a = h.connect()
    a.session.ping(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))
    h.pump()
    expect(a.events.at(-1)).toEqual({ type: 'pong', data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) })
    expect(h.relay.nextEvent()).toBe(h.now + 60_000)
    h.now += 60_000
    h.relay.poll(h.now)
    expect(a.conn.takeOutput()).toEqual(encodeFrame({ type: 'keep-alive' }))
  })

  it('closes only the offender on a malformed frame, an oversize frame or a bad box', () => {
    const h = new Harness()
    const good1 = h.connect()
    const good2 = h.connect()
    const malformed = h.connect()
    h.relay.receive(malformed.conn, new Uint8Array([0x07, 0, 0, 0, 3, 1, 1, 1]), h.now) // NotePreferred of 3 bytes
    expect(malformed.closed).toMatch(/NotePreferred frame must be 1 byte/)
    const oversize = h.connect()
    h.relay.receive(oversize.conn, new Uint8Array([0x04, 0, 0x01, 0x00, 0x21]), h.now)
    expect(oversize.closed).toMatch(/over the 65568-byte limit/)
    // A ClientInfo sealed to the wrong relay key.
    const conn = h.relay.accept(h.now, 'test')
    let closed = ''
    conn.onClose = (r) => (closed = r)
    const me = generateKeyPair()
    const sealed = sealJson(boxKey(me.privateKey, generateKeyPair().publicKey), { version: 2 })
    h.relay.receive(conn, encodeFrame({ type: 'client-info', clientKey: me.publicKey, sealed }), h.now)
    expect(closed).toMatch(/ClientInfo box failed to open/)
    good1.session.send(good2.session.publicKey, new Uint8Array([9]), h.now)
    h.pump()
    expect(packets(good2)).toHaveLength(1)
    expect(h.relay.metrics.clients).toBe(2)
  })

  it('refuses anything but ClientInfo first and enforces a login timeout', () => {
    const h = new Harness({ loginTimeoutMs: 5000 })
    const conn = h.relay.accept(h.now, 'test')
    let closed = ''
    conn.onClose = (r) => (closed = r)
    h.relay.receive(conn, encodeFrame({ type: 'keep-alive' }), h.now)
    expect(closed).toMatch(/expected ClientInfo/)
    const idle = h.relay.accept(h.now, 'test')
    idle.onClose = (r) => (closed = r)
    h.relay.poll(h.now + 5000)
    expect(closed).toMatch(/login timed out/)
  })

  it('sends PeerGone to senders when a destination leaves, and to receivers when a sender leaves', () => {
    const h = new Harness()
    const a = h.connect()
    const b = h.connect()
    const c = h.connect()
    const bystander = h.connect()
    a.session.send(b.session.publicKey, new Uint8Array([1]), h.now)
    b.session.send(c.session.publicKey, new Uint8Array([1]), h.now)
    h.pump()
    h.relay.close(b.conn, 'client went away', h.now, 'normal')
    h.pump()
    expect(a.events.at(-1)).toEqual({ type: 'peer-gone', key: b.session.publicKey, reason: 0 })
    expect(c.events.at(-1)).toEqual({ type: 'peer-gone', key: b.session.publicKey, reason: 0 })
    expect(bystander.events.some((e) => e.type === 'peer-gone')).toBe(false)
    // The bookkeeping is gone with b: a reconnecting b that then leaves tells nobody.
    const b2 = h.connect()
    h.relay.close(b2.conn, 'again', h.now, 'normal')
    h.pump()
    expect(a.events.filter((e) => e.type === 'peer-gone')).toHaveLength(1)
  })

  it('answers a disco packet to an absent peer with PeerGone NotHere', () => {
    const h = new Harness()
    const a = h.connect()
    const absent = generateKeyPair().publicKey
    const disco = new Uint8Array(100)
    disco.set([0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac])
    a.session.send(absent, disco, h.now)
    a.session.send(absent, new Uint8Array([1, 2]), h.now)
    h.pump()
    expect(a.events.filter((e) => e.type === 'peer-gone')).toEqual([{ type: 'peer-gone', key: absent, reason: 1 }])
    expect(h.relay.metrics.drops.get('unknown_dest')).toBe(2)
  })

  it('delivers to the most recently active of duplicate connections', () => {
    const h = new Harness()
    const key = generateKeyPair().privateKey
    const first = h.connect(key)
    const second = h.connect(key)
    const sender = h.connect()
    sender.session.send(first.session.publicKey, new Uint8Array([1]), h.now)
    h.pump()
    expect(packets(second)).toHaveLength(1)
    first.session.send(sender.session.publicKey, new Uint8Array([2]), h.now)
    h.pump()
    sender.session.send(first.session.publicKey, new Uint8Array([3]), h.now)
    h.pump()
    expect(packets(first).map((e) => e.type === 'packet' && e.packet[0])).toEqual([3])
    h.relay.close(first.conn, 'gone', h.now, 'normal')
    sender.session.send(first.session.publicKey, new Uint8Array([4]), h.now)
    h.pump()
    expect(packets(second)).toHaveLength(2)
  })

  it('bounds each client queue, dropping the oldest and counting', () => {
    const h = new Harness({ queuePackets: 4 })
    const a = h.connect()
    const b = h.connect()
    for (let i = 0; i < 10; i++) h.relay.receive(a.conn, encodeFrame({ type: 'send-packet', destination: b.session.publicKey, packet: new Uint8Array([i]) }), h.now)
    h.pump()
    expect(packets(b).map((e) => e.type === 'packet' && e.packet[0])).toEqual([6, 7, 8, 9])
    expect(h.relay.metrics.drops.get('queue_full_oldest')).toBe(6)
  })

  it('announces its token bucket, which the client then honours', () => {
    const h = new Harness({ rateLimit: { bytesPerSecond: 1000, burstBytes: 200 } })
    const a = h.connect()
    const b = h.connect()
    expect(a.events[0]).toMatchObject({ serverInfo: { TokenBucketBytesPerSecond: 1000, TokenBucketBytesBurst: 200 } })
    const sent = Array.from({ length: 5 }, () => a.session.send(b.session.publicKey, new Uint8Array(60), h.now))
    expect(sent).toEqual([true, true, false, false, false]) // 97-byte frames against a 200-byte burst
    expect(a.session.counters.droppedRateLimited).toBe(3)
    // A client ignoring the bucket has its excess dropped by the relay.
    for (let i = 0; i < 5; i++) h.relay.receive(b.conn, encodeFrame({ type: 'send-packet', destination: a.session.publicKey, packet: new Uint8Array(60) }), h.now)
    expect(h.relay.metrics.drops.get('rate_limited')).toBe(3)
  })

  it('admits clients through the verification hook', () => {
    const h = new Harness({ verifyClients: true })
    const pending: RelayClient[] = []
    const origAccept = h.relay.accept.bind(h.relay)
    h.relay.accept = (now, remote) => {
      const c = origAccept(now, remote)
      c.onAdmission = () => pending.push(c)
      return c
    }
    const a = h.connect()
    expect(a.session.state).toBe('awaiting-server-info')
    h.relay.completeAdmission(pending[0]!, true, h.now)
    h.pump()
    expect(a.session.state).toBe('ready')
    const b = h.connect()
    h.relay.completeAdmission(pending[1]!, false, h.now)
    expect(b.closed).toBe('client not admitted')
  })

  it('sends Restarting on shutdown', () => {
    const h = new Harness()
    const a = h.connect()
    h.relay.announceRestart(1500, 30_000)
    h.pump()
    expect(a.events.at(-1)).toEqual({ type: 'restarting', reconnectInMs: 1500, tryForMs: 30_000 })
  })

  it('seals ServerInfo to the client key', () => {
    const relayKeys = generateKeyPair()
    const h = new Harness({ privateKey: relayKeys.privateKey })
    const conn = h.relay.accept(h.now, 'test')
    conn.takeOutput()
    const me = generateKeyPair()
    const shared = boxKey(me.privateKey, relayKeys.publicKey)
    h.relay.receive(conn, encodeFrame({ type: 'client-info', clientKey: me.publicKey, sealed: sealJson(shared, { version: 2 }) }), h.now)
    const out = conn.takeOutput()!
    expect(out[0]).toBe(0x03)
    expect(openJson(shared, out.subarray(5), 'ServerInfo')).toEqual({ version: 2 })
  })
})

describe('Relay core under attack', () => {
  const ping = encodeFrame({ type: 'ping', data: new Uint8Array(8) })

  it('a client that pings without reading gets a few pongs queued, never an unbounded pile', () => {
    const h = new Harness({ controlFrameRate: { perSecond: 1e9, burst: 1e9 } })
    const flooder = h.connect()
    flooder.closed = 'stop pumping it'
    const flood = new Uint8Array(ping.length * 10_000)
    for (let i = 0; i < 10_000; i++) flood.set(ping, i * ping.length)
    h.relay.receive(flooder.conn, flood, h.now)
    expect(flooder.conn.queue.controlFrames).toBeLessThanOrEqual(4)
    expect(h.relay.metrics.controlDropped).toBeGreaterThan(9_990)
  })

  it('stops processing a client past its control-frame budget and resumes when the bucket refills', () => {
    const h = new Harness({ controlFrameRate: { perSecond: 10, burst: 20 } })
    const a = h.connect()
    const b = h.connect()
    const pauses: number[] = []
    a.conn.onPause = (until) => pauses.push(until)
    const burst = new Uint8Array(ping.length * 100)
    for (let i = 0; i < 100; i++) burst.set(ping, i * ping.length)
    h.relay.receive(a.conn, burst, h.now)
    expect(pauses).toEqual([h.now + 100])
    expect(a.conn.reader.buffered).toBe(80 * ping.length) // 20 taken, the rest wait unread
    h.now += 50
    h.relay.resume(a.conn, h.now) // too early: paused again for the rest of the wait
    expect(pauses.at(-1)).toBe(h.now + 50)
    h.now += 1000
    h.relay.resume(a.conn, h.now)
    expect(a.conn.reader.buffered).toBe(70 * ping.length) // 10 more per second
    // The other client was never slowed down.
    b.session.ping(new Uint8Array(8))
    h.pump()
    expect(b.events.at(-1)).toMatchObject({ type: 'pong' })
  })

  it('pings a silent client at half the idle timeout and closes it at the full timeout', () => {
    const h = new Harness({ idleTimeoutMs: 10_000, keepAliveMs: 600_000 })
    const answering = h.connect()
    const vanished = h.connect()
    vanished.closed = 'no longer answers'
    h.now += 5_000
    h.relay.poll(h.now)
    h.pump() // the live client answers the probe with a Pong
    expect(vanished.conn.takeOutput()?.[0]).toBe(0x12) // Ping
    h.now += 5_000
    h.relay.poll(h.now)
    expect(vanished.conn.state).toBe('closed')
    expect(vanished.conn.closeReason).toMatch(/^idle timeout/)
    expect(answering.conn.state).toBe('ready')
    expect(h.relay.metrics.clients).toBe(1)
  })

  it('caps the bytes of unfinished frames over all connections, closing the one that passes it', () => {
    const h = new Harness({ maxBufferedBytes: 200_000 })
    const victims = [h.connect(), h.connect(), h.connect(), h.connect()]
    const half = new Uint8Array(60_000)
    half.set([0x04, 0x00, 0x01, 0x00, 0x00]) // SendPacket announcing 65 536 bytes, then 59 995 of them
    for (const v of victims) h.relay.receive(v.conn, half, h.now)
    expect(victims.map((v) => v.conn.state)).toEqual(['ready', 'ready', 'ready', 'closed'])
    expect(victims[3]!.conn.closeReason).toMatch(/unfinished frames/)
    expect(h.relay.partialFrameBytes).toBe(180_000)
    h.relay.close(victims[0]!.conn, 'gone', h.now, 'normal')
    expect(h.relay.partialFrameBytes).toBe(120_000)
  })

  it('refuses a non-packet frame longer than a packet before buffering it', () => {
    const h = new Harness()
    const a = h.connect()
    h.relay.receive(a.conn, new Uint8Array([0x12, 0x00, 0x10, 0x00, 0x00]), h.now) // Ping announcing 1 MiB
    expect(a.conn.state).toBe('closed')
    expect(a.conn.closeReason).toMatch(/over the 65568-byte limit/)
  })
})

describe('Relay core: WireGuard handshake messages', () => {
  it('relays at most a burst of 10, then 5 a second, per source and destination, and pauses a source that keeps flooding', () => {
    const h = new Harness({ controlFrameRate: { perSecond: 50, burst: 20 } })
    const flooder = h.connect()
    const victim = h.connect()
    const honest = h.connect()
    let paused = 0
    flooder.conn.onPause = () => paused++
    const initiation = new Uint8Array(148)
    initiation[0] = 1
    for (let i = 0; i < 100; i++) flooder.session.send(victim.session.publicKey, initiation, h.now)
    h.pump()
    expect(packets(victim)).toHaveLength(10)
    expect(h.relay.metrics.drops.get('handshake_rate_limited')).toBe(20) // then its control budget ran out…
    expect(paused).toBe(1) // …and the relay stopped reading it
    honest.session.send(victim.session.publicKey, initiation, h.now)
    const data = new Uint8Array(148) // not a handshake (type 0): never limited this way
    for (let i = 0; i < 50; i++) honest.session.send(victim.session.publicKey, data, h.now)
    h.pump()
    expect(packets(victim)).toHaveLength(10 + 1 + 50)
  })
})
