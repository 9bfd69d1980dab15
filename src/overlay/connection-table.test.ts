import { describe, expect, it } from 'vitest'
import { parseAddress } from '../wire/index.ts'
import { ConnectionTable, type FourTuple } from './connection-table.ts'

const tuple = (local: string, localPort: number, remote: string, remotePort: number): FourTuple => ({
  localAddress: parseAddress(local),
  localPort,
  remoteAddress: parseAddress(remote),
  remotePort,
})

describe('ConnectionTable', () => {
  it('finds entries by the full 4-tuple when port pairs collide', () => {
    const table = new ConnectionTable<FourTuple>()
    const a = tuple('100.64.0.1', 5000, '100.64.0.2', 80)
    const b = tuple('100.64.0.1', 5000, '100.64.0.3', 80)
    const c = tuple('fd00::1', 5000, 'fd00::2', 80)
    for (const t of [a, b, c]) table.add(t)
    expect(table.get(parseAddress('100.64.0.1'), 5000, parseAddress('100.64.0.3'), 80)).toBe(b)
    expect(table.get(parseAddress('fd00::1'), 5000, parseAddress('fd00::2'), 80)).toBe(c)
    expect(table.has(parseAddress('100.64.0.9'), 5000, parseAddress('100.64.0.2'), 80)).toBe(false)
    expect(table.has(parseAddress('100.64.0.1'), 80, parseAddress('100.64.0.2'), 5000)).toBe(false)
    expect(table.size).toBe(3)
  })

  it('deletes only the given entry and iterates in insertion order, like a Map', () => {
    const table = new ConnectionTable<FourTuple>()
    const entries = [tuple('10.0.0.1', 1, '10.0.0.2', 2), tuple('10.0.0.1', 1, '10.0.0.3', 2), tuple('10.0.0.1', 3, '10.0.0.2', 4)]
    for (const t of entries) table.add(t)
    table.delete(entries[0]!)
    table.delete(entries[0]!) // absent: no effect
    expect([...table.values()]).toEqual([entries[1], entries[2]])
    expect(table.get(parseAddress('10.0.0.1'), 1, parseAddress('10.0.0.2'), 2)).toBeUndefined()
    expect(table.get(parseAddress('10.0.0.1'), 1, parseAddress('10.0.0.3'), 2)).toBe(entries[1])
    table.add(entries[0]!)
    expect([...table.values()]).toEqual([entries[1], entries[2], entries[0]])
    for (const t of entries) table.delete(t)
    expect(table.size).toBe(0)
    expect(table.get(parseAddress('10.0.0.1'), 3, parseAddress('10.0.0.2'), 4)).toBeUndefined()
  })
})
