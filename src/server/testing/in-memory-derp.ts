// DERP client sessions wired to sans-IO relays in memory, for the relay and mesh unit tests:
// `connect` logs a session in to a relay, `pump` moves bytes both ways until nothing moves.
import { generateKeyPair } from '../../crypto/index.ts'
import { type DerpClientEvent, DerpClientSession, type DerpClientSessionOptions } from '../../underlay/derp/session.ts'
import type { Relay, RelayClient } from '../relay.ts'

export interface DerpLink {
  relay: Relay
  session: DerpClientSession
  conn: RelayClient
  events: DerpClientEvent[]
  closed?: string
}

export class InMemoryDerp {
  now = 1000
  readonly links: DerpLink[] = []

  connect(relay: Relay, options: Partial<DerpClientSessionOptions> = {}, remoteAddress = '127.0.0.1:4242'): DerpLink {
    const session = new DerpClientSession({ privateKey: generateKeyPair().privateKey, ...options }, this.now)
    const conn = relay.accept(this.now, remoteAddress)
    const link: DerpLink = { relay, session, conn, events: [] }
    conn.onClose = (reason) => (link.closed = reason)
    this.links.push(link)
    this.pump()
    return link
  }

  pump(): void {
    for (let moved = true; moved;) {
      moved = false
      for (const link of this.links) {
        if (link.closed) continue
        for (let out = link.session.takeOutput(); out; out = link.session.takeOutput()) {
          link.relay.receive(link.conn, out.slice(), this.now)
          moved = true
        }
        for (let out = link.conn.takeOutput(); out; out = link.conn.takeOutput()) {
          link.session.receive(out.slice(), this.now)
          moved = true
        }
        for (let e = link.session.takeEvent(); e; e = link.session.takeEvent()) link.events.push(e)
      }
    }
  }
}

export const packetsOf = (link: DerpLink) => link.events.filter((e) => e.type === 'packet')
