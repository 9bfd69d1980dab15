import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { generateKeyPair } from '../crypto/index.ts'
import { PROTO_UDP, buildIp, parseAddress, parsePrefix } from '../wire/index.ts'
import { ManualClock, type Timer } from '../clock/clock.ts'
import { DataplaneCore } from './core.ts'
import { DataplaneDriver } from './driver.ts'
import type { UnderlayTransport } from './transport.ts'
import { MAX_IDLE_SLEEP } from './wakeup.ts'
import { MemoryOverlay } from './testing/memory-overlay.ts'

/** A manual clock that remembers when each timer was armed and for when. */
class RecordingClock extends ManualClock {
  readonly armed: Array<{ now: number; at: number }> = []
  override setTimer(at: number, callback: () => void): Timer {
    this.armed.push({ now: this.now(), at })
    return super.setTimer(at, callback)
  }
}

/** Lets every queued microtask (driver passes, link deliveries) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Advances the clock to `until`, firing timers in order and letting the drivers react to each. */
async function runUntil(clock: ManualClock, until: number): Promise<void> {
  await settle()
  while (clock.fireNext(until)) await settle()
  clock.set(until)
}

/** Two underlay ends joined back to back; deliveries are asynchronous, like a real network. */
function link() {
  const sent: Array<{ from: 'a' | 'b'; datagram: Uint8Array }> = []
  const ends = {} as Record<'a' | 'b', UnderlayTransport<string> & { deliver?: (e: string, d: Uint8Array[]) => void; stopped: boolean }>
  for (const side of ['a', 'b'] as const) {
    const other = side === 'a' ? 'b' : 'a'
    ends[side] = {
      stopped: false,
      start(deliver) {
        this.deliver = deliver
      },
      stop() {
        this.stopped = true
      },
      send(_endpoint, datagrams) {
        for (const datagram of datagrams) sent.push({ from: side, datagram })
        queueMicrotask(() => ends[other].deliver?.(side, datagrams))
      },
    }
  }
  return { ends, sent }
}

function packet(src: string, dst: string, body: string): Uint8Array {
  return buildIp({ src: parseAddress(src), dst: parseAddress(dst), protocol: PROTO_UDP, payload: new TextEncoder().encode(body) })
}

function node(clock: ManualClock, address: string) {
  const keys = generateKeyPair()
  const core = new DataplaneCore({ privateKey: keys.privateKey })
  const driver = new DataplaneDriver(core, { clock })
  const overlay = new MemoryOverlay()
  driver.addOverlay(overlay, [parsePrefix(address)])
  return { keys, core, driver, overlay }
}

/** A and B joined by a link; A keeps the tunnel alive with a 25 s persistent keepalive. */
function tunnelPair(clock: ManualClock) {
  const a = node(clock, '10.0.0.1/32')
  const b = node(clock, '10.0.0.2/32')
  const { ends, sent } = link()
  const underlayA = a.driver.addUnderlay(ends.a)
  const underlayB = b.driver.addUnderlay(ends.b)
  a.driver.withCore((core) => {
    const peer = core.addPeer({ publicKey: b.keys.publicKey, allowedIps: [parsePrefix('10.0.0.2/32')], persistentKeepalive: 25 })
    core.setPeerRoute(peer, underlayA, 'b')
  })
  b.driver.withCore((core) => {
    const peer = core.addPeer({ publicKey: a.keys.publicKey, allowedIps: [parsePrefix('10.0.0.1/32')] })
    core.setPeerRoute(peer, underlayB, 'a')
  })
  return { a, b, sent }
}

const KEEPALIVE_LENGTH = 32

describe('DataplaneDriver', () => {
  it('moves packets between overlays through a real tunnel pair', async () => {
    const clock = new ManualClock()
    const { a, b } = tunnelPair(clock)
    const packets = [packet('10.0.0.1', '10.0.0.2', 'one'), packet('10.0.0.1', '10.0.0.2', 'two')]
    a.overlay.inject(packets)
    await settle()
    expect(b.overlay.received).toEqual(packets)
    const reply = packet('10.0.0.2', '10.0.0.1', 'back')
    b.overlay.inject([reply])
    await settle()
    expect(a.overlay.received).toEqual([reply])
  })

  it('over 10 idle minutes with a 25 s keepalive, every timer wake-up has something due', async () => {
    const clock = new RecordingClock()
    const { a, b, sent } = tunnelPair(clock)
    a.overlay.inject([packet('10.0.0.1', '10.0.0.2', 'hello')])
    await settle()
    expect(b.overlay.received).toHaveLength(1)
    const before = a.driver.counters
    await runUntil(clock, 10 * 60_000)
    const after = a.driver.counters
    const wakeups = after.timerWakeups - before.timerWakeups
    const keepalives = sent.filter(({ from, datagram }) => from === 'a' && datagram[0] === 4 && datagram.length === KEEPALIVE_LENGTH).length
    const handshakes = sent.filter(({ from, datagram }) => from === 'a' && datagram[0] === 1).length

    // The tunnel stayed up: keepalives every 25 s, and rekeys kept B receiving them.
    expect(keepalives).toBeGreaterThanOrEqual(20)
    expect(handshakes).toBeGreaterThanOrEqual(4)
    // A always has a deadline, so it never fell back to the idle floor, and never woke in vain.
    expect(after.wastedWakeups).toBe(0)
    expect(after.idleWakeups).toBe(0)
    expect(after.stuckDeadlines).toBe(0)
    // One wake-up per keepalive plus the rekey / handshake / expiry timers that came due: ~30.
    expect(wakeups).toBeLessThanOrEqual(keepalives + handshakes + 6)
    expect(wakeups).toBeLessThanOrEqual(35)
    expect(b.driver.counters.wastedWakeups).toBe(0)
    // Never spins: every timer was armed strictly in the future, one at a time per driver.
    for (const { now, at } of clock.armed) expect(at).toBeGreaterThan(now)
    expect(clock.pending).toBe(2)
  })

  it('never wakes in vain or spins, whatever the traffic pattern', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 40_000 }), from: fc.constantFrom('a', 'b'), count: fc.integer({ min: 1, max: 3 }) }), { maxLength: 12 }),
        async (bursts) => {
          const clock = new RecordingClock()
          const { a, b } = tunnelPair(clock)
          let t = 0
          for (const burst of bursts) {
            t += burst.gap
            await runUntil(clock, t)
            const [side, src, dst] = burst.from === 'a' ? [a, '10.0.0.1', '10.0.0.2'] : [b, '10.0.0.2', '10.0.0.1']
            side.overlay.inject(Array.from({ length: burst.count }, () => packet(src, dst, 'x')))
          }
          await runUntil(clock, t + 200_000)
          for (const driver of [a.driver, b.driver]) {
            expect(driver.counters.wastedWakeups).toBe(0)
            expect(driver.counters.stuckDeadlines).toBe(0)
          }
          for (const { now, at } of clock.armed) expect(at).toBeGreaterThan(now)
          a.driver.stop()
          b.driver.stop()
        },
      ),
      { numRuns: 25 },
    )
  })

  it('with nothing scheduled, wakes every 5 s and never spins', async () => {
    const clock = new RecordingClock(1000)
    const core = new DataplaneCore({ privateKey: generateKeyPair().privateKey })
    const driver = new DataplaneDriver(core, { clock })
    expect(driver.wakeupAt).toBe(1000 + MAX_IDLE_SLEEP)
    await runUntil(clock, 1000 + 60_000)
    expect(driver.counters).toMatchObject({ timerWakeups: 12, idleWakeups: 12, wastedWakeups: 0, eventPasses: 12 })
    expect(clock.armed.map(({ now, at }) => at - now)).toEqual(new Array(13).fill(MAX_IDLE_SLEEP))
    expect(clock.pending).toBe(1)
    driver.stop()
    expect(clock.pending).toBe(0)
  })

  it('keeps the idle safety net under steady traffic instead of pushing it out forever', async () => {
    const clock = new ManualClock()
    const core = new DataplaneCore({ privateKey: generateKeyPair().privateKey })
    const driver = new DataplaneDriver(core, { clock })
    const overlay = new MemoryOverlay()
    driver.addOverlay(overlay, [parsePrefix('10.0.0.1/32')])
    for (let t = 0; t < 4900; t += 100) {
      await runUntil(clock, t)
      overlay.inject([packet('10.0.0.1', '10.0.0.1', 'loop')])
    }
    await settle()
    expect(overlay.received).toHaveLength(49)
    expect(driver.wakeupAt).toBe(MAX_IDLE_SLEEP)
  })

  it('uses a transport added while it is blocked at once, without waiting for the timer', async () => {
    const clock = new ManualClock()
    const a = node(clock, '10.0.0.1/32')
    const b = node(clock, '10.0.0.2/32')
    const peerOfA = a.driver.withCore((core) => core.addPeer({ publicKey: b.keys.publicKey, allowedIps: [parsePrefix('10.0.0.2/32')] }))
    const peerOfB = b.driver.withCore((core) => core.addPeer({ publicKey: a.keys.publicKey, allowedIps: [parsePrefix('10.0.0.1/32')] }))
    await runUntil(clock, 1000)
    const blockedUntil = a.driver.wakeupAt
    expect(blockedUntil).toBe(MAX_IDLE_SLEEP)

    // No route yet: the packet is dropped and counted.
    a.overlay.inject([packet('10.0.0.1', '10.0.0.2', 'lost')])
    await settle()
    expect(a.core.stats(peerOfA).drops['no-endpoint']).toBe(1)

    const { ends } = link()
    const underlayA = a.driver.addUnderlay(ends.a)
    const underlayB = b.driver.addUnderlay(ends.b)
    a.driver.withCore((core) => core.setPeerRoute(peerOfA, underlayA, 'b'))
    b.driver.withCore((core) => core.setPeerRoute(peerOfB, underlayB, 'a'))
    const timerWakeups = a.driver.counters.timerWakeups
    a.overlay.inject([packet('10.0.0.1', '10.0.0.2', 'found')])
    await settle()
    expect(clock.now()).toBe(1000)
    expect(a.driver.counters.timerWakeups).toBe(timerWakeups)
    expect(b.overlay.received.map((x) => new TextDecoder().decode(x.subarray(20)))).toEqual(['found'])

    // Removal takes effect at once too: the transport is stopped and no longer used.
    a.driver.removeUnderlay(underlayA)
    expect(ends.a.stopped).toBe(true)
    a.overlay.inject([packet('10.0.0.1', '10.0.0.2', 'gone')])
    await settle()
    expect(b.overlay.received).toHaveLength(1)
    expect(a.core.stats(peerOfA).drops['no-endpoint']).toBe(2)
    expect(() => a.driver.removeUnderlay(underlayA)).toThrow(expect.objectContaining({ code: 'unknown-transport' }))
  })

  it('reports a throwing transport and keeps serving the others', async () => {
    const clock = new ManualClock()
    const errors: unknown[] = []
    const core = new DataplaneCore({ privateKey: generateKeyPair().privateKey })
    const driver = new DataplaneDriver(core, { clock, onError: (error) => errors.push(error) })
    const broken = new MemoryOverlay()
    broken.send = () => {
      throw new Error('overlay exploded')
    }
    const healthy = new MemoryOverlay()
    driver.addOverlay(broken, [parsePrefix('10.0.0.1/32')])
    driver.addOverlay(healthy, [parsePrefix('10.0.0.3/32')])
    healthy.inject([packet('10.0.0.3', '10.0.0.1', 'to broken'), packet('10.0.0.3', '10.0.0.3', 'to healthy')])
    await settle()
    expect(errors.map((e) => (e as Error).message)).toEqual(['overlay exploded'])
    expect(healthy.received).toHaveLength(1)
    expect(driver.counters.errors).toBe(1)
  })

  it('hands disco datagrams to the handler, or counts them when there is none', async () => {
    const clock = new ManualClock()
    const seen: unknown[] = []
    const core = new DataplaneCore({ privateKey: generateKeyPair().privateKey })
    const driver = new DataplaneDriver(core, { clock, onDisco: (disco) => seen.push(disco) })
    const { ends } = link()
    const underlay = driver.addUnderlay(ends.a)
    driver.addUnderlay(ends.b)
    const disco = Uint8Array.of(0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac, 1, 2, 3)
    ends.b.send('x', [disco])
    await settle()
    expect(seen).toEqual([{ underlay, endpoint: 'b', datagram: disco }])
  })

  it('leaves no trace of a transport whose start throws', () => {
    const core = new DataplaneCore({ privateKey: generateKeyPair().privateKey })
    const driver = new DataplaneDriver(core, { clock: new ManualClock() })
    const failing = new MemoryOverlay()
    failing.start = () => {
      throw new Error('cannot start')
    }
    expect(() => driver.addOverlay(failing, [parsePrefix('10.0.0.1/32')])).toThrow('cannot start')
    expect(driver.overlayIds()).toEqual([])
    // The address is free again for a working overlay.
    const working = new MemoryOverlay()
    driver.addOverlay(working, [parsePrefix('10.0.0.1/32')])
    expect(driver.overlayIds()).toHaveLength(1)
    const { ends } = link()
    ends.a.start = () => {
      throw new Error('no socket')
    }
    expect(() => driver.addUnderlay(ends.a)).toThrow('no socket')
    expect(driver.underlayIds()).toEqual([])
  })

  it('refuses a non-positive idle sleep and operations after stop', () => {
    const core = new DataplaneCore({ privateKey: generateKeyPair().privateKey })
    expect(() => new DataplaneDriver(core, { clock: new ManualClock(), maxIdleSleep: 0 })).toThrow(/maxIdleSleep/)
    const driver = new DataplaneDriver(core, { clock: new ManualClock() })
    driver.stop()
    expect(() => driver.addOverlay(new MemoryOverlay(), [])).toThrow(expect.objectContaining({ code: 'stopped' }))
  })
})
