// Issue 17, the relay side: attacks against a real `burrow relay` process while a legitimate pair
// keeps exchanging byte-checked round trips. Each test asserts the pair keeps working (no
// disconnect, no stall past a bound generous for a loaded 2-core machine), the attack is contained,
// and the relay's resident memory stays bounded.
import { connect as tcpConnect, type Socket } from 'node:net'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { formatNodeKey, generateKeyPair, type KeyPair, parseKey, toHex } from '../src/crypto/index.ts'
import { CoordinationClient } from '../src/control/coordination-client.ts'
import { Burrow } from '../src/node.ts'
import { Tunnel } from '../src/tunnel/index.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { DerpClientSession } from '../src/underlay/derp/session.ts'
import { type Attacker, EchoPair, healthzMs, rssMb, startAttacker } from './helpers/attack.ts'
import { createAuthKey, type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from './helpers/relay-process.ts'

/** No round trip may take longer than this, even on a loaded 2-core machine. */
const STALL_BOUND_MS = 5000
/** The relay may grow by at most this much resident memory during an attack. */
const MEMORY_BOUND_MB = 150

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
afterAll(() => removeRelayDataDirs())

async function relay(args: string[] = []): Promise<RelayProcess> {
  const r = await startRelayProcess(args)
  cleanups.push(() => r.stop('SIGKILL'))
  return r
}

async function pair(r: RelayProcess): Promise<EchoPair> {
  const p = new EchoPair(r.url)
  cleanups.push(() => p.close())
  await p.start()
  return p
}

async function attacker(...args: Parameters<typeof startAttacker>): Promise<Attacker> {
  const a = await startAttacker(...args)
  cleanups.push(() => a.stop())
  return a
}

async function metric(r: RelayProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || (name.includes('{') ? l.startsWith(name) : l.startsWith(name + '{')))
  return Number(line?.split(' ').at(-1))
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs for `ms`, sampling the relay's RSS and /healthz; returns the worst of each. */
async function observe(r: RelayProcess, ms: number): Promise<{ peakRssMb: number; slowestHealthzMs: number }> {
  let peakRssMb = 0
  let slowestHealthzMs = 0
  const end = performance.now() + ms
  while (performance.now() < end) {
    peakRssMb = Math.max(peakRssMb, rssMb(r.proc.pid!))
    slowestHealthzMs = Math.max(slowestHealthzMs, await healthzMs(r.port))
    await sleep(250)
  }
  return { peakRssMb, slowestHealthzMs }
}

function expectPairHealthy(stats: ReturnType<EchoPair['take']>, minRoundTrips: number): void {
  expect(stats.errors).toEqual([])
  expect(stats.disconnects).toBe(0)
  expect(stats.longestStallMs).toBeLessThan(STALL_BOUND_MS)
  expect(stats.roundTrips).toBeGreaterThan(minRoundTrips)
}

/** A raw `Upgrade: DERP` socket logged in by hand, so the test can then misbehave. */
async function rawDerp(port: number, keys: KeyPair = generateKeyPair()): Promise<{ socket: Socket; session: DerpClientSession }> {
  const socket = tcpConnect({ host: '127.0.0.1', port })
  socket.on('error', () => {}) // the relay may close it on purpose
  cleanups.push(() => socket.destroy())
  const session = new DerpClientSession({ privateKey: keys.privateKey, pingIntervalMs: 1e9 }, 0)
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n\r\n`)
  const onData = (data: Buffer) => {
    session.receive(new Uint8Array(data), 0)
    for (let out = session.takeOutput(); out; out = session.takeOutput()) socket.write(out)
  }
  socket.on('data', onData)
  await waitFor('raw login', () => session.state === 'ready')
  socket.off('data', onData)
  return { socket, session }
}

describe('relay under a Ping flood (issue 17, finding 1)', () => {
  it('Ping flooders that read (Upgrade: DERP and WebSocket) and one that never reads stall neither the pair nor /healthz, and memory stays bounded', async () => {
    const r = await relay()
    const p = await pair(r)
    await sleep(1000)
    p.take()
    const baseline = rssMb(r.proc.pid!)
    const reading = await attacker('ping', r.url)
    const overWebSocket = await attacker('ping-ws', r.url)
    const deaf = await attacker('ping-noread', r.url)
    const seen = await observe(r, 10_000)
    expectPairHealthy(p.take(), 20)
    expect(seen.slowestHealthzMs).toBeLessThan(STALL_BOUND_MS)
    expect(seen.peakRssMb - baseline).toBeLessThan(MEMORY_BOUND_MB)
    // The floods were real: each attacker wrote far more Pings than the relay answered.
    expect(reading.sent).toBeGreaterThan(10_000)
    expect(deaf.sent).toBeGreaterThan(10_000)
    expect(overWebSocket.sent).toBeGreaterThan(10_000)
    expect(await metric(r, 'burrow_relay_clients')).toBeGreaterThanOrEqual(2)
  }, 90_000)
})

describe('WireGuard handshake flood (issue 17, finding 7)', () => {
  /** Two Burrow nodes on the relay, and a MAC1-valid initiation to the victim forged by a stranger key. */
  async function victimAndPeer(r: RelayProcess): Promise<{ laptop: Burrow; victimKey: Uint8Array; initiation: Uint8Array }> {
    const authKey = createAuthKey(r.dataDir, '--reusable')
    const controlURL = `http://127.0.0.1:${r.port}`
    const victim = await Burrow.start({ controlURL, authKey, hostname: 'victim', storage: 'memory' })
    cleanups.push(() => victim.close())
    const laptop = await Burrow.start({ controlURL, authKey, hostname: 'laptop', storage: 'memory' })
    cleanups.push(() => laptop.close())
    await waitFor('the victim online', () => laptop.peers().some((peer) => peer.hostname === 'victim' && peer.online), 30_000)
    await laptop.ping('victim', { timeout: 10_000 })
    // Every member knows every node key, so it can make initiations with a valid MAC1.
    const victimKey = parseKey(victim.nodeKey)
    const forger = new Tunnel({ privateKey: generateKeyPair().privateKey })
    const [initiation] = forger.send(forger.addPeer({ publicKey: victimKey }), new Uint8Array(20), 0)
    return { laptop, victimKey, initiation: initiation! }
  }

  /** Pings the victim back to back for `ms`; the count and the slowest. */
  async function pingFor(laptop: Burrow, ms: number): Promise<{ pings: number; slowest: number }> {
    let slowest = 0
    let pings = 0
    const end = performance.now() + ms
    while (performance.now() < end) {
      slowest = Math.max(slowest, await laptop.ping('victim', { timeout: STALL_BOUND_MS }))
      pings++
    }
    return { pings, slowest }
  }

  it("the relay passes a node at most a burst and 5 a second of one member's handshake messages, pausing the flooder, and the pair keeps pinging", async () => {
    const r = await relay()
    const { laptop, victimKey, initiation } = await victimAndPeer(r)
    const flooder = await attacker('packets', r.url, toHex(victimKey), toHex(initiation))
    const { pings, slowest } = await pingFor(laptop, 8000)
    expect(pings).toBeGreaterThan(20)
    expect(slowest).toBeLessThan(STALL_BOUND_MS)
    const limited = await metric(r, 'burrow_relay_packets_dropped_total{reason="handshake_rate_limited"}')
    expect(limited).toBeGreaterThan(100)
    // Paused by its control budget, the flooder could not even write much: its socket stayed full.
    expect(flooder.sent).toBeLessThan(200_000)
  }, 120_000)

  it("with the relay's handshake limit off, the node under load itself answers one flooding member about 20 times a second, not once per initiation", async () => {
    const r = await relay(['--handshake-rate', '0'])
    const { laptop, victimKey, initiation } = await victimAndPeer(r)
    const started = performance.now()
    const flooder = await attacker('packets', r.url, toHex(victimKey), toHex(initiation))
    await sleep(8000)
    const seconds = (performance.now() - started) / 1000
    await flooder.stop()
    expect(flooder.sent).toBeGreaterThan(5000)
    // wireguard-go's limit: a burst of 5, then 20 per second per source (generous slack for timing).
    expect(flooder.received).toBeLessThan(10 + 1.5 * 20 * seconds)
    expect(flooder.received).toBeGreaterThan(0) // it was under load and did answer some
    // Once the flood stops, the pair works again at once.
    const { pings, slowest } = await pingFor(laptop, 2000)
    expect(pings).toBeGreaterThan(5)
    expect(slowest).toBeLessThan(STALL_BOUND_MS)
  }, 120_000)
})

describe('connections, timeouts and partial frames (issue 17, finding 9)', () => {
  it('refuses connections past the per-address limit with a clear 503 while the pair keeps working', async () => {
    const r = await relay(['--max-connections-per-ip', '20'])
    const p = await pair(r)
    const answers: string[] = []
    const held: Socket[] = []
    for (let i = 0; i < 30; i++) {
      const s = tcpConnect({ host: '127.0.0.1', port: r.port })
      held.push(s)
      cleanups.push(() => s.destroy())
      let text = ''
      s.on('data', (d: Buffer) => (text += d.toString()))
      s.on('close', () => answers.push(text))
      s.on('error', () => {})
    }
    await waitFor('the refused connections to be answered', () => answers.length >= 12, 20_000)
    expect(answers.filter((a) => a.startsWith('HTTP/1.1 503 ')).length).toBeGreaterThanOrEqual(12)
    expect(answers.find((a) => a.startsWith('HTTP/1.1 503 '))).toMatch(/limit of 20 connections per address/)
    await sleep(1000)
    expectPairHealthy(p.take(), 5)
    for (const s of held) s.destroy() // room again, for the metrics request
    await waitFor('the slots to free up', () => held.every((s) => s.destroyed))
    await sleep(200)
    expect(await metric(r, 'burrow_relay_connections_refused_total')).toBeGreaterThanOrEqual(12)
  }, 60_000)

  it('closes a slowloris connection that never finishes its headers within the header timeout', async () => {
    const r = await relay()
    const s = tcpConnect({ host: '127.0.0.1', port: r.port })
    cleanups.push(() => s.destroy())
    s.on('error', () => {})
    const start = performance.now()
    const closed = new Promise<number>((resolve) => s.once('close', () => resolve(performance.now() - start)))
    s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    const drip = setInterval(() => s.write('X-Slow: 1\r\n'), 1000)
    cleanups.push(() => clearInterval(drip))
    // Default header timeout 10 s; Node's own default let this connection live for over a minute.
    expect(await closed).toBeLessThan(25_000)
  }, 60_000)

  it('drops a logged-in client that vanished without a close once the idle timeout passes', async () => {
    const r = await relay(['--idle-timeout', '3000'])
    const p = await pair(r)
    const vanished = await rawDerp(r.port)
    vanished.socket.pause() // it neither reads nor answers the relay's Ping: as if its host went away
    expect(await metric(r, 'burrow_relay_clients')).toBe(3)
    await waitFor('the vanished client to be dropped', () => r.logs.some((l) => String(l.reason).startsWith('idle timeout')), 20_000)
    expect(await metric(r, 'burrow_relay_clients')).toBe(2)
    // The legit pair exchanges packets, so it is never idle.
    expectPairHealthy(p.take(), 5)
  }, 60_000)

  it('500 connections each holding half of a huge frame do not grow the relay by hundreds of MB', async () => {
    const r = await relay()
    const p = await pair(r)
    const baseline = rssMb(r.proc.pid!)
    const sockets = await Promise.all(Array.from({ length: 50 }, () => rawDerp(r.port)))
    const more = await Promise.all(Array.from({ length: 450 }, () => rawDerp(r.port)))
    const half = new Uint8Array(1 << 20)
    half.set([0x12, 0x00, 0x10, 0x00, 0x00]) // a Ping announcing 1 MiB, and then all but a byte of it
    for (const { socket } of [...sockets, ...more]) socket.write(half)
    const seen = await observe(r, 5000)
    expect(seen.peakRssMb - baseline).toBeLessThan(MEMORY_BOUND_MB)
    expectPairHealthy(p.take(), 5)
  }, 120_000)

  it('releases an Upgrade: DERP client at once when it closes its side cleanly', async () => {
    const r = await relay()
    const p = await pair(r)
    const leaving = await rawDerp(r.port)
    expect(await metric(r, 'burrow_relay_clients')).toBe(3)
    leaving.socket.end() // FIN; the socket stays open for reading, as a half-closing client's would
    await waitFor('the relay to let it go', () => r.logs.some((l) => l.msg === 'connection closed' && String(l.client).length > 0 && l.kind === 'normal'), 5000)
    expect(await metric(r, 'burrow_relay_clients')).toBe(2)
    expectPairHealthy(p.take(), 1)
  }, 60_000)
})

describe('queue fairness and verification for life (issue 17, finding 10)', () => {
  it('junk flooded at a slow-reading node does not evict the packets its real peer sends', async () => {
    const r = await relay()
    const bKeys = generateKeyPair()
    const aKeys = generateKeyPair()
    const b = await rawDerp(r.port, bKeys)
    const a = new DerpConnection({ url: r.url, privateKey: aKeys.privateKey, dial: nodeWebSocketDialer(), backoff: { baseMs: 50, capMs: 1000 } }).start()
    cleanups.push(() => a.close())
    await waitFor('a to log in', () => a.isConnected)
    await attacker('packets', r.url, toHex(bKeys.publicKey), toHex(new Uint8Array(1200).fill(0xee)))
    // b reads in bursts, as a node on a slow link would: 300 ms reading, 300 ms not.
    const fromA: number[] = []
    const aName = formatNodeKey(aKeys.publicKey)
    b.socket.on('data', (data: Buffer) => {
      b.session.receive(new Uint8Array(data), 0)
      for (let e = b.session.takeEvent(); e; e = b.session.takeEvent()) {
        if (e.type === 'packet' && formatNodeKey(e.source) === aName) fromA.push(new DataView(e.packet.buffer, e.packet.byteOffset).getUint32(0))
      }
    })
    const toggle = setInterval(() => (b.socket.isPaused() ? b.socket.resume() : b.socket.pause()), 300)
    cleanups.push(() => clearInterval(toggle))
    for (let seq = 0; seq < 100; seq++) {
      const packet = new Uint8Array(200).fill(seq)
      new DataView(packet.buffer).setUint32(0, seq)
      a.send(bKeys.publicKey, packet)
      await sleep(50)
    }
    await waitFor('b to receive what a sent', () => fromA.length >= 100 || fromA.at(-1) === 99, 20_000).catch(() => {})
    expect(fromA).toEqual(Array.from({ length: 100 }, (_, i) => i))
  }, 90_000)

  it('with --verify-clients, an ephemeral node that leaves is dropped from DERP and stops relaying', async () => {
    const r = await relay(['--verify-clients', '--reverify-interval', '500'])
    const authKey = createAuthKey(r.dataDir, '--reusable', '--ephemeral')
    const member = (pairKeys: KeyPair, hostname: string) => {
      const client = new CoordinationClient({
        url: `http://127.0.0.1:${r.port}`,
        nodeKeyPair: pairKeys,
        discoPublicKey: generateKeyPair().publicKey,
        hostname,
        authKey,
        backoffBaseMs: 50,
        backoffCapMs: 500,
      })
      client.start()
      cleanups.push(() => client.stop())
      return client
    }
    const stayKeys = generateKeyPair()
    const leaveKeys = generateKeyPair()
    await member(stayKeys, 'stays').ready()
    const leaving = member(leaveKeys, 'leaves')
    await leaving.ready()
    const derp = (keys: KeyPair) => {
      const c = new DerpConnection({ url: r.url, privateKey: keys.privateKey, dial: nodeWebSocketDialer(), backoff: { baseMs: 50, capMs: 500 } }).start()
      cleanups.push(() => c.close())
      return c
    }
    const stays = derp(stayKeys)
    const leaves = derp(leaveKeys)
    await waitFor('both to log in to DERP', () => stays.isConnected && leaves.isConnected)
    let fromLeaver = 0
    stays.on('packet', () => fromLeaver++)
    leaves.send(stayKeys.publicKey, new Uint8Array([1]))
    await waitFor('a packet while registered', () => fromLeaver === 1)

    leaving.stop() // an ephemeral node that leaves is removed from the coordination store
    await waitFor('the relay to drop the removed node', () => r.logs.some((l) => l.reason === 'client no longer admitted'), 15_000)
    const before = fromLeaver
    for (let i = 0; i < 20; i++) leaves.send(stayKeys.publicKey, new Uint8Array([2]))
    await sleep(2000)
    expect(fromLeaver).toBe(before)
    expect(stays.isConnected).toBe(true)
  }, 90_000)
})
