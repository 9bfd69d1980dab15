import { describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '../../crypto/index.ts'
import { parseAddress, parsePrefix, prefixContains } from '../../wire/index.ts'
import { AllocationError, IPV4_PREFIX, allocateIpv4, generateUlaPrefix, ipv6For } from './allocator.ts'
import { SqliteStore } from './store.ts'
import { CoordinationService } from './service.ts'
import { helloFor } from './test-helpers.ts'
import type { KeyPair } from '../../crypto/index.ts'

describe('allocateIpv4', () => {
  it('gives the same key the same address in an empty network', () => {
    const key = generateKeyPair().publicKey
    expect(allocateIpv4(key, () => false)).toBe(allocateIpv4(key, () => false))
  })

  it('stays inside 100.64.0.0/10 and skips .0, .255 and 100.100.100.0/24', () => {
    const cgnat = parsePrefix(IPV4_PREFIX)
    for (let i = 0; i < 500; i++) {
      const address = allocateIpv4(generateKeyPair().publicKey, () => false)
      expect(prefixContains(cgnat, parseAddress(address))).toBe(true)
      expect(address).not.toMatch(/\.(0|255)$/)
      expect(address.startsWith('100.100.100.')).toBe(false)
    }
  })

  it('probes past taken addresses without collisions', () => {
    const key = generateKeyPair().publicKey
    const taken = new Set<string>()
    for (let i = 0; i < 300; i++) {
      const address = allocateIpv4(key, (a) => taken.has(a))
      expect(taken.has(address)).toBe(false)
      taken.add(address)
    }
    expect(taken.size).toBe(300)
  })

  it('reports a full range instead of looping forever', () => {
    expect(() => allocateIpv4(generateKeyPair().publicKey, () => true)).toThrow(AllocationError)
  })
})

describe('IPv6', () => {
  it('generates RFC 4193 /48 prefixes', () => {
    const prefix = generateUlaPrefix(() => new Uint8Array([0x12, 0x34, 0x56, 0x78, 0x9a]))
    expect(prefix).toBe('fd12:3456:789a::/48')
    expect(generateUlaPrefix()).toMatch(/^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/48$/)
  })

  it('embeds the IPv4 address in the low 32 bits of the ULA', () => {
    expect(ipv6For('fd12:3456:789a::/48', '100.64.1.2')).toBe('fd12:3456:789a::6440:102')
  })

  it('rejects a prefix that is not a ULA /48', () => {
    expect(() => ipv6For('2001:db8::/48', '100.64.1.2')).toThrow(/not a ULA \/48/)
    expect(() => ipv6For('fd12:3456:789a::/64', '100.64.1.2')).toThrow(/not a ULA \/48/)
  })
})

describe('allocation through the service', () => {
  it('keeps every address across a restart and never hands out one twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-alloc-'))
    try {
      let store = SqliteStore.open(dir)
      let service = await CoordinationService.create({ store })
      const authKey = await service.createAuthKey({ reusable: true }, 1)
      const keys = Array.from({ length: 40 }, () => generateKeyPair())
      const registered: Array<[string, string]> = []
      for (const [i, pair] of keys.entries()) registered.push(await registerDirect(service, pair, authKey, `n${i}`))
      expect(new Set(registered.map((a) => a[0])).size).toBe(40)
      expect(new Set(registered.map((a) => a[1])).size).toBe(40)
      const prefix = service.network.ipv6Prefix
      await store.close()

      store = SqliteStore.open(dir)
      service = await CoordinationService.create({ store })
      expect(service.network.ipv6Prefix).toBe(prefix)
      const again: Array<[string, string]> = []
      for (const [i, pair] of keys.entries()) again.push(await registerDirect(service, pair, undefined, `n${i}`))
      expect(again).toEqual(registered)
      await store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

let nextConnection = 1
async function registerDirect(service: CoordinationService, pair: KeyPair, authKey: string | undefined, hostname: string): Promise<[string, string]> {
  const id = nextConnection++
  const [challenge] = service.open(id, 10)
  const hello = helloFor(pair, challenge!, { authKey, hostname })
  const out = await service.receive(id, JSON.stringify(hello), 10)
  const welcome = out.find((o) => o.kind === 'send' && o.message.type === 'welcome')
  if (welcome?.kind !== 'send' || welcome.message.type !== 'welcome') throw new Error(`no welcome: ${JSON.stringify(out)}`)
  await service.closed(id, 11)
  return welcome.message.self.addresses
}
