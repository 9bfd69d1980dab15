import { HyStart } from './hystart.ts'

// CUBIC congestion control (RFC 9438) with slow start (RFC 5681, appropriate byte counting
// RFC 3465 with L = 2, HyStart++ RFC 9406) and the Reno-friendly region. Windows are kept in bytes; the cubic
// function works in segments and seconds as the RFC states it.

const BETA = 0.7
const C = 0.4
const ALPHA_RENO = (3 * (1 - BETA)) / (1 + BETA)
const INITIAL_WINDOW_SEGMENTS = 10

/** Everything a congestion response changes, so a spurious one can be undone (RFC 4015). */
export interface CubicState {
  cwnd: number
  ssthresh: number
  wMax: number
  k: number
  epochStart: number | undefined
  wEst: number
}

export class Cubic {
  cwnd: number
  ssthresh = Infinity
  private wMax = 0
  private k = 0
  private epochStart: number | undefined
  private wEst = 0
  private readonly hystart = new HyStart()

  constructor(private mss: number) {
    this.cwnd = INITIAL_WINDOW_SEGMENTS * mss
  }

  setMss(mss: number): void {
    if (this.cwnd === INITIAL_WINDOW_SEGMENTS * this.mss) this.cwnd = INITIAL_WINDOW_SEGMENTS * mss
    this.mss = mss
  }

  get inSlowStart(): boolean {
    return this.cwnd < this.ssthresh
  }

  /**
   * `acked` new bytes were acknowledged while `flight` bytes were outstanding. The window only
   * grows while it is actually limiting the sender (RFC 7661's concern: no growth while
   * application- or receiver-window-limited).
   */
  onAck(acked: number, flight: number, now: number, srtt: number | undefined, ackOffset = 0, sndNxt = 0): void {
    if (this.inSlowStart && this.hystart.onAck(ackOffset, sndNxt)) this.ssthresh = this.cwnd
    if (2 * flight < this.cwnd) return
    if (this.inSlowStart) {
      this.cwnd += Math.min(acked, 2 * this.mss) / this.hystart.growthDivisor
      return
    }
    const mss = this.mss
    if (this.epochStart === undefined) {
      this.epochStart = now
      this.wEst = this.cwnd
      if (this.wMax <= this.cwnd) {
        this.k = 0
        this.wMax = this.cwnd
      } else {
        this.k = Math.cbrt((this.wMax - this.cwnd) / mss / C)
      }
    }
    const t = (now - this.epochStart + (srtt ?? 0)) / 1000
    const cwndSeg = this.cwnd / mss
    const wCubic = C * (t - this.k) ** 3 + this.wMax / mss
    const target = Math.min(Math.max(wCubic, cwndSeg), 1.5 * cwndSeg)
    const ackedSeg = acked / mss
    this.wEst += (ALPHA_RENO * ackedSeg * mss) / cwndSeg
    let next = this.cwnd + ((target - cwndSeg) / cwndSeg) * ackedSeg * mss
    if (this.wEst > wCubic * mss) next = Math.max(next, this.wEst)
    this.cwnd = Math.max(next, this.cwnd)
  }

  /** Feeds HyStart++ while in slow start. */
  onRttSample(rtt: number): void {
    if (this.inSlowStart) this.hystart.onRttSample(rtt)
  }

  get inConservativeSlowStart(): boolean {
    return this.inSlowStart && this.hystart.inConservativeSlowStart
  }

  save(): CubicState {
    return { cwnd: this.cwnd, ssthresh: this.ssthresh, wMax: this.wMax, k: this.k, epochStart: this.epochStart, wEst: this.wEst }
  }

  restore(state: CubicState): void {
    this.cwnd = Math.max(this.cwnd, state.cwnd)
    this.ssthresh = state.ssthresh
    this.wMax = state.wMax
    this.k = state.k
    this.epochStart = state.epochStart
    this.wEst = state.wEst
  }

  /** Loss detected by duplicate ACKs or SACK: multiplicative decrease, entering recovery. */
  onCongestion(): void {
    this.reduce()
    this.cwnd = this.ssthresh
  }

  /** Retransmission timeout: back to one segment (RFC 5681 §3.1). */
  onTimeout(): void {
    this.reduce()
    this.cwnd = this.mss
  }

  private reduce(): void {
    this.hystart.reset()
    // Fast convergence (RFC 9438 §4.7): release bandwidth when the plateau keeps dropping.
    this.wMax = this.cwnd < this.wMax ? (this.cwnd * (1 + BETA)) / 2 : this.cwnd
    this.ssthresh = Math.max(this.cwnd * BETA, 2 * this.mss)
    this.epochStart = undefined
  }
}
