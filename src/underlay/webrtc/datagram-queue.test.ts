import { describe, expect, it } from 'vitest'
import { DatagramQueue } from './datagram-queue.ts'

const bytes = (n: number, fill = 0): Uint8Array => new Uint8Array(n).fill(fill)

describe('DatagramQueue', () => {
  it('keeps order and drops new arrivals beyond the packet bound, counting them', () => {
    const queue = new DatagramQueue({ maxPackets: 3, maxBytes: 1e6 })
    for (let i = 0; i < 5; i++) queue.push(bytes(10, i))
    expect(queue.length).toBe(3)
    expect(queue.dropped).toBe(2)
    expect([queue.shift()![0], queue.shift()![0], queue.shift()![0]]).toEqual([0, 1, 2])
    expect(queue.shift()).toBeUndefined()
  })

  it('bounds bytes too', () => {
    const queue = new DatagramQueue({ maxPackets: 100, maxBytes: 2500 })
    expect(queue.push(bytes(1400))).toBe(true)
    expect(queue.push(bytes(1400))).toBe(false)
    expect(queue.push(bytes(1000))).toBe(true)
    expect(queue.bytes).toBe(2400)
    queue.shift()
    expect(queue.bytes).toBe(1000)
  })

  it('stays bounded in memory through long use (compaction) and clear() counts what it held', () => {
    const queue = new DatagramQueue({ maxPackets: 2000, maxBytes: 1e9 })
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 1500; i++) queue.push(bytes(1, i & 0xff))
      for (let i = 0; i < 1500; i++) expect(queue.shift()![0]).toBe(i & 0xff)
    }
    expect(queue.length).toBe(0)
    queue.push(bytes(1))
    queue.push(bytes(1))
    queue.clear()
    expect(queue.dropped).toBe(2)
    expect(queue.bytes).toBe(0)
  })

  it('rejects nonsense limits', () => {
    expect(() => new DatagramQueue({ maxPackets: 0, maxBytes: 1 })).toThrow(RangeError)
  })
})
