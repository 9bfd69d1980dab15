import { describe, expect, it } from 'vitest'
import { expandFilter, homeRegion, NetmapError, rangeToPrefixes, TailnetMapSession } from './netmap.ts'
import type { MapResponse, Node } from './tailcfg.ts'

const hex = (n: number) => n.toString(16).padStart(2, '0').repeat(32)
const nodeKey = (n: number) => `nodekey:${hex(n)}`
const discoKey = (n: number) => `discokey:${hex(n)}`

function node(id: number, name: string, extra: Partial<Node> = {}): Node {
  return {
    ID: id,
    Name: `${name}.tail.test.`,
    Key: nodeKey(id),
    DiscoKey: discoKey(id),
    Addresses: [`100.64.0.${id}/32`, `fd7a:115c:a1e0::${id}/128`],
    HomeDERP: 900,
    Online: true,
    ...extra,
  }
}

const SELF = node(1, 'self')
const DERP_MAP: MapResponse['DERPMap'] = {
  Regions: {
    '900': {
      RegionID: 900,
      RegionCode: 'lab',
      RegionName: 'Lab',
      Nodes: [{ Name: '900a', RegionID: 900, HostName: '10.0.0.2', IPv4: '10.0.0.2', STUNPort: -1, DERPPort: 3340 }],
    },
  },
}

/** A session that already took the first full map (self, peers 2 and 3, DERP map, allow-all filter). */
function started(options = {}) {
  const session = new TailnetMapSession(options)
  const first = session.apply(
    {
      Node: SELF,
      Peers: [node(2, 'alpha'), node(3, 'bravo')],
      DERPMap: DERP_MAP,
      PacketFilter: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }],
      DNSConfig: { Domains: ['tail.test'], Proxied: true, Resolvers: [{ Addr: '1.1.1.1' }] },
      Domain: 'tail.test',
    },
    0,
  )
  return { session, first }
}

const names = (session: TailnetMapSession) => session.netmap!.peers.map((p) => p.name)

describe('TailnetMapSession: peers', () => {
  it('the first full map gives self, peers in name order, keys, addresses IPv4 first, home region and FQDN', () => {
    const { session, first } = started()
    expect(first!.change).toEqual({ upsert: [nodeKey(2), nodeKey(3)], remove: [], other: true })
    const netmap = session.netmap!
    expect(netmap.self).toEqual({ nodeKey: nodeKey(1), name: 'self', fqdn: 'self.tail.test', addresses: ['100.64.0.1', 'fd7a:115c:a1e0::1'], homeRelay: 900 })
    expect(netmap.peers[0]).toEqual({
      nodeKey: nodeKey(2),
      discoKey: discoKey(2),
      name: 'alpha',
      fqdn: 'alpha.tail.test',
      addresses: ['100.64.0.2', 'fd7a:115c:a1e0::2'],
      allowedIPs: ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'],
      homeRelay: 900,
      online: true,
    })
  })

  it('nothing is emitted before our own Node arrives; the message after it carries everything merged so far', () => {
    const session = new TailnetMapSession()
    expect(session.apply({ Peers: [node(2, 'alpha')], DERPMap: DERP_MAP }, 0)).toBeUndefined()
    const result = session.apply({ Node: SELF }, 0)
    expect(result!.netmap.peers.map((p) => p.name)).toEqual(['alpha'])
    expect([...result!.netmap.relayMap.regions.keys()]).toEqual([900])
  })

  it('a keep-alive changes nothing and emits nothing', () => {
    const { session } = started()
    const before = session.netmap
    expect(session.apply({ KeepAlive: true }, 1000)).toBeUndefined()
    expect(session.netmap).toBe(before)
  })

  it('non-empty Peers replaces the whole set and the deltas in the same message are ignored', () => {
    const { session } = started()
    const result = session.apply({ Peers: [node(4, 'charlie')], PeersRemoved: [4], PeersChanged: [node(5, 'delta')], OnlineChange: { '4': false } }, 0)
    expect(names(session)).toEqual(['charlie'])
    expect(session.netmap!.peers[0]!.online).toBe(true)
    expect(result!.change).toEqual({ upsert: [nodeKey(4)], remove: [nodeKey(2), nodeKey(3)], other: false })
  })

  it('empty Peers is not "no peers": it is ignored and the deltas apply (map.go checks len > 0)', () => {
    const { session } = started()
    session.apply({ Peers: [], PeersRemoved: [2] }, 0)
    expect(names(session)).toEqual(['bravo'])
  })

  it('PeersRemoved runs before PeersChanged: a node removed and re-added in one message stays', () => {
    const { session } = started()
    const result = session.apply({ PeersRemoved: [2], PeersChanged: [node(2, 'alpha', { Online: false })] }, 0)
    expect(names(session)).toEqual(['alpha', 'bravo'])
    expect(session.netmap!.peers[0]!.online).toBe(false)
    expect(result!.change.upsert).toEqual([nodeKey(2)])
  })

  it('PeersChanged upserts whole nodes: a new node is added, a changed one replaced (fields it omits are gone)', () => {
    const { session } = started()
    session.apply({ PeersChanged: [node(4, 'charlie'), { ID: 3, Name: 'bravo2.tail.test.', Key: nodeKey(3), Addresses: ['100.64.0.3/32'] }] }, 0)
    expect(names(session)).toEqual(['alpha', 'bravo2', 'charlie'])
    const bravo = session.netmap!.peers[1]!
    expect(bravo.homeRelay).toBeNull()
    expect(bravo.discoKey).toBeNull()
    expect(bravo.online).toBeUndefined()
  })

  it('PeersChangedPatch changes only its non-zero fields, and skips unknown node ids', () => {
    const { session } = started()
    const result = session.apply(
      {
        PeersChangedPatch: [
          { NodeID: 2, DERPRegion: 901, Online: false, DiscoKey: discoKey(9) },
          { NodeID: 3, DERPRegion: 0, Key: null },
          { NodeID: 77, DERPRegion: 5 },
        ],
      },
      0,
    )
    const [alpha, bravo] = session.netmap!.peers
    expect(alpha).toMatchObject({ homeRelay: 901, online: false, discoKey: discoKey(9), nodeKey: nodeKey(2) })
    expect(bravo).toMatchObject({ homeRelay: 900, online: true, nodeKey: nodeKey(3) })
    expect(result!.change).toEqual({ upsert: [nodeKey(2)], remove: [], other: false })
  })

  it('a patched Key moves the peer to its new node key (remove old, upsert new)', () => {
    const { session } = started()
    const result = session.apply({ PeersChangedPatch: [{ NodeID: 2, Key: nodeKey(42) }] }, 0)
    expect(result!.change).toEqual({ upsert: [nodeKey(42)], remove: [nodeKey(2)], other: false })
  })

  it('OnlineChange sets Online, PeerSeenChange sets LastSeen to now (true) or clears it (false); unknown ids ignored', () => {
    const { session } = started()
    session.apply({ OnlineChange: { '2': false, '99': true }, PeerSeenChange: { '2': true, '3': false } }, 1_700_000_000_000)
    const [alpha, bravo] = session.netmap!.peers
    expect(alpha!.online).toBe(false)
    expect(alpha!.lastSeen).toBe(1_700_000_000_000)
    expect(bravo!.lastSeen).toBeNull()
  })

  it('a peer whose KeyExpiry has passed (Headscale after `tailscale logout`) leaves the netmap; the zero time and null never expire', () => {
    const { session } = started()
    const T = Date.parse('2026-12-07T12:00:00Z')
    const result = session.apply(
      {
        PeersChanged: [
          node(2, 'alpha', { KeyExpiry: '2026-12-07T11:59:59Z' }),
          node(3, 'bravo', { KeyExpiry: '0001-01-01T00:00:00Z' }),
          node(4, 'charlie', { KeyExpiry: null as unknown as string }),
        ],
      },
      T,
    )
    expect(names(session)).toEqual(['bravo', 'charlie'])
    expect(result!.change).toEqual({ upsert: [nodeKey(4)], remove: [nodeKey(2)], other: false })
    expect(session.nextEvent()).toBeUndefined()
  })

  it('a peer flagged Expired by control leaves the netmap whatever its KeyExpiry says', () => {
    const { session } = started()
    session.apply({ PeersChanged: [node(3, 'bravo', { Expired: true, KeyExpiry: '2099-01-01T00:00:00Z' })] }, 0)
    expect(names(session)).toEqual(['alpha'])
  })

  it('nextEvent is the earliest future KeyExpiry; poll at that instant drops the peer, before it changes nothing', () => {
    const { session } = started()
    const T = Date.parse('2026-12-07T12:00:00Z')
    session.apply({ PeersChanged: [node(2, 'alpha', { KeyExpiry: new Date(T + 60_000).toISOString() }), node(3, 'bravo', { KeyExpiry: new Date(T + 5000).toISOString() })] }, T)
    expect(names(session)).toEqual(['alpha', 'bravo'])
    expect(session.nextEvent()).toBe(T + 5000)
    expect(session.poll(T + 4999)).toBeUndefined()
    const update = session.poll(T + 5000)
    expect(update!.change).toEqual({ upsert: [], remove: [nodeKey(3)], other: false })
    expect(update!.netmap.peers.map((p) => p.name)).toEqual(['alpha'])
    expect(session.netmap).toBe(update!.netmap)
    expect(session.nextEvent()).toBe(T + 60_000)
    // A later key (re-login) brings the peer back.
    session.apply({ PeersChanged: [node(3, 'bravo', { KeyExpiry: new Date(T + 3_600_000).toISOString() })] }, T + 6000)
    expect(names(session)).toEqual(['alpha', 'bravo'])
  })

  it('nil AllowedIPs means the Addresses (capver 112); an explicit list (subnet routes) is kept', () => {
    const { session } = started()
    session.apply({ PeersChanged: [node(2, 'alpha', { AllowedIPs: ['100.64.0.2/32', '192.168.1.0/24'] })] }, 0)
    expect(session.netmap!.peers[0]!.allowedIPs).toEqual(['100.64.0.2/32', '192.168.1.0/24'])
    expect(session.netmap!.peers[1]!.allowedIPs).toEqual(['100.64.0.3/32', 'fd7a:115c:a1e0::3/128'])
  })

  it('HomeDERP wins; without it the legacy DERP "127.3.3.40:<region>" gives the home region', () => {
    expect(homeRegion({ HomeDERP: 7, DERP: '127.3.3.40:3' })).toBe(7)
    expect(homeRegion({ DERP: '127.3.3.40:3' })).toBe(3)
    expect(homeRegion({ DERP: '127.3.3.40:0' })).toBeNull()
    expect(homeRegion({ DERP: '10.0.0.1:3' })).toBeNull()
    expect(homeRegion({})).toBeNull()
  })

  it('our own node in Peers is left out; the zero disco key means none', () => {
    const session = new TailnetMapSession()
    session.apply({ Node: SELF, Peers: [SELF, node(2, 'alpha', { DiscoKey: `discokey:${'0'.repeat(64)}` })] }, 0)
    expect(names(session)).toEqual(['alpha'])
    expect(session.netmap!.peers[0]!.discoKey).toBeNull()
  })

  it('a malformed peer is left out with a NetmapError naming it; the other peers are kept', () => {
    const session = new TailnetMapSession()
    const result = session.apply(
      { Node: SELF, Peers: [{ ...node(2, 'alpha'), Key: 'nodekey:xyz' }, { ...node(3, 'bravo'), Addresses: ['100.64.0.300/32'] }, node(4, 'charlie')] },
      0,
    )
    expect(names(session)).toEqual(['charlie'])
    expect(result!.rejected.map((e) => e instanceof NetmapError && e.message)).toEqual([
      'node 2 (alpha.tail.test.) has no valid nodekey: "nodekey:xyz"',
      'node 3 (bravo.tail.test.) has a malformed prefix "100.64.0.300/32"',
    ])
  })

  it('our own node without a valid key is a NetmapError, and the previous netmap stays', () => {
    const { session } = started()
    const before = session.netmap
    expect(() => session.apply({ Node: { ...SELF, Key: 'bogus' }, PeersRemoved: [2] }, 0)).toThrow(NetmapError)
    expect(session.netmap).toBe(before)
    session.apply({ OnlineChange: { '2': false } }, 0)
    expect(names(session)).toEqual(['alpha', 'bravo'])
    expect(session.netmap!.self.nodeKey).toBe(nodeKey(1))
  })
})

describe('TailnetMapSession: DERP map, filter, DNS', () => {
  it('DERP nodes become https URLs with the port only when not 443, or plain http (TS_DEBUG_USE_DERP_HTTP) when asked', () => {
    const https = started().session.netmap!.relayMap.regions.get(900)!
    expect(https).toEqual({ id: 900, code: 'lab', name: 'Lab', nodes: [{ name: '900a', url: 'https://10.0.0.2:3340/derp', stunPort: -1 }] })
    const plain = started({ derpPlainHTTP: true }).session.netmap!.relayMap.regions.get(900)!
    expect(plain.nodes[0]!.url).toBe('http://10.0.0.2:3340/derp')
    const session = new TailnetMapSession()
    session.apply(
      {
        Node: SELF,
        DERPMap: { Regions: { '1': { RegionID: 1, RegionCode: 'a', RegionName: 'A', Nodes: [{ Name: '1a', RegionID: 1, HostName: 'derp1.example', DERPPort: 443 }] } } },
      },
      0,
    )
    expect(session.netmap!.relayMap.regions.get(1)!.nodes[0]).toEqual({ name: '1a', url: 'https://derp1.example/derp', stunPort: 3478 })
  })

  it('DERPMap with nil Regions keeps the old regions; new Regions replace them; nil regions and STUN-only nodes are dropped; Avoid is kept', () => {
    const { session } = started()
    expect(session.apply({ DERPMap: { HomeParams: { RegionScore: { '900': 1 } } } }, 0)!.change.other).toBe(true)
    expect([...session.netmap!.relayMap.regions.keys()]).toEqual([900])
    session.apply(
      {
        DERPMap: {
          Regions: {
            '900': null,
            '901': { RegionID: 901, RegionCode: 'b', RegionName: 'B', Avoid: true, Nodes: [{ Name: '901a', RegionID: 901, HostName: 'b.example' }] },
            '902': { RegionID: 902, RegionCode: 'c', RegionName: 'C', Nodes: [{ Name: '902s', RegionID: 902, HostName: 'c.example', STUNOnly: true }] },
          },
        },
      },
      0,
    )
    expect([...session.netmap!.relayMap.regions.values()]).toEqual([
      { id: 901, code: 'b', name: 'B', avoid: true, nodes: [{ name: '901a', url: 'https://b.example/derp', stunPort: 3478 }] },
    ])
  })

  it('PacketFilter is chunk "base"; PacketFilters chunks merge in key order, null deletes one, "*": null clears all first', () => {
    const { session } = started()
    const rule = (src: string) => ({ SrcIPs: [src], DstPorts: [{ IP: '*', Ports: { First: 22, Last: 22 } }] })
    session.apply({ PacketFilters: { zeta: [rule('100.64.0.9')], alpha: [rule('100.64.0.8')] } }, 0)
    expect(session.filterRules.map((r) => r.SrcIPs![0])).toEqual(['100.64.0.8', '*', '100.64.0.9'])
    session.apply({ PacketFilters: { base: null } }, 0)
    expect(session.filterRules.map((r) => r.SrcIPs![0])).toEqual(['100.64.0.8', '100.64.0.9'])
    const result = session.apply({ PacketFilters: { '*': null, mid: [rule('100.64.0.7')] } }, 0)
    expect(session.filterRules.map((r) => r.SrcIPs![0])).toEqual(['100.64.0.7'])
    expect(result!.change.other).toBe(true)
    expect(session.netmap!.packetFilter).toEqual([
      {
        srcIPs: ['100.64.0.7/32'],
        dstPorts: [
          { prefix: '0.0.0.0/0', ports: { first: 22, last: 22 } },
          { prefix: '::/0', ports: { first: 22, last: 22 } },
        ],
        protocols: [],
      },
    ])
  })

  it('a tailnet that sent no filter admits nothing new: packetFilter is the empty list, not undefined', () => {
    const session = new TailnetMapSession()
    session.apply({ Node: SELF }, 0)
    expect(session.netmap!.packetFilter).toEqual([])
  })

  it('DNSConfig nil and Domain "" leave DNS unchanged; a new Domain or config replaces it', () => {
    const { session } = started()
    expect(session.netmap!.dns).toEqual({ domain: 'tail.test', magicDNS: true, nameservers: ['1.1.1.1'], searchDomains: ['tail.test'] })
    expect(session.apply({ Domain: '', DNSConfig: null, OnlineChange: { '2': false } }, 0)!.change.other).toBe(false)
    expect(session.netmap!.dns!.domain).toBe('tail.test')
    session.apply({ DNSConfig: { Domains: ['corp.example.'], Resolvers: [] } }, 0)
    expect(session.netmap!.dns).toEqual({ domain: 'corp.example', magicDNS: true, nameservers: [], searchDomains: ['corp.example.'] })
  })
})

describe('filter rules and addresses', () => {
  it('expandFilter parses SrcIPs and DstPorts as wgengine/filter does: *, CIDR, bare IP, range, cap: skipped, bad entries skipped', () => {
    expect(
      expandFilter([
        {
          SrcIPs: ['*', '100.64.0.0/10', '100.64.0.5', 'fd7a::1', '100.64.0.1-100.64.0.6', 'cap:ssh', 'garbage'],
          DstPorts: [{ IP: '100.64.0.1', Ports: { First: 80, Last: 443 } }],
          IPProto: [6, 300, -1],
        },
      ]),
    ).toEqual([
      {
        srcIPs: ['0.0.0.0/0', '::/0', '100.64.0.0/10', '100.64.0.5/32', 'fd7a::1/128', '100.64.0.1/32', '100.64.0.2/31', '100.64.0.4/31', '100.64.0.6/32'],
        dstPorts: [{ prefix: '100.64.0.1/32', ports: { first: 80, last: 443 } }],
        protocols: [6],
      },
    ])
  })

  it('rangeToPrefixes gives the fewest covering prefixes, IPv6 too', () => {
    expect(rangeToPrefixes('10.0.0.0', '10.0.0.255')).toEqual(['10.0.0.0/24'])
    expect(rangeToPrefixes('0.0.0.0', '255.255.255.255')).toEqual(['0.0.0.0/0'])
    expect(rangeToPrefixes('fd00::', 'fd00::3')).toEqual(['fd00::/126'])
    expect(() => rangeToPrefixes('10.0.0.2', '10.0.0.1')).toThrow(NetmapError)
  })
})
