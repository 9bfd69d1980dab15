import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { patternBytes } from '../testing/pair.ts'
import { ReceiveBuffer } from './receive-buffer.ts'
import { SendBuffer } from './send-buffer.ts'

describe('SendBuffer', () => {
  it('accepts up to its capacity, releases on acknowledgement and wraps without losing bytes', () => {
    const buffer = new SendBuffer(200_000)
    const data = patternBytes(1_000_000)
    let written = 0
    let acked = 0
    while (acked < data.length) {
      written += buffer.write(data.subarray(written, Math.min(data.length, written + 70_001)))
      expect(buffer.length).toBeLessThanOrEqual(200_000)
      const slice = buffer.slice(acked, Math.min(1368, written - acked))
      expect(Buffer.compare(slice, data.subarray(acked, acked + slice.length))).toBe(0)
      acked = Math.min(written, acked + 50_000)
      buffer.acknowledge(acked)
    }
    expect(buffer.write(new Uint8Array(0))).toBe(0)
    expect(() => buffer.slice(acked - 1, 1)).toThrow(RangeError)
  })
})

describe('SendBuffer growth', () => {
  it('grows to whole bytes when asked for a fractional size (CUBIC windows are fractional) and keeps every byte', () => {
    const buffer = new SendBuffer(100_000)
    const data = patternBytes(400_000)
    expect(buffer.write(data.subarray(0, 100_000))).toBe(100_000)
    buffer.grow(250_000.73)
    expect(buffer.capacity).toBe(250_000)
    expect(buffer.write(data.subarray(100_000))).toBe(150_000)
    buffer.acknowledge(120_000)
    expect(buffer.write(data.subarray(250_000))).toBe(120_000)
    expect(Buffer.compare(buffer.slice(120_000, 250_000), data.subarray(120_000, 370_000))).toBe(0)
    buffer.grow(1000) // never shrinks
    expect(buffer.capacity).toBe(250_000)
  })
})

describe('ReceiveBuffer', () => {
  it('holds out-of-order data and releases it when the hole fills', () => {
    const buffer = new ReceiveBuffer(1 << 20)
    const data = patternBytes(10_000)
    expect(buffer.insert(3000, data.subarray(3000, 5000))).toBe(0)
    expect(buffer.insert(7000, data.subarray(7000, 8000))).toBe(0)
    expect(buffer.readable).toBe(0)
    expect(buffer.sackBlocks(3)).toEqual([
      { start: 7000, end: 8000 },
      { start: 3000, end: 5000 },
    ])
    expect(buffer.insert(0, data.subarray(0, 3000))).toBe(5000)
    expect(buffer.end).toBe(5000)
    expect(buffer.sackBlocks(3)).toEqual([{ start: 7000, end: 8000 }])
    expect(buffer.insert(4000, data.subarray(4000, 7000))).toBe(3000) // overlaps delivered bytes
    expect(buffer.end).toBe(8000)
    expect(buffer.hasHeld).toBe(false)
    const out = buffer.read()!
    expect(Buffer.compare(out, data.subarray(0, 8000))).toBe(0)
  })

  it('copies segments it does not own, so the sender may reuse them, and keeps owned ones as views without a copy', () => {
    const buffer = new ReceiveBuffer(1 << 20)
    const borrowed = patternBytes(3000, 1)
    const expected = borrowed.slice()
    expect(buffer.insert(0, borrowed)).toBe(3000)
    borrowed.fill(0) // the caller reuses its packet buffer
    const packet = patternBytes(5000, 2)
    expect(buffer.insert(3000, packet.subarray(1000), true)).toBe(4000)
    const first = buffer.read(3000)!
    expect(Buffer.compare(first, expected)).toBe(0)
    const second = buffer.read()!
    expect(second.buffer).toBe(packet.buffer) // a view of the handed-over packet
    expect(Buffer.compare(second, patternBytes(5000, 2).subarray(1000))).toBe(0)
  })

  it('reports the most recently changed block first (RFC 2018 §4)', () => {
    const buffer = new ReceiveBuffer(1 << 20)
    for (const at of [1000, 3000, 5000, 7000]) buffer.insert(at, new Uint8Array(100))
    buffer.insert(3100, new Uint8Array(100))
    expect(buffer.sackBlocks(3)).toEqual([
      { start: 3000, end: 3200 },
      { start: 7000, end: 7100 },
      { start: 5000, end: 5100 },
    ])
  })

  it('never stores beyond its capacity and accepts more as the application reads', () => {
    const buffer = new ReceiveBuffer(100_000)
    const data = patternBytes(300_000)
    expect(buffer.insert(0, data.subarray(0, 150_000))).toBe(100_000)
    expect(buffer.insert(150_000, data.subarray(150_000, 160_000))).toBe(0)
    expect(buffer.hasHeld).toBe(false)
    const first = buffer.read(60_000)!
    expect(buffer.insert(100_000, data.subarray(100_000, 200_000))).toBe(60_000)
    const rest = buffer.read()!
    expect(Buffer.compare(Buffer.concat([first, rest]), data.subarray(0, 160_000))).toBe(0)
  })

  it('keeps held data intact while its ring grows', () => {
    const buffer = new ReceiveBuffer(1 << 20)
    const data = patternBytes(900_000)
    for (let at = 1368; at < 900_000; at += 2 * 1368) buffer.insert(at, data.subarray(at, Math.min(900_000, at + 1368)))
    for (let at = 0; at < 900_000; at += 2 * 1368) buffer.insert(at, data.subarray(at, at + 1368))
    expect(buffer.end).toBe(900_000)
    expect(Buffer.compare(buffer.read()!, data)).toBe(0)
  })

  it('delivers exactly the stream, in order, whatever the order, overlap and duplication of segments and the sizes of reads', () => {
    const data = patternBytes(20_000)
    const segment = fc.record({ start: fc.nat(19_999), length: fc.integer({ min: 1, max: 3000 }) })
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }), fc.nat(), (segments, reads, capacitySeed) => {
        const capacity = 4096 + (capacitySeed % 20_000)
        const buffer = new ReceiveBuffer(capacity)
        const out: Uint8Array[] = []
        let delivered = 0
        let r = 0
        const drain = (): void => {
          const chunk = buffer.read(reads[r++ % reads.length])
          if (chunk) {
            out.push(chunk.slice())
            delivered += chunk.length
          }
        }
        // Then every byte once, in order, so the stream always completes.
        const all = [...segments, ...Array.from({ length: 20 }, (_, i) => ({ start: i * 1000, length: 1000 }))]
        for (const { start, length } of all) {
          const end = Math.min(data.length, start + length)
          buffer.insert(start, data.subarray(start, end))
          // Like TCP, the sender retransmits what the window refused once the application has read.
          while (buffer.end >= start && buffer.end < end) {
            buffer.insert(buffer.end, data.subarray(buffer.end, end))
            drain()
          }
          expect(buffer.readable + buffer.heldBytes).toBeLessThanOrEqual(capacity)
          drain()
        }
        while (buffer.readable > 0) drain()
        expect(delivered).toBe(data.length)
        expect(Buffer.compare(Buffer.concat(out), data)).toBe(0)
        expect(buffer.hasHeld).toBe(false)
      }),
      { numRuns: 300 },
    )
  })
})
