// Helpers shared by the tunnel's unit tests: deterministic randomness, IP packets, a wired pair.

import { clamp } from '../crypto/index.ts'
import { peerInternalsForTesting, Tunnel } from './tunnel.ts'
import type { PeerId, ReceiveResult } from './types.ts'

/** Deterministic bytes (splitmix32) so scenarios, jitter included, replay identically. */
export function seededRandom(seed: number): (length: number) => Uint8Array {
  let state = seed >>> 0
  return (length) => {
    const out = new Uint8Array(length)
    for (let i = 0; i < length; i++) {
      state = (state + 0x9e3779b9) >>> 0
      let z = state
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      out[i] = (z ^ (z >>> 16)) & 0xff
    }
    return out
  }
}

export function privateKeyFrom(seed: number): Uint8Array {
  return clamp(seededRandom(seed)(32))
}

/** A minimal IPv4 packet of `length` bytes whose payload bytes are all `fill`. */
export function ipv4Packet(length: number, fill = 0xab): Uint8Array {
  const packet = new Uint8Array(length).fill(fill)
  packet[0] = 0x45
  packet[1] = 0
  packet[2] = length >> 8
  packet[3] = length & 0xff
  return packet
}

/** Wall time of the fake clock's zero: makes TAI64N timestamps deterministic. */
export const WALL_CLOCK_OFFSET = 1_760_000_000_000

export interface PairOptions {
  presharedKeyA?: Uint8Array
  presharedKeyB?: Uint8Array
  persistentKeepaliveA?: number
  queueLimit?: number
  seed?: number
}

/** Two tunnels that know each other; `a` sees `b` as peer `toB`, `b` sees `a` as `toA`. */
export class Pair {
  readonly a: Tunnel
  readonly b: Tunnel
  readonly toB: PeerId
  readonly toA: PeerId

  constructor(options: PairOptions = {}) {
    const seed = options.seed ?? 1
    this.a = new Tunnel({ privateKey: privateKeyFrom(seed * 10 + 1), random: seededRandom(seed * 10 + 2), wallClockOffset: WALL_CLOCK_OFFSET, queueLimit: options.queueLimit })
    this.b = new Tunnel({ privateKey: privateKeyFrom(seed * 10 + 3), random: seededRandom(seed * 10 + 4), wallClockOffset: WALL_CLOCK_OFFSET, queueLimit: options.queueLimit })
    this.toB = this.a.addPeer({ publicKey: this.b.publicKey, presharedKey: options.presharedKeyA, persistentKeepalive: options.persistentKeepaliveA })
    this.toA = this.b.addPeer({ publicKey: this.a.publicKey, presharedKey: options.presharedKeyB })
  }

  /**
   * A handshake started by `a` at `now`, every message delivered. An empty packet starts it, so
   * it ends in a keepalive and leaves no data timers armed on either side.
   */
  connect(now: number): void {
    const [initiation] = this.a.send(this.toB, new Uint8Array(0), now)
    const response = this.b.receive(initiation!, now).replies
    const flushed = this.a.receive(response[0]!, now).replies
    for (const message of flushed) this.b.receive(message, now)
  }

  /** Delivers messages from one side to the other, bouncing replies until both are quiet. */
  deliver(from: 'a' | 'b', messages: Uint8Array[], now: number): { a: Uint8Array[]; b: Uint8Array[] } {
    const received = { a: [] as Uint8Array[], b: [] as Uint8Array[] }
    let side = from === 'a' ? 'b' : 'a'
    let pending = messages
    for (let hops = 0; pending.length > 0 && hops < 10; hops++) {
      const tunnel = side === 'a' ? this.a : this.b
      const next: Uint8Array[] = []
      for (const message of pending) {
        const result: ReceiveResult = tunnel.receive(message, now)
        received[side as 'a' | 'b'].push(...result.packets)
        next.push(...result.replies)
      }
      pending = next
      side = side === 'a' ? 'b' : 'a'
    }
    return received
  }

  internalsA(): ReturnType<typeof peerInternalsForTesting> {
    return peerInternalsForTesting(this.a, this.toB)
  }

  internalsB(): ReturnType<typeof peerInternalsForTesting> {
    return peerInternalsForTesting(this.b, this.toA)
  }
}

export function totalDrops(drops: Partial<Record<string, number>>): number {
  let sum = 0
  for (const value of Object.values(drops)) sum += value ?? 0
  return sum
}
