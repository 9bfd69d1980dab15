// Per-source handshake rate limit while the device is under load, after wireguard-go's
// ratelimiter/ratelimiter.go (itself after the Linux driver's ratelimiter.c): a token bucket per
// source of 20 packets per second with a burst of 5, and entries not seen for a second forgotten.
//
// wireguard-go limits only handshakes that carry a valid MAC2 (the expensive DH) and answers every
// MAC1-valid one without MAC2 with a cookie reply. Every member of a Burrow network knows every
// node's public key, so anyone can make a valid MAC1: here the limit covers cookie replies too, so a
// member flooding initiations draws 20 answers a second, not one per initiation.

/** wireguard-go: packetsPerSecond = 20. */
export const HANDSHAKES_PER_SECOND = 20
/** wireguard-go: packetsBurstable = 5. */
export const HANDSHAKE_BURST = 5
/** wireguard-go: garbageCollectTime = time.Second. */
const FORGET_AFTER_MS = 1000
const COST_MS = 1000 / HANDSHAKES_PER_SECOND
const MAX_TOKENS_MS = COST_MS * HANDSHAKE_BURST

interface Entry {
  lastTime: number
  /** Milliseconds of allowance, spent COST_MS per packet. */
  tokens: number
}

/** Sans-IO: every call takes `now` (ms, monotonic). */
export class HandshakeRateLimiter {
  private readonly table = new Map<string, Entry>()
  private lastSweep = -Infinity

  /** @param maxSources sources tracked at once; a new source past it is refused until entries expire */
  constructor(private readonly maxSources = 1 << 16) {
    if (!Number.isInteger(maxSources) || maxSources < 1) throw new RangeError(`maxSources must be a positive integer, got ${maxSources}`)
  }

  get size(): number {
    return this.table.size
  }

  /** Whether one more handshake message from `source` may be processed now (and counts it). */
  allow(source: string, now: number): boolean {
    if (now - this.lastSweep >= FORGET_AFTER_MS) this.sweep(now)
    const entry = this.table.get(source)
    if (entry === undefined) {
      if (this.table.size >= this.maxSources) return false
      // As in wireguard-go, a new source starts with a full bucket minus this packet.
      this.table.set(source, { lastTime: now, tokens: MAX_TOKENS_MS - COST_MS })
      return true
    }
    entry.tokens = Math.min(MAX_TOKENS_MS, entry.tokens + Math.max(0, now - entry.lastTime))
    entry.lastTime = Math.max(entry.lastTime, now)
    if (entry.tokens >= COST_MS) {
      entry.tokens -= COST_MS
      return true
    }
    return false
  }

  private sweep(now: number): void {
    this.lastSweep = now
    for (const [source, entry] of this.table) if (now - entry.lastTime > FORGET_AFTER_MS) this.table.delete(source)
  }
}
