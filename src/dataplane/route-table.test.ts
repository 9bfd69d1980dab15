import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { parseAddress, parsePrefix, prefixContains, type Prefix } from '../wire/index.ts'
import { DataplaneError } from './errors.ts'
import { RouteTable } from './route-table.ts'

const p = parsePrefix
const a = parseAddress

describe('RouteTable', () => {
  it('picks the longest matching prefix among overlapping IPv4 routes', () => {
    const table = new RouteTable<string>()
    table.insert(p('10.0.0.0/8'), 'eight')
    table.insert(p('10.1.0.0/16'), 'sixteen')
    table.insert(p('10.1.2.0/24'), 'twentyfour')
    table.insert(p('10.1.2.3/32'), 'host')
    expect(table.lookup(a('10.1.2.3'))).toBe('host')
    expect(table.lookup(a('10.1.2.4'))).toBe('twentyfour')
    expect(table.lookup(a('10.1.3.4'))).toBe('sixteen')
    expect(table.lookup(a('10.2.3.4'))).toBe('eight')
    expect(table.lookup(a('11.0.0.1'))).toBeUndefined()
    expect(table.size).toBe(4)
  })

  it('falls back to /0 only when nothing more specific matches, per address family', () => {
    const table = new RouteTable<string>()
    table.insert(p('0.0.0.0/0'), 'v4-default')
    table.insert(p('192.168.0.0/16'), 'lan')
    expect(table.lookup(a('8.8.8.8'))).toBe('v4-default')
    expect(table.lookup(a('192.168.7.1'))).toBe('lan')
    expect(table.lookup(a('2001:db8::1'))).toBeUndefined()
    table.insert(p('::/0'), 'v6-default')
    table.insert(p('fd7a:115c:a1e0::/48'), 'tailnet')
    expect(table.lookup(a('2001:db8::1'))).toBe('v6-default')
    expect(table.lookup(a('fd7a:115c:a1e0:ab12::1'))).toBe('tailnet')
    expect(table.lookup(a('fd7a:115c:a1e1::1'))).toBe('v6-default')
  })

  it('removes exactly one prefix and keeps covering and covered routes', () => {
    const table = new RouteTable<string>()
    table.insert(p('10.0.0.0/8'), 'eight')
    table.insert(p('10.1.0.0/16'), 'sixteen')
    table.insert(p('10.1.2.0/24'), 'twentyfour')
    expect(table.remove(p('10.1.0.0/16'))).toBe(true)
    expect(table.remove(p('10.1.0.0/16'))).toBe(false)
    expect(table.lookup(a('10.1.3.4'))).toBe('eight')
    expect(table.lookup(a('10.1.2.9'))).toBe('twentyfour')
    expect(table.remove(p('0.0.0.0/0'))).toBe(false)
    expect(table.remove(p('10.1.2.0/24'))).toBe(true)
    expect(table.remove(p('10.0.0.0/8'))).toBe(true)
    expect(table.lookup(a('10.1.2.9'))).toBeUndefined()
    expect(table.size).toBe(0)
    expect([...table.entries()]).toEqual([])
  })

  it('replaces a route on re-insert and reports what it replaced; ignores host bits', () => {
    const table = new RouteTable<string>()
    expect(table.insert(p('10.0.0.0/8'), 'a')).toEqual({ replaced: false, previous: undefined })
    expect(table.insert({ address: a('10.9.9.9'), bits: 8 }, 'b')).toEqual({ replaced: true, previous: 'a' })
    expect(table.size).toBe(1)
    expect(table.get(p('10.0.0.0/8'))).toBe('b')
    expect([...table.entries()].map(([prefix, value]) => [[...prefix.address], prefix.bits, value])).toEqual([[[10, 0, 0, 0], 8, 'b']])
  })

  it('rejects malformed prefixes with a typed error and no change', () => {
    const table = new RouteTable<string>()
    table.insert(p('10.0.0.0/8'), 'a')
    expect(() => table.insert({ address: new Uint8Array(5), bits: 8 }, 'x')).toThrow(DataplaneError)
    expect(() => table.insert({ address: a('10.0.0.0'), bits: 33 }, 'x')).toThrow(/out of range/)
    expect(() => table.insert({ address: a('::'), bits: -1 }, 'x')).toThrow(/out of range/)
    expect(() => table.remove({ address: a('10.0.0.0'), bits: 1.5 })).toThrow(DataplaneError)
    expect(table.size).toBe(1)
    expect(table.lookup(new Uint8Array(3))).toBeUndefined()
  })

  it('agrees with a linear scan over random IPv4 and IPv6 tables', () => {
    const prefix4 = fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }))
    const prefix6 = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 }))
    const anyPrefix = fc.oneof(prefix4, prefix6).map(([address, bits]): Prefix => p(`${formatRaw(address)}/${bits}`))
    fc.assert(
      fc.property(
        fc.array(anyPrefix, { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.array(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), { maxLength: 30 }),
        (prefixes, removals, probes) => {
          const table = new RouteTable<number>()
          const reference = new Map<string, { prefix: Prefix; value: number }>()
          prefixes.forEach((prefix, value) => {
            table.insert(prefix, value)
            reference.set(`${[...prefix.address]}/${prefix.bits}`, { prefix, value })
          })
          for (const index of removals) {
            const entry = [...reference.values()][index % Math.max(1, reference.size)]
            if (!entry) continue
            expect(table.remove(entry.prefix)).toBe(true)
            reference.delete(`${[...entry.prefix.address]}/${entry.prefix.bits}`)
          }
          expect(table.size).toBe(reference.size)
          // Probe both random addresses and addresses inside the stored prefixes.
          const targets = [...probes, ...[...reference.values()].map(({ prefix }) => prefix.address)]
          for (const address of targets) {
            let best: { bits: number; value: number } | undefined
            for (const { prefix, value } of reference.values()) {
              if (prefixContains(prefix, address) && (!best || prefix.bits > best.bits)) best = { bits: prefix.bits, value }
            }
            expect(table.lookup(address)).toBe(best?.value)
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

function formatRaw(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return groups.join(':')
}
