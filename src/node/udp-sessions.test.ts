import { describe, expect, it } from 'vitest'
import { UdpSessionTable } from './udp-sessions.ts'

describe('UdpSessionTable', () => {
  it('expires sessions idle for the timeout, kept alive by traffic', () => {
    const table = new UdpSessionTable<string>(1000, 10)
    table.add('a', 'A', 0)
    table.add('b', 'B', 100)
    expect(table.nextEvent()).toBe(1000)
    table.touch('a', 600)
    expect(table.nextEvent()).toBe(1100)
    expect(table.expire(1099)).toEqual([])
    expect(table.expire(1100)).toEqual([['b', 'B']])
    expect(table.nextEvent()).toBe(1600)
    expect(table.expire(1600)).toEqual([['a', 'A']])
    expect(table.nextEvent()).toBeUndefined()
    expect(table.size).toBe(0)
  })

  it('evicts the least recently active session when full', () => {
    const table = new UdpSessionTable<string>(1000, 2)
    expect(table.add('a', 'A', 0)).toBeUndefined()
    expect(table.add('b', 'B', 10)).toBeUndefined()
    table.touch('a', 20)
    expect(table.add('c', 'C', 30)).toBe('B')
    expect(table.get('b')).toBeUndefined()
    expect(table.values().sort()).toEqual(['A', 'C'])
  })

  it('ignores touches of unknown keys and never moves activity backwards', () => {
    const table = new UdpSessionTable<string>(1000, 2)
    table.touch('x', 5)
    expect(table.size).toBe(0)
    table.add('a', 'A', 500)
    table.touch('a', 100)
    expect(table.nextEvent()).toBe(1500)
  })

  it('rejects nonsense limits with a clear error', () => {
    expect(() => new UdpSessionTable(0, 1)).toThrow('UDP idle timeout must be > 0 ms, got 0')
    expect(() => new UdpSessionTable(10, 0)).toThrow('UDP session limit must be a whole number ≥ 1, got 0')
  })
})
