// Peer-map fixtures for coordination tests: peer `n` has node key n repeated, addresses .n.
import type { PeerEntry } from '../protocol.ts'

export const testNodeKey = (n: number): string => `nodekey:${n.toString(16).padStart(2, '0').repeat(32)}`

export function peerEntry(n: number, overrides: Partial<PeerEntry> = {}): PeerEntry {
  return {
    id: n,
    nodeKey: testNodeKey(n),
    discoKey: `discokey:${'cd'.repeat(32)}`,
    hostname: `p${n}`,
    addresses: [`100.64.0.${n}`, `fd00::${n}`],
    online: true,
    homeRelay: null,
    lastSeen: 1,
    ephemeral: false,
    ...overrides,
  }
}
