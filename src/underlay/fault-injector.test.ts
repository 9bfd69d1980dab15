import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock/clock.ts'
import type { UnderlayTransport } from '../dataplane/transport.ts'
import { FaultInjector, type FaultInjectorOptions } from './fault-injector.ts'

/** An underlay that records what it is asked to send and lets the test play received datagrams. */
class RecordingUnderlay implements UnderlayTransport<string> {
  sent: Array<{ endpoint: string; datagrams: Uint8Array[] }> = []
  deliver: ((endpoint: string, datagrams: Uint8Array[]) => void) | undefined
  stopped = false
  send(endpoint: string, datagrams: Uint8Array[]): void {
    this.sent.push({ endpoint, datagrams })
  }
  start(deliver: (endpoint: string, datagrams: Uint8Array[]) => void): void {
    this.deliver = deliver
  }
  stop(): void {
    this.stopped = true
  }
  endpointBytes(endpoint: string): Uint8Array {
    return new TextEncoder().encode(endpoint)
  }
  get sentBytes(): number[] {
    return this.sent.flatMap((s) => s.datagrams.map((d) => d[0]!))
  }
}

const numbered = (n: number, from = 0) => Array.from({ length: n }, (_, i) => new Uint8Array([from + i, 0xaa]))

function setup(options: Omit<FaultInjectorOptions, 'clock'>) {
  const clock = new ManualClock(1000)
  const inner = new RecordingUnderlay()
  const faults = new FaultInjector(inner, { ...options, clock })
  const received: Array<{ endpoint: string; datagrams: Uint8Array[] }> = []
  faults.start((endpoint, datagrams) => received.push({ endpoint, datagrams }))
  const runUntil = (t: number) => {
    while (clock.fireNext(t));
    clock.set(Math.max(clock.now(), t))
  }
  return { clock, inner, faults, received, runUntil }
}

describe('FaultInjector around an underlay transport', () => {
  it('with no faults passes each batch through unchanged, in the same call, both ways', () => {
    const { inner, faults, received } = setup({ seed: 1 })
    const batch = numbered(3)
    faults.send('peer', batch)
    expect(inner.sent).toEqual([{ endpoint: 'peer', datagrams: batch }])
    inner.deliver!('peer', numbered(2, 10))
    expect(received).toEqual([{ endpoint: 'peer', datagrams: numbered(2, 10) }])
    expect(faults.endpointBytes!('peer')).toEqual(new TextEncoder().encode('peer'))
  })

  it('drops about the configured fraction, and the same seed drops the same datagrams', () => {
    const run = (seed: number) => {
      const { inner, faults } = setup({ seed, send: { drop: 0.3 } })
      for (let i = 0; i < 100; i++)
        faults.send(
          'peer',
          numbered(10, 0).map((d) => new Uint8Array([i, d[0]!])),
        )
      return { kept: inner.sent.flatMap((s) => s.datagrams.map((d) => `${d[0]}.${d[1]}`)), stats: faults.stats.send }
    }
    const a = run(42)
    expect(a.stats.dropped).toBeGreaterThan(240)
    expect(a.stats.dropped).toBeLessThan(360)
    expect(a.stats.dropped + a.stats.passed).toBe(1000)
    expect(run(42).kept).toEqual(a.kept)
    expect(run(43).kept).not.toEqual(a.kept)
  })

  it('delays every datagram by delay + jitter on the clock, never early', () => {
    const { clock, inner, faults, runUntil } = setup({ seed: 7, send: { delayMs: 20, jitterMs: 5 } })
    faults.send('peer', numbered(50))
    expect(inner.sent).toEqual([])
    runUntil(1019.999)
    expect(inner.sent).toEqual([])
    runUntil(1025)
    expect(inner.sentBytes.sort((x, y) => x - y)).toEqual(numbered(50).map((d) => d[0]))
    expect(clock.pending).toBe(0)
    expect(faults.stats.send.delayed).toBe(50)
  })

  it('jitter larger than the spacing between datagrams reorders them', () => {
    const { inner, faults, runUntil } = setup({ seed: 3, receive: {}, send: { delayMs: 1, jitterMs: 10 } })
    for (let i = 0; i < 20; i++) faults.send('peer', [new Uint8Array([i])])
    runUntil(1100)
    const order = inner.sentBytes
    expect(order.slice().sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i))
    expect(order).not.toEqual(Array.from({ length: 20 }, (_, i) => i))
  })

  it('reorder holds a datagram back and delivers it right after the next one', () => {
    const { inner, faults } = setup({ seed: 5, send: { reorder: 1 } })
    faults.send('peer', [new Uint8Array([1])])
    expect(inner.sent).toEqual([])
    faults.send('peer', [new Uint8Array([2])])
    expect(inner.sentBytes).toEqual([2, 1])
    expect(faults.stats.send.reordered).toBe(1)
  })

  it('releases a held-back datagram on its own when nothing follows it', () => {
    const { inner, faults, runUntil } = setup({ seed: 5, send: { reorder: 1 } })
    faults.send('peer', [new Uint8Array([9])])
    runUntil(1100)
    expect(inner.sentBytes).toEqual([9])
  })

  it('duplicates into a separate buffer, so transferring one copy leaves the other intact', () => {
    const { inner, faults } = setup({ seed: 1, send: { duplicate: 1 } })
    faults.send('peer', [new Uint8Array([4, 5])])
    const [first, second] = inner.sent[0]!.datagrams
    expect(first).toEqual(second)
    expect(first!.buffer).not.toBe(second!.buffer)
    expect(faults.stats.send.duplicated).toBe(1)
  })

  it('corrupts by flipping exactly one bit', () => {
    const { inner, faults, received } = setup({ seed: 11, receive: { corrupt: 1 } })
    inner.deliver!('peer', [new Uint8Array(16)])
    const datagram = received[0]!.datagrams[0]!
    const bits = datagram.reduce((n, byte) => n + byte.toString(2).replace(/0/g, '').length, 0)
    expect(bits).toBe(1)
    expect(faults.stats.receive.corrupted).toBe(1)
  })

  it('setProfile partitions and heals a direction mid-stream', () => {
    const { inner, faults } = setup({ seed: 1 })
    faults.setProfile('send', { drop: 1 })
    faults.send('peer', numbered(5))
    expect(inner.sent).toEqual([])
    faults.setProfile('send', {})
    faults.send('peer', numbered(1, 7))
    expect(inner.sentBytes).toEqual([7])
  })

  it('keeps batches per endpoint when delayed datagrams for two endpoints come due together', () => {
    const { inner, faults, runUntil } = setup({ seed: 1, send: { delayMs: 10 } })
    faults.send('a', numbered(2))
    faults.send('b', numbered(1, 5))
    runUntil(1010)
    expect(inner.sent.map((s) => [s.endpoint, s.datagrams.length])).toEqual([
      ['a', 2],
      ['b', 1],
    ])
  })

  it('stop() cancels pending deliveries and stops the inner transport', () => {
    const { clock, inner, faults } = setup({ seed: 1, send: { delayMs: 10 } })
    faults.send('peer', numbered(3))
    faults.stop()
    expect(clock.pending).toBe(0)
    expect(inner.stopped).toBe(true)
  })

  it('rejects a probability outside 0..1 or a negative delay, naming the setting', () => {
    expect(() => setup({ seed: 1, send: { drop: 1.5 } })).toThrow(/fault send\.drop must be a probability from 0 to 1, got 1\.5/)
    expect(() => setup({ seed: 1, receive: { delayMs: -1 } })).toThrow(/fault receive\.delayMs must be/)
  })
})
