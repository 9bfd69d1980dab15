// Token buckets for the coordination service, sans-IO (`now` in ms is passed in). A bucket holds
// up to `burst` tokens and gains one every `intervalMs`; each update takes one. Keyed sets of
// buckets forget keys whose bucket is full again, so an attacker cycling through source
// addresses or identities costs memory only for as long as its tokens take to come back.

/** Fractional refills leave float error (0.9999999999999962 after four 0.25s): that much short of a token counts as one. */
const EPSILON = 1e-9

export class TokenBucket {
  private tokens: number
  private stamp: number

  constructor(
    readonly burst: number,
    readonly intervalMs: number,
    now: number,
  ) {
    if (!(burst >= 1) || !(intervalMs > 0)) throw new RangeError(`a token bucket needs burst ≥ 1 and intervalMs > 0, got ${burst}, ${intervalMs}`)
    this.tokens = burst
    this.stamp = now
  }

  private refill(now: number): void {
    if (now <= this.stamp) return
    this.tokens = Math.min(this.burst, this.tokens + (now - this.stamp) / this.intervalMs)
    this.stamp = now
  }

  /** Whole tokens available at `now`. */
  available(now: number): number {
    this.refill(now)
    return Math.floor(this.tokens + EPSILON)
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now)
    if (this.tokens < 1 - EPSILON) return false
    this.tokens = Math.max(0, this.tokens - 1)
    return true
  }

  /** The earliest time at which `take` succeeds (`now` if it would now). */
  readyAt(now: number): number {
    this.refill(now)
    if (this.tokens >= 1 - EPSILON) return now
    // The slack keeps float error from rounding 1 ms up to 2.
    return now + Math.max(1, Math.ceil((1 - this.tokens) * this.intervalMs - 1e-6))
  }

  /** True when the bucket is back to `burst`: forgetting it changes nothing. */
  full(now: number): boolean {
    this.refill(now)
    return this.tokens >= this.burst - EPSILON
  }
}

export class KeyedLimiter<K> {
  private readonly buckets = new Map<K, TokenBucket>()

  constructor(
    readonly burst: number,
    readonly intervalMs: number,
  ) {}

  private bucket(key: K, now: number): TokenBucket {
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      bucket = new TokenBucket(this.burst, this.intervalMs, now)
      this.buckets.set(key, bucket)
    }
    return bucket
  }

  readyAt(key: K, now: number): number {
    return this.buckets.get(key)?.readyAt(now) ?? now
  }

  take(key: K, now: number): boolean {
    return this.bucket(key, now).take(now)
  }

  /** Drops buckets that are full again; call now and then (the service does, on tick). */
  prune(now: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.full(now)) this.buckets.delete(key)
  }

  get size(): number {
    return this.buckets.size
  }
}
