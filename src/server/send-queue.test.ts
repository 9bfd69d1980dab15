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
