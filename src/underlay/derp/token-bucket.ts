// A byte token bucket, clocked by the caller: ServerInfo may announce one and both ends honour it.
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor(
    readonly bytesPerSecond: number,
    readonly burstBytes: number,
    now: number,
  ) {
    if (!(bytesPerSecond > 0) || !(burstBytes > 0)) throw new RangeError('token bucket rate and burst must be positive')
    this.tokens = burstBytes
    this.updatedAt = now
  }

  /** Takes `bytes` tokens if that many are available now; otherwise takes nothing. */
  take(bytes: number, now: number): boolean {
    this.refill(now)
    if (this.tokens < bytes) return false
    this.tokens -= bytes
    return true
  }

  available(now: number): number {
    this.refill(now)
    return this.tokens
  }

  private refill(now: number): void {
    if (now > this.updatedAt) {
      this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.updatedAt) * this.bytesPerSecond) / 1000)
      this.updatedAt = now
    }
  }
}
