// Retransmission timeout per RFC 6298: SRTT/RTTVAR smoothing, a 200 ms floor (as Linux uses,
// below RFC 6298's conservative 1 s), a 60 s ceiling and exponential backoff.

export const INITIAL_RTO_MS = 1000
export const MIN_RTO_MS = 200
export const MAX_RTO_MS = 60_000
const CLOCK_GRANULARITY_MS = 1

export class RttEstimator {
  srtt: number | undefined
  rttvar = 0
  private baseRto = INITIAL_RTO_MS
  private backoffs = 0

  constructor(
    private readonly minRto = MIN_RTO_MS,
    private readonly maxRto = MAX_RTO_MS,
  ) {}

  /** The current timeout including backoff. */
  get rto(): number {
    return Math.min(this.maxRto, this.baseRto * 2 ** this.backoffs)
  }

  get backoffCount(): number {
    return this.backoffs
  }

  /**
   * Adds a measurement. Callers follow Karn's rule: never sample a retransmitted segment unless
   * a timestamp echo identifies which transmission is being acknowledged.
   */
  sample(rtt: number): void {
    const r = Math.max(0, rtt)
    if (this.srtt === undefined) {
      this.srtt = r
      this.rttvar = r / 2
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r)
      this.srtt = 0.875 * this.srtt + 0.125 * r
    }
    this.baseRto = Math.min(this.maxRto, Math.max(this.minRto, this.srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.rttvar)))
    this.backoffs = 0
  }

  /** RFC 6298 §5.5: double the timer after it expires. */
  backoff(): void {
    if (this.rto < this.maxRto) this.backoffs++
  }

  /** New data was acknowledged: the backed-off value may be dropped once a fresh sample arrives; keep it until then. */
  resetBackoff(): void {
    this.backoffs = 0
  }
}
