import { describe, expect, it } from 'vitest'
import { parseAddress, parsePrefix } from '../../wire/address.ts'
import { AllowedIps } from './allowed-ips.ts'

function table(entries: Array<[string, string]>): AllowedIps<string> {
  const t = new AllowedIps<string>()
  for (const [prefix, peer] of entries) t.add(parsePrefix(prefix), peer)
  return t
}

describe('AllowedIps', () => {
  const t = table([
    ['0.0.0.0/0', 'default'],
    ['10.0.0.0/8', 'corp'],
    ['10.1.2.0/24', 'lab'],
    ['10.1.2.3/32', 'host'],
    ['::/0', 'default6'],
    ['fd00::/64', 'corp6'],
  ])

  it('routes to the longest matching prefix', () => {
    expect(t.lookup(parseAddress('10.1.2.3'))).toBe('host')
    expect(t.lookup(parseAddress('10.1.2.4'))).toBe('lab')
    expect(t.lookup(parseAddress('10.9.9.9'))).toBe('corp')
    expect(t.lookup(parseAddress('192.0.2.1'))).toBe('default')
    expect(t.lookup(parseAddress('fd00::5'))).toBe('corp6')
    expect(t.lookup(parseAddress('2001:db8::1'))).toBe('default6')
  })

  it('never matches across families', () => {
    const v4only = table([['0.0.0.0/0', 'a']])
    expect(v4only.lookup(parseAddress('::1'))).toBeUndefined()
  })

  it('allows a source only for the peer owning its longest match', () => {
    expect(t.allows('lab', parseAddress('10.1.2.9'))).toBe(true)
    expect(t.allows('corp', parseAddress('10.1.2.9'))).toBe(false)
    expect(t.allows('host', parseAddress('10.1.2.3'))).toBe(true)
  })

  it('moves a prefix to the peer that adds it last', () => {
    const moved = table([['10.0.0.0/24', 'a'], ['10.0.0.0/24', 'b']])
    expect(moved.lookup(parseAddress('10.0.0.1'))).toBe('b')
  })

  it('forgets a removed peer', () => {
    const removed = table([['10.0.0.0/24', 'a'], ['10.0.0.0/16', 'b']])
    removed.removePeer('a')
    expect(removed.lookup(parseAddress('10.0.0.1'))).toBe('b')
  })
})
