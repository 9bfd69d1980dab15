// The drivers (DerpConnection, DerpUnderlay) over in-memory streams to the real relay core,
// clocked by fake timers: reconnects, the pending queue and pings. The relay pool that holds
// several of them (home and peers' regions) is src/agent/relay-pool.ts.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { equalBytes, generateKeyPair } from '../../crypto/index.ts'
import { ManualClock, wallClock } from '../../clock/clock.ts'
import { DerpConnection } from './connection.ts'
import type { DerpDialer, DerpStreamHandlers } from './dialer.ts'
import { encodeFrame, FrameType } from './frames.ts'
import { MemoryNetwork } from './testing/memory-network.ts'
import { DerpUnderlay } from './underlay.ts'

const settle = () => vi.advanceTimersByTimeAsync(0)

describe('DERP drivers over an in-memory network', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('reconnects with backoff, queues packets meanwhile (bounded, drop-oldest) and then delivers them', async () => {
    const net = new MemoryNetwork()
    const a = generateKeyPair()
    const b = generateKeyPair()
    const options = { dial: net.dial, url: 'http://r1/derp', clock: wallClock, backoff: { baseMs: 1000, random: () => 0.5 }, pendingLimit: 3 }
    const ca = new DerpConnection({ ...options, privateKey: a.privateKey }).start()
    const cb = new DerpConnection({ ...options, privateKey: b.privateKey }).start()
    const got: number[] = []
    cb.on('packet', (_s, p) => got.push(p[0]!))
    const disconnects: Array<[string, number]> = []
    ca.on('disconnected', (reason, retryIn) => disconnects.push([reason, retryIn]))
    await settle()
    expect(ca.isConnected && cb.isConnected).toBe(true)

    net.down = true
    net.links.find((l) => l.conn.key && equalBytes(l.conn.key, a.publicKey))!.close('relay restarted')
    await settle()
    expect(disconnects).toEqual([['relay restarted', 500]])
    for (let i = 1; i <= 5; i++) ca.send(b.publicKey, new Uint8Array([i]))
    expect(ca.pendingCount).toBe(3)
    expect(ca.stats.droppedWhileReconnecting).toBe(2)

    await vi.advanceTimersByTimeAsync(500) // first retry: refused
    expect(disconnects[1]).toEqual(['connection refused', 1000])
    net.down = false
    await vi.advanceTimersByTimeAsync(1000)
    expect(ca.isConnected).toBe(true)
    expect(ca.stats.connects).toBe(2)
    expect(got).toEqual([3, 4, 5])
    ca.close()
    cb.close()
  })

  it('pings a silent relay and reconnects when it does not answer', async () => {
    const net = new MemoryNetwork()
    const a = generateKeyPair()
    const ca = new DerpConnection({ dial: net.dial, url: 'http://r1/derp', privateKey: a.privateKey, clock: wallClock, pingIntervalMs: 5000, pingTimeoutMs: 2000 }).start()
    await settle()
    const relay = net.relay('http://r1/derp')
    // The relay answers pings: the connection stays up across several intervals.
    await vi.advanceTimersByTimeAsync(20_000)
    expect(ca.isConnected).toBe(true)
    expect(ca.stats.connects).toBe(1)
    // A relay that swallows everything: the ping goes unanswered.
    relay.receive = () => {}
    const reasons: string[] = []
    ca.on('disconnected', (reason) => reasons.push(reason))
    await vi.advanceTimersByTimeAsync(7000)
    expect(reasons[0]).toMatch(/relay stopped responding/)
    ca.close()
  })

  it('is a dataplane underlay transport whose endpoint is the peer node key', async () => {
    const net = new MemoryNetwork()
    const a = generateKeyPair()
    const b = generateKeyPair()
    const ca = new DerpConnection({ dial: net.dial, url: 'http://r1/derp', privateKey: a.privateKey, clock: wallClock }).start()
    const cb = new DerpConnection({ dial: net.dial, url: 'http://r1/derp', privateKey: b.privateKey, clock: wallClock }).start()
    await settle()
    const ua = new DerpUnderlay(ca)
    const ub = new DerpUnderlay(cb)
    const batches: Array<[Uint8Array, number[]]> = []
    ub.start((endpoint, datagrams) => batches.push([endpoint, datagrams.map((d) => d[0]!)]))
    ua.start(() => {})
    ua.send(b.publicKey, [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])])
    await settle()
    expect(batches).toEqual([[a.publicKey, [1, 2, 3]]])
    expect(ub.endpointBytes(a.publicKey)).toEqual(a.publicKey)
    ub.stop()
    ua.send(b.publicKey, [new Uint8Array([4])])
    await settle()
    expect(batches).toHaveLength(1)
    ca.close()
    cb.close()
  })

  it('runs on a ManualClock: pings at the manual instants and reconnects after the manual backoff', async () => {
    vi.useRealTimers()
    const clock = new ManualClock(0)
    const flush = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => queueMicrotask(resolve))
    }
    /** Fires every timer due by `until`, letting the in-memory streams deliver in between. */
    const advance = async (until: number): Promise<void> => {
      await flush()
      while (clock.fireNext(until)) await flush()
      clock.set(until)
      await flush()
    }
    const net = new MemoryNetwork()
    const ca = new DerpConnection({
      dial: net.dial,
      url: 'http://r1/derp',
      privateKey: generateKeyPair().privateKey,
      clock,
      pingIntervalMs: 5000,
      pingTimeoutMs: 2000,
      backoff: { baseMs: 1000, random: () => 0.5 },
    }).start()
    await advance(0)
    expect(ca.isConnected).toBe(true)
    await advance(20_000)
    expect(ca.stats.connects).toBe(1)
    const relay = net.relay('http://r1/derp')
    const receive = relay.receive
    relay.receive = () => {}
    const events: string[] = []
    ca.on('disconnected', (reason, retryIn) => events.push(`${clock.now()} ${reason} retry ${retryIn}`))
    ca.on('connected', () => events.push(`${clock.now()} connected`))
    // The next ping is due by 25 s and unanswered 2 s later; the retry comes 500 ms after that.
    await advance(27_000)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatch(/relay stopped responding.* retry 500$/)
    relay.receive = receive
    const lostAt = Number(events[0]!.split(' ')[0])
    expect(lostAt).toBeLessThanOrEqual(27_000)
    await advance(lostAt + 499)
    expect(ca.stats.connects).toBe(1)
    await advance(lostAt + 500)
    expect(events[1]).toBe(`${lostAt + 500} connected`)
    expect(ca.stats.connects).toBe(2)
    ca.close()
    expect(clock.pending).toBe(0)
  })
  it('holdLogin: stays logged out through a reconnect until login(), which sends ClientInfo at once, not at the end of the task', async () => {
    const writes: Uint8Array[] = []
    let handlers: DerpStreamHandlers | undefined
    let dials = 0
    const dial: DerpDialer = (_url, h) => {
      dials++
      handlers = h
      return { send: (bytes) => writes.push(bytes.slice()), bufferedAmount: 0, close() {} }
    }
    const relay = generateKeyPair()
    const connection = new DerpConnection({
      url: 'http://r1/derp',
      privateKey: generateKeyPair().privateKey,
      dial,
      clock: wallClock,
      backoff: { baseMs: 100, random: () => 0.5 },
      holdLogin: true,
    }).start()
    handlers!.onClose('relay restarted')
    await vi.advanceTimersByTimeAsync(50)
    expect(dials).toBe(2)
    handlers!.onData(encodeFrame({ type: 'server-key', key: relay.publicKey }))
    await settle()
    expect(writes).toEqual([])
    expect(connection.isLoginHeld).toBe(true)
    connection.login()
    // Synchronously: before any microtask or timer ran.
    expect(writes.map((w) => w[0])).toEqual([FrameType.ClientInfo])
    expect(connection.isLoginHeld).toBe(false)
    connection.close()
  })
})
