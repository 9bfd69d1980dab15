// The relay pool over in-memory streams to real relay cores, clocked by fake timers: the home
// region is kept and preferred, a peer's region is opened for its first peer and closed after
// its last, and moving home moves NotePreferred.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { generateKeyPair } from '../crypto/index.ts'
import type { RelayRegion } from '../control/control-plane.ts'
import { DerpConnection } from '../underlay/derp/connection.ts'
import { MemoryNetwork } from '../underlay/derp/testing/memory-network.ts'
import { RelayError, RelayPool } from './relay-pool.ts'

const settle = () => vi.advanceTimersByTimeAsync(0)
const url = (id: number): string => `http://r${id}/derp`
const region = (id: number): RelayRegion => ({ id, code: `r${id}`, name: `r${id}`, nodes: [{ name: `${id}a`, url: url(id) }] })

describe('RelayPool', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('keeps the home relay preferred and holds a peer region only while a peer is routed through it', async () => {
    const net = new MemoryNetwork()
    const me = generateKeyPair()
    const peer = generateKeyPair()
    const attached: string[] = []
    const detached: number[] = []
    let homeChanges = 0
    const pool = new RelayPool({
      dial: net.dial,
      privateKey: me.privateKey,
      attach: (connection) => attached.push(connection.url),
      detach: (underlay) => detached.push(underlay),
      onHomeChange: () => homeChanges++,
    })
    pool.setRelayMap({
      regions: new Map([
        [1, region(1)],
        [2, region(2)],
      ]),
    })
    const home = pool.setHome(1)
    await settle()
    expect(net.relay(url(1)).metrics.homeClients).toBe(1)
    expect(home.connection.isConnected).toBe(true)
    expect(homeChanges).toBe(1)
    expect(attached).toEqual([url(1)])

    const peerConn = new DerpConnection({ dial: net.dial, url: url(2), privateKey: peer.privateKey }).start()
    const got: number[] = []
    peerConn.on('packet', (_s, p) => got.push(p[0]!))
    const far = pool.acquire(2)
    pool.acquire(2)
    far.connection.send(peer.publicKey, new Uint8Array([1]))
    await settle()
    expect(got).toEqual([1])
    expect(net.relay(url(2)).metrics.homeClients).toBe(0)
    expect(pool.underlays()).toEqual(new Set([home.underlay, far.underlay]))

    pool.release(2)
    expect(pool.linkOf(2)).toBe(far)
    pool.release(2)
    expect(pool.linkOf(2)).toBeUndefined()
    expect(detached).toEqual([far.underlay])
    // The home region stays without any peer.
    pool.release(1)
    expect(pool.home).toBe(home)

    // Moving home: the new relay hears NotePreferred, the old one (unused) is closed.
    const next = pool.setHome(2)
    await settle()
    expect(net.relay(url(2)).metrics.homeClients).toBe(1)
    expect(net.relay(url(1)).metrics.homeClients).toBe(0)
    expect(pool.linkOf(1)).toBeUndefined()
    expect(pool.home).toBe(next)
    pool.close()
    expect(pool.home).toBeUndefined()
    peerConn.close()
  })

  it('refuses a region the relay map does not have, opening nothing', () => {
    const pool = new RelayPool({ dial: new MemoryNetwork().dial, privateKey: generateKeyPair().privateKey, attach: () => 0, detach: () => {} })
    expect(() => pool.acquire(9)).toThrow(RelayError)
    expect(() => pool.setHome(9)).toThrow('relay region 9 is not in the relay map')
    expect(pool.underlays().size).toBe(0)
  })

  it("moves a link to the region's next relay when its relay dies, keeping the underlay, and reports a region whose relays all failed", async () => {
    const net = new MemoryNetwork()
    const me = generateKeyPair()
    const peer = generateKeyPair()
    const down: number[] = []
    const moves: string[] = []
    const pool = new RelayPool({
      dial: net.dial,
      privateKey: me.privateKey,
      attach: () => 7,
      detach: () => {},
      onRegionDown: (r) => down.push(r),
      onRelayChange: (_r, u) => moves.push(u),
    })
    const meshed: RelayRegion = {
      id: 1,
      code: 'r1',
      name: 'r1',
      nodes: [
        { name: '1a', url: 'http://r1a/derp' },
        { name: '1b', url: 'http://r1b/derp' },
      ],
    }
    pool.setRelayMap({
      regions: new Map([
        [1, meshed],
        [2, region(2)],
      ]),
    })
    const home = pool.setHome(1)
    await settle()
    expect(home.connection.url).toBe('http://r1a/derp')
    expect(net.relay('http://r1a/derp').metrics.homeClients).toBe(1)

    net.kill('http://r1a/derp')
    await settle()
    // The same link (same underlay) now logged in to r1b, still preferred there; no region-down yet.
    expect(pool.home).toBe(home)
    expect(home.underlay).toBe(7)
    expect(home.connection.url).toBe('http://r1b/derp')
    expect(home.connection.isConnected).toBe(true)
    expect(net.relay('http://r1b/derp').metrics.homeClients).toBe(1)
    expect(moves).toEqual(['http://r1b/derp'])
    expect(down).toEqual([])
    // Packets flow through the new relay.
    const peerConn = new DerpConnection({ dial: net.dial, url: 'http://r1b/derp', privateKey: peer.privateKey }).start()
    const got: number[] = []
    peerConn.on('packet', (_s, p) => got.push(p[0]!))
    await settle()
    home.connection.send(peer.publicKey, new Uint8Array([42]))
    await settle()
    expect(got).toEqual([42])
    peerConn.close()

    // Both relays of region 1 dead: region 1 is reported down once both have failed in a row,
    // once per streak, and the link keeps retrying them at the backoff's pace (no tight loop).
    net.kill('http://r1b/derp')
    await settle()
    expect(down).toEqual([1])
    await vi.advanceTimersByTimeAsync(60_000)
    expect(down).toEqual([1])
    expect(home.connection.isConnected).toBe(false)
    net.revive('http://r1a/derp')
    await vi.advanceTimersByTimeAsync(60_000)
    expect(home.connection.isConnected).toBe(true)
    expect(home.connection.url).toBe('http://r1a/derp')

    // A single-relay region is down as soon as its relay drops.
    pool.acquire(2)
    await settle()
    net.kill(url(2))
    await settle()
    expect(down).toContain(2)
    pool.close()
  })

  it('preconnect dials the expected relay at once, holds the login until the relay map makes it home, and that link keeps the one connection', async () => {
    const net = new MemoryNetwork()
    const attached: string[] = []
    const pool = new RelayPool({ dial: net.dial, privateKey: generateKeyPair().privateKey, attach: (connection) => attached.push(connection.url), detach: () => {} })
    pool.preconnect(url(1))
    await settle()
    expect(net.links.map((l) => l.url)).toEqual([url(1)])
    // The relay sent its ServerKey and waits for ClientInfo: no login before the node is registered.
    expect(net.links[0]!.conn.state).toBe('login')
    expect(pool.home).toBeUndefined()
    expect(attached).toEqual([])

    pool.setRelayMap({ regions: new Map([[1, region(1)]]) })
    const home = pool.setHome(1)
    pool.dropEarly()
    await settle()
    expect(home.connection.isConnected).toBe(true)
    expect(net.links[0]!.conn.state).toBe('ready')
    expect(net.links.map((l) => l.url)).toEqual([url(1)])
    expect(attached).toEqual([url(1)])
    expect(net.relay(url(1)).metrics.homeClients).toBe(1)
    pool.close()
  })

  it('a preconnect to a relay the relay map does not make home is closed by dropEarly, and home is dialed as usual', async () => {
    const net = new MemoryNetwork()
    const pool = new RelayPool({ dial: net.dial, privateKey: generateKeyPair().privateKey, attach: () => 0, detach: () => {} })
    pool.preconnect(url(7))
    await settle()
    pool.setRelayMap({ regions: new Map([[1, region(1)]]) })
    const home = pool.setHome(1)
    pool.dropEarly()
    await settle()
    expect(net.links.map((l) => [l.url, l.conn.state])).toEqual([
      [url(7), 'closed'],
      [url(1), 'ready'],
    ])
    expect(home.connection.url).toBe(url(1))
    pool.close()
  })
})
