import { describe, expect, it } from 'vitest'
import { AllowPolicy, AllowPolicyError, parseAllowEntry } from './allow.ts'

const peers = [
  { hostname: 'laptop', addresses: ['100.64.0.5', 'fd7a:115c:a1e0::5'] },
  { hostname: 'build.ci.example', addresses: ['100.64.0.6/32', 'fd7a:115c:a1e0::6/128'] },
  { hostname: 'phone', addresses: ['100.64.1.7', 'fd7a:115c:a1e0::107'] },
]

describe('parseAllowEntry', () => {
  it('reads prefixes, bare addresses and hostnames', () => {
    expect(parseAllowEntry('100.64.0.0/24')).toMatchObject({ kind: 'prefix', text: '100.64.0.0/24' })
    expect(parseAllowEntry('100.64.0.9/24')).toMatchObject({ kind: 'prefix', text: '100.64.0.0/24' })
    expect(parseAllowEntry('100.64.0.9')).toMatchObject({ kind: 'prefix', text: '100.64.0.9/32' })
    expect(parseAllowEntry('fd7a:115c:a1e0::/48')).toMatchObject({ kind: 'prefix', text: 'fd7a:115c:a1e0::/48' })
    expect(parseAllowEntry('Laptop')).toEqual({ kind: 'hostname', hostname: 'laptop', text: 'laptop' })
  })

  it('names the bad value', () => {
    expect(() => parseAllowEntry('100.64.0.0/33')).toThrow(AllowPolicyError)
    expect(() => parseAllowEntry('100.64.0.0/33')).toThrow(/--allow "100.64.0.0\/33": .*bad prefix length/)
    expect(() => parseAllowEntry('1.2.3')).toThrow(/--allow "1.2.3"/)
    expect(() => parseAllowEntry('bad_host!')).toThrow('--allow "bad_host!" is neither a CIDR prefix, an IP address nor a hostname')
    expect(() => parseAllowEntry(' ')).toThrow(/empty value/)
    expect(() => new AllowPolicy(['laptop', '10.0.0.0/99'])).toThrow(/10\.0\.0\.0\/99/)
  })
})

describe('AllowPolicy', () => {
  it('admits every node when no entry is given, and names the peer', () => {
    const policy = new AllowPolicy()
    expect(policy.allowsEveryone).toBe(true)
    expect(policy.check('100.64.1.7', peers)).toEqual({ allowed: true, peer: peers[2], rule: undefined })
    expect(policy.check('100.64.9.9', peers)).toEqual({ allowed: true, peer: undefined, rule: undefined })
  })

  it('admits by prefix in either family and refuses others with a reason', () => {
    const policy = new AllowPolicy(['100.64.0.0/24', 'fd7a:115c:a1e0::100/120'])
    expect(policy.check('100.64.0.5', peers)).toMatchObject({ allowed: true, rule: '100.64.0.0/24' })
    expect(policy.check('fd7a:115c:a1e0::107', peers)).toMatchObject({ allowed: true, rule: 'fd7a:115c:a1e0::100/120', peer: { hostname: 'phone' } })
    expect(policy.check('100.64.1.7', peers)).toEqual({
      allowed: false,
      peer: peers[2],
      reason: 'phone (100.64.1.7) matches no --allow entry (100.64.0.0/24, fd7a:115c:a1e0::100/120)',
    })
    expect(policy.check('fd7a:115c:a1e0::5', peers)).toMatchObject({ allowed: false })
  })

  it('resolves hostnames against the live peer map, on both of a peer’s addresses', () => {
    const policy = new AllowPolicy(['laptop', 'build'])
    expect(policy.check('100.64.0.5', peers)).toMatchObject({ allowed: true, rule: 'laptop' })
    expect(policy.check('fd7a:115c:a1e0::5', peers)).toMatchObject({ allowed: true, rule: 'laptop' })
    expect(policy.check('100.64.0.6', peers)).toMatchObject({ allowed: true, rule: 'build', peer: { hostname: 'build.ci.example' } })
    expect(policy.check('100.64.1.7', peers)).toMatchObject({ allowed: false })
    // A name that is not (yet) in the map admits nobody; once a peer joins under it, it is admitted.
    expect(policy.check('100.64.2.2', peers)).toMatchObject({ allowed: false, reason: '100.64.2.2 (not in the peer map) matches no --allow entry (laptop, build)' })
    const later = [...peers, { hostname: 'LAPTOP', addresses: ['100.64.2.2', 'fd7a:115c:a1e0::202'] }]
    expect(policy.check('100.64.2.2', later)).toMatchObject({ allowed: true, rule: 'laptop' })
  })

  it('matches a dotted entry only as a whole name', () => {
    const policy = new AllowPolicy(['build.ci'])
    expect(policy.check('100.64.0.6', peers)).toMatchObject({ allowed: false })
    expect(new AllowPolicy(['build.ci.example']).check('100.64.0.6', peers)).toMatchObject({ allowed: true })
  })

  it('refuses a remote that is not an address', () => {
    expect(new AllowPolicy().check('nonsense', peers)).toEqual({ allowed: false, peer: undefined, reason: '"nonsense" is not an IP address' })
  })
})
