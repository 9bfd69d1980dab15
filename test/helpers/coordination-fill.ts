// Fills a relay's coordination store with registered (offline) nodes, as a big network would
// have, without running thousands of registrations: rows written straight to the database of a
// data dir the relay has already initialised (server key, IPv6 prefix).
import { randomBytes } from 'node:crypto'
import { SqliteStore } from '../../src/server/coordination/store.ts'
import { allocateIpv4, ipv6For } from '../../src/server/coordination/allocator.ts'

export async function fillNodes(dataDir: string, count: number, options: { lastSeen?: number; prefix?: string } = {}): Promise<void> {
  const store = SqliteStore.open(dataDir)
  try {
    const ipv6Prefix = await store.getMeta('ipv6_prefix')
    if (ipv6Prefix === undefined) throw new Error(`${dataDir} has no coordination network yet: start the relay once first`)
    await store.transaction(async (tx) => {
      const taken = new Set((await tx.allNodes()).map((node) => node.ipv4))
      for (let i = 0; i < count; i++) {
        const key = new Uint8Array(randomBytes(32))
        const ipv4 = allocateIpv4(key, (address) => taken.has(address))
        taken.add(ipv4)
        const hostname = `${options.prefix ?? 'filler'}-${i}`
        await tx.insertNode({
          nodeKey: `nodekey:${Buffer.from(key).toString('hex')}`,
          discoKey: `discokey:${randomBytes(32).toString('hex')}`,
          hostname,
          requestedHostname: hostname,
          ipv4,
          ipv6: ipv6For(ipv6Prefix, ipv4),
          ephemeral: false,
          authKeyId: null,
          createdAt: options.lastSeen ?? Date.now(),
          lastSeen: options.lastSeen ?? Date.now(),
          homeRelay: null,
        })
      }
    })
  } finally {
    await store.close()
  }
}
