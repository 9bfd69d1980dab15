import { describe, expect, it } from 'vitest'
import { SendQueue } from './send-queue.ts'

function frame(length: number, fill: number): Uint8Array {
  return new Uint8Array(length).fill(fill)
}

describe('SendQueue slabs', () => {
  it('hands out frames queued back to back as one message, bytes in order', () => {
    const q = new SendQueue(100, 1 << 20)
    for (let i = 1; i <= 5; i++) q.pushData(frame(100, i))
    const out = q.take(64 * 1024)!
    expect(out.length).toBe(500)
    expect([out[0], out[100], out[499]]).toEqual([1, 2, 5])
    expect(q.isEmpty).toBe(true)
    expect(q.bytes).toBe(0)
  })

  it('never rewrites bytes already taken (a socket may still be writing them)', () => {
    const q = new SendQueue(1000, 1 << 20)
    q.pushData(frame(1000, 1))
    const taken = q.take(64 * 1024)!
    for (let i = 0; i < 200; i++) q.pushData(frame(1000, 2))
    expect(taken.every((b) => b === 1)).toBe(true)
  })

  it('splits messages at the size limit and where a new slab starts', () => {
    const q = new SendQueue(1000, 1 << 20)
    for (let i = 0; i < 100; i++) q.pushData(frame(1457, i))
    const lengths: number[] = []
    const firsts: number[] = []
    for (let out = q.take(64 * 1024); out; out = q.take(64 * 1024)) {
      expect(out.length).toBeLessThanOrEqual(64 * 1024)
      expect(out.length % 1457).toBe(0)
      lengths.push(out.length)
      for (let offset = 0; offset < out.length; offset += 1457) firsts.push(out[offset]!)
    }
    expect(firsts).toEqual(Array.from({ length: 100 }, (_, i) => i))
    expect(lengths.reduce((a, b) => a + b)).toBe(100 * 1457)
  })

  it('reserveData reports evictions and refuses a frame that can never fit', () => {
    const q = new SendQueue(2, 1000)
    const fill = (value: number) => {
      const offset = q.reserveData(10)
      q.slab.fill(value, offset, offset + 10)
    }
    fill(1)
    fill(2)
    expect(q.evicted).toBe(0)
    fill(3)
    expect(q.evicted).toBe(1)
    expect(q.reserveData(1001)).toBe(-1)
    expect(q.packets).toBe(2)
    const out = q.take(1000)!
    expect([...out]).toEqual([...frame(10, 2), ...frame(10, 3)])
  })
})

describe('SendQueue control ring', () => {
  it('keeps control frames in order and refuses them once the ring is full, without growing', () => {
    const q = new SendQueue(10, 10_000, 4)
    for (let i = 0; i < 4; i++) expect(q.pushControl(frame(3, i))).toBe(true)
    expect(q.pushControl(frame(3, 9))).toBe(false)
    expect(q.controlFrames).toBe(4)
    expect(q.bytes).toBe(12)
    expect([...q.take(6)!]).toEqual([0, 0, 0, 1, 1, 1])
    expect(q.pushControl(frame(3, 4))).toBe(true)
    expect(q.pushControl(frame(3, 5))).toBe(true)
    const rest: number[] = []
    for (let out = q.take(3); out; out = q.take(3)) rest.push(out[0]!)
    expect(rest).toEqual([2, 3, 4, 5])
    expect(q.isEmpty).toBe(true)
  })

  it('stays O(1) per frame: a million push/take pairs through a small ring finish quickly', () => {
    const q = new SendQueue(10, 10_000, 8)
    const ping = frame(13, 1)
    let taken = 0
    for (let i = 0; i < 1_000_000; i++) {
      q.pushControl(ping)
      if (i % 4 === 3) while (q.take(64)) taken++
    }
    expect(taken).toBeGreaterThan(100_000)
    expect(q.controlFrames).toBeLessThanOrEqual(8)
  })
})

describe('SendQueue fairness between sources', () => {
  it('a flooding source loses its own packets, never those of a source under its fair share', () => {
    const q = new SendQueue(100, 1 << 20)
    for (let i = 0; i < 100; i++) q.pushData(frame(10, 0xff), 1) // the flooder fills the queue
    let refused = 0
    for (let i = 0; i < 20; i++) {
      expect(q.pushData(frame(10, i), 2).newest).toBe(0) // a legit sender still gets in…
      if (q.pushData(frame(10, 0xff), 1).newest === 1) refused++ // …while the flooder is refused
    }
    expect(refused).toBe(20)
    expect(q.packetsFrom(2)).toBe(20)
    const legit: number[] = []
    for (let out = q.take(1 << 20); out; out = q.take(1 << 20)) {
      for (let o = 0; o < out.length; o += 10) if (out[o] !== 0xff) legit.push(out[o]!)
    }
    expect(legit).toEqual(Array.from({ length: 20 }, (_, i) => i))
  })

  it('with one source it still drops the oldest first, and byte bounds hold', () => {
    const q = new SendQueue(1000, 100)
    for (let i = 0; i < 20; i++) q.pushData(frame(10, i), 7)
    expect(q.bytes).toBe(100)
    const out = q.take(1000)!
    expect(out[0]).toBe(10)
    expect(out.length).toBe(100)
  })

  it('does not pile up tombstones when two sources evict each other and nobody reads', () => {
    const q = new SendQueue(8, 1 << 20)
    for (let i = 0; i < 100_000; i++) q.pushData(frame(4, i & 0xff), i % 3 === 0 ? 1 : 2)
    expect(q.packets).toBe(8)
    expect(q['frameSlabs'].length).toBeLessThan(2 * 8 + 1024 + 2)
  })
})
