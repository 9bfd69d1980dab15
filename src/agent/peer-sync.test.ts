// Peer sync as a table: applied state + netmap in, dataplane operations out.
import { describe, expect, it } from 'vitest'
import type { Netmap, NetmapPeer, RelayRegion } from '../control/control-plane.ts'
import { testNodeKey } from '../control/testing/peer-entry.ts'
import { chooseHome, planPeerChange, planPeerSync, type AppliedPeer, type PeerOp } from './peer-sync.ts'

const key = testNodeKey
const disco = (n: number): string => `discokey:${n.toString(16).padStart(2, '0').repeat(32)}`

function region(id: number, avoid = false): RelayRegion {
  return { id, code: `r${id}`, name: `region ${id}`, nodes: [{ name: `${id}a`, url: `wss://r${id}.test/derp` }], ...(avoid ? { avoid } : {}) }
}

function peer(n: number, overrides: Partial<NetmapPeer> = {}): NetmapPeer {
  return {
    nodeKey: key(n),
    discoKey: disco(n),
    name: `p${n}`,
    addresses: [`100.64.0.${n}`, `fd00::${n}`],
    allowedIPs: [`100.64.0.${n}/32`, `fd00::${n}/128`],
    homeRelay: null,
    online: true,
    ...overrides,
  }
}

function netmap(peers: NetmapPeer[], regions: RelayRegion[] = [region(1), region(2)], suggestedHome?: number): Netmap {
  return {
    self: { nodeKey: key(200), name: 'me', addresses: ['100.64.0.200', 'fd00::200'], homeRelay: null },
    peers,
    relayMap: { regions: new Map(regions.map((r) => [r.id, r])), ...(suggestedHome !== undefined ? { suggestedHome } : {}) },
  }
}

const applied = (entries: Array<[number, AppliedPeer]>): Map<string, AppliedPeer> => new Map(entries.map(([n, a]) => [key(n), a]))
const ips = (n: number): string[] => [`100.64.0.${n}/32`, `fd00::${n}/128`]

interface Row {
  name: string
  applied: Map<string, AppliedPeer>
  netmap: Netmap
  home: number | undefined
  ops: PeerOp[]
}

const rows: Row[] = [
  {
    name: 'a first netmap picks the suggested home, then adds every peer on its home relay (ours when it has none) and starts discovery',
    applied: new Map(),
    netmap: netmap([peer(1), peer(2, { homeRelay: 2 })], [region(1), region(2)], 1),
    home: undefined,
    ops: [
      { op: 'set-home', region: 1 },
      { op: 'add-peer', nodeKey: key(1), allowedIPs: ips(1), relay: 1 },
      { op: 'add-peer', nodeKey: key(2), allowedIPs: ips(2), relay: 2 },
      { op: 'set-direct', nodeKey: key(1), discoKey: disco(1), relay: 1 },
      { op: 'set-direct', nodeKey: key(2), discoKey: disco(2), relay: 2 },
    ],
  },
  {
    name: 'the same netmap again changes nothing',
    applied: applied([[1, { relay: 1, allowedIPs: ips(1), discoKey: disco(1) }]]),
    netmap: netmap([peer(1)]),
    home: 1,
    ops: [],
  },
  {
    name: 'a peer that moves home is routed over its new relay and its direct path follows',
    applied: applied([[2, { relay: 2, allowedIPs: ips(2), discoKey: disco(2) }]]),
    netmap: netmap([peer(2, { homeRelay: 1 })]),
    home: 1,
    ops: [
      { op: 'move-peer', nodeKey: key(2), relay: 1, from: 2 },
      { op: 'set-direct', nodeKey: key(2), discoKey: disco(2), relay: 1 },
    ],
  },
  {
    name: 'a peer that left is removed with the relay it held; one that joined is added',
    applied: applied([[1, { relay: 1, allowedIPs: ips(1), discoKey: disco(1) }]]),
    netmap: netmap([peer(3, { discoKey: null })]),
    home: 1,
    ops: [
      { op: 'remove-peer', nodeKey: key(1), relay: 1 },
      { op: 'add-peer', nodeKey: key(3), allowedIPs: ips(3), relay: 1 },
    ],
  },
  {
    name: 'a new disco key (the peer restarted) only restarts discovery',
    applied: applied([[1, { relay: 1, allowedIPs: ips(1), discoKey: disco(9) }]]),
    netmap: netmap([peer(1)]),
    home: 1,
    ops: [{ op: 'set-direct', nodeKey: key(1), discoKey: disco(1), relay: 1 }],
  },
  {
    name: 'changed AllowedIPs re-add the peer',
    applied: applied([[1, { relay: 1, allowedIPs: ips(1), discoKey: disco(1) }]]),
    netmap: netmap([peer(1, { allowedIPs: [...ips(1), '10.9.0.0/16'] })]),
    home: 1,
    ops: [
      { op: 'remove-peer', nodeKey: key(1), relay: 1 },
      { op: 'add-peer', nodeKey: key(1), allowedIPs: [...ips(1), '10.9.0.0/16'], relay: 1 },
      { op: 'set-direct', nodeKey: key(1), discoKey: disco(1), relay: 1 },
    ],
  },
  {
    name: 'an entry with our own node key never becomes a peer',
    applied: new Map(),
    netmap: { ...netmap([peer(4, { homeRelay: 77, discoKey: null })]), self: { nodeKey: key(4), name: 'me', addresses: [], homeRelay: null } },
    home: 1,
    ops: [],
  },
  {
    name: 'when our home region disappears we move home, and the peers routed through it follow',
    applied: applied([[1, { relay: 1, allowedIPs: ips(1), discoKey: null }]]),
    netmap: netmap([peer(1, { discoKey: null })], [region(2)]),
    home: 1,
    ops: [
      { op: 'set-home', region: 2 },
      { op: 'move-peer', nodeKey: key(1), relay: 2, from: 1 },
    ],
  },
  {
    name: 'no relay regions at all: nothing can be routed, nothing is planned',
    applied: new Map(),
    netmap: netmap([peer(1)], []),
    home: undefined,
    ops: [],
  },
]

describe('planPeerSync', () => {
  for (const row of rows) {
    it(row.name, () => {
      expect(planPeerSync(row.applied, row.netmap, row.home)).toEqual(row.ops)
    })
  }

  it('a peer homed in an unknown region is added on ours', () => {
    expect(planPeerSync(new Map(), netmap([peer(4, { homeRelay: 77, discoKey: null })]), 1)).toEqual([{ op: 'add-peer', nodeKey: key(4), allowedIPs: ips(4), relay: 1 }])
  })
})

describe('chooseHome', () => {
  const map = (regions: RelayRegion[], suggestedHome?: number) => netmap([], regions, suggestedHome).relayMap
  it('keeps the current home while it exists, else takes the suggestion, else the lowest region not to avoid', () => {
    expect(chooseHome(2, map([region(1), region(2)], 1))).toBe(2)
    expect(chooseHome(5, map([region(1), region(2)], 2))).toBe(2)
    expect(chooseHome(undefined, map([region(3, true), region(4), region(2)]))).toBe(2)
    expect(chooseHome(undefined, map([region(3, true), region(4)]))).toBe(4)
    expect(chooseHome(undefined, map([region(3, true)]))).toBe(3)
    expect(chooseHome(undefined, map([]))).toBeUndefined()
  })
})

describe('planPeerChange', () => {
  const indexed = (peers: NetmapPeer[], regions?: RelayRegion[]): Netmap => {
    const map = netmap(peers, regions)
    return { ...map, peerIndex: new Map(peers.map((p) => [p.nodeKey, p])) }
  }
  const big = Array.from({ length: 150 }, (_, i) => peer(i + 1))
  const all = applied(big.map((p, i) => [i + 1, { relay: 1, allowedIPs: p.allowedIPs, discoKey: p.discoKey }]))

  it('plans the same operations as a whole-netmap plan, looking only at the changed peers', () => {
    const moved = peer(7, { homeRelay: 2 })
    const rekeyed = peer(9, { discoKey: disco(99) })
    const readdressed = peer(11, { allowedIPs: ['100.64.9.9/32'] })
    const next = indexed([...big.filter((p) => ![5, 7, 9, 11].includes(Number.parseInt(p.nodeKey.slice(8, 10), 16))), moved, rekeyed, readdressed, peer(160)])
    const change = { upsert: [moved.nodeKey, rekeyed.nodeKey, readdressed.nodeKey, key(160)], remove: [key(5)], other: false }
    const incremental = planPeerChange(all, next, 1, change)!
    const whole = planPeerSync(all, next, 1)
    const sorted = (ops: PeerOp[]) => ops.map((op) => JSON.stringify(op)).sort()
    expect(sorted(incremental)).toEqual(sorted(whole))
    expect(incremental.length).toBeGreaterThan(0)
  })

  it('declines (so the agent plans the whole netmap) without an index, on a relay-map change, or when home would move', () => {
    const change = { upsert: [key(1)], remove: [], other: false }
    expect(planPeerChange(all, netmap(big), 1, change)).toBeUndefined()
    expect(planPeerChange(all, indexed(big), 1, { ...change, other: true })).toBeUndefined()
    expect(planPeerChange(all, indexed(big, [region(2)]), 1, change)).toBeUndefined()
  })
})
