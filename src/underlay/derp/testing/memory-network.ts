// Test helper: DERP byte streams to real sans-IO relay cores (one per URL) in memory, for the
// drivers' and the agent's relay-pool tests.
import { Relay, type RelayClient } from '../../../server/relay.ts'
import { generateKeyPair } from '../../../crypto/index.ts'
import type { DerpDialer } from '../dialer.ts'

/** Streams that deliver bytes to a sans-IO Relay (one per URL) on microtasks, like a socket would. */
export class MemoryNetwork {
  readonly relays = new Map<string, Relay>()
  readonly links: Array<{ url: string; conn: RelayClient; close: (reason: string) => void }> = []
  down = false
  /** Relays that refuse connections (see `kill`). */
  readonly deadUrls = new Set<string>()

  /** The relay at `url` dies: its connections drop and new ones are refused until `revive`. */
  kill(url: string): void {
    this.deadUrls.add(url)
    for (const link of this.links) if (link.url === url) link.close('relay died')
  }

  revive(url: string): void {
    this.deadUrls.delete(url)
  }

  relay(url: string): Relay {
    let relay = this.relays.get(url)
    if (!relay) this.relays.set(url, (relay = new Relay({ privateKey: generateKeyPair().privateKey })))
    return relay
  }

  readonly dial: DerpDialer = (url, handlers) => {
    let open = true
    const close = (reason: string) => {
      if (!open) return
      open = false
      queueMicrotask(() => handlers.onClose(reason))
    }
    if (this.down || this.deadUrls.has(url)) {
      close('connection refused')
      return { send() {}, bufferedAmount: 0, close: () => close('closed locally') }
    }
    const relay = this.relay(url)
    const conn = relay.accept(Date.now(), 'memory')
    const flush = () => {
      for (let out = conn.takeOutput(); out; out = conn.takeOutput()) {
        const bytes = out.slice()
        queueMicrotask(() => open && handlers.onData(bytes))
      }
    }
    conn.onOutput = () => queueMicrotask(flush)
    conn.onClose = (reason) => close(reason)
    this.links.push({ url, conn, close: (reason) => relay.close(conn, reason, Date.now(), 'normal') })
    queueMicrotask(() => {
      handlers.onOpen()
      flush()
    })
    return {
      send: (bytes) => {
        const copy = bytes.slice()
        queueMicrotask(() => open && relay.receive(conn, copy, Date.now()))
      },
      bufferedAmount: 0,
      close: () => {
        relay.close(conn, 'client closed', Date.now(), 'normal')
        close('closed locally')
      },
    }
  }
}
