// Reconnect timing, sans-IO: exponential backoff with full jitter, capped, reset once a
// connection has stayed up for a healthy while, and overridden by a relay's Restarting frame.

export interface BackoffOptions {
  baseMs?: number
  capMs?: number
  /** A connection that lasted this long resets the backoff. */
  healthyMs?: number
  /** Uniform [0, 1). */
  random?: () => number
}

export class ReconnectBackoff {
  private attempt = 0
  private connectedAt: number | undefined
  private restart: { reconnectInMs: number; until: number } | undefined
  private readonly baseMs: number
  private readonly capMs: number
  private readonly healthyMs: number
  private readonly random: () => number

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 100
    this.capMs = options.capMs ?? 30_000
    this.healthyMs = options.healthyMs ?? 60_000
    this.random = options.random ?? Math.random
  }

  get attempts(): number {
    return this.attempt
  }

  connected(now: number): void {
    this.connectedAt = now
  }

  /** The relay said it is restarting: come back after `reconnectInMs`, and keep trying at that pace for `tryForMs`. */
  restarting(reconnectInMs: number, tryForMs: number, now: number): void {
    this.restart = { reconnectInMs, until: now + reconnectInMs + tryForMs }
  }

  /** How long to wait before the next dial, given that the connection (or dial) just failed at `now`. */
  nextDelay(now: number): number {
    if (this.connectedAt !== undefined && now - this.connectedAt >= this.healthyMs) this.attempt = 0
    this.connectedAt = undefined
    if (this.restart) {
      if (now < this.restart.until) {
        const delay = this.restart.reconnectInMs
        // Only the first reconnect waits the announced time; later tries within tryFor come quickly.
        this.restart.reconnectInMs = Math.min(this.baseMs * 5, this.restart.reconnectInMs)
        this.attempt = 0
        return delay
      }
      this.restart = undefined
    }
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempt, 30))
    this.attempt++
    return Math.floor(this.random() * ceiling)
  }
}
