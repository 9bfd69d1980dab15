// HyStart++ (RFC 9406): leave slow start when the round-trip time starts to climb, i.e. when
// the bottleneck queue begins to fill, instead of when it overflows and drops a window's worth.

const MIN_RTT_THRESH_MS = 4
const MAX_RTT_THRESH_MS = 16
const MIN_RTT_DIVISOR = 8
const N_RTT_SAMPLE = 8
const CSS_GROWTH_DIVISOR = 4
const CSS_ROUNDS = 5

export class HyStart {
  /** SND.NXT when the current round began; the round ends when it is acknowledged. */
  private roundEnd = -Infinity
  private lastRoundMinRtt = Infinity
  private currentRoundMinRtt = Infinity
  private samples = 0
  /** Conservative Slow Start: the min RTT that triggered it, and rounds spent in it. */
  private css: { baseline: number; rounds: number } | undefined

  /** Slow-start increase is divided by this (1 normally, 4 in Conservative Slow Start). */
  get growthDivisor(): number {
    return this.css ? CSS_GROWTH_DIVISOR : 1
  }

  get inConservativeSlowStart(): boolean {
    return this.css !== undefined
  }

  onRttSample(rtt: number): void {
    if (rtt < this.currentRoundMinRtt) this.currentRoundMinRtt = rtt
    this.samples++
    if (this.css) {
      // The RTT rise was a fluke: back to standard slow start (RFC 9406 §4.2).
      if (this.samples >= N_RTT_SAMPLE && this.currentRoundMinRtt < this.css.baseline) this.css = undefined
      return
    }
    if (this.samples >= N_RTT_SAMPLE && this.lastRoundMinRtt !== Infinity && this.currentRoundMinRtt !== Infinity) {
      const threshold = Math.min(MAX_RTT_THRESH_MS, Math.max(MIN_RTT_THRESH_MS, this.lastRoundMinRtt / MIN_RTT_DIVISOR))
      if (this.currentRoundMinRtt >= this.lastRoundMinRtt + threshold) this.css = { baseline: this.currentRoundMinRtt, rounds: 0 }
    }
  }

  /**
   * New data acknowledged up to `ackOffset` while `sndNxt` is the next byte to send. Returns true
   * when slow start should end (Conservative Slow Start ran its rounds).
   */
  onAck(ackOffset: number, sndNxt: number): boolean {
    if (ackOffset < this.roundEnd) return false
    this.roundEnd = sndNxt
    this.lastRoundMinRtt = this.currentRoundMinRtt
    this.currentRoundMinRtt = Infinity
    this.samples = 0
    if (this.css && ++this.css.rounds >= CSS_ROUNDS) {
      this.css = undefined
      return true
    }
    return false
  }

  /** Congestion was signalled: slow start is over, whatever HyStart thought. */
  reset(): void {
    this.css = undefined
  }
}
