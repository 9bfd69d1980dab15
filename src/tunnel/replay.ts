// Sliding-window replay protection in the style of RFC 6479: a ring of 32-bit words, of which
// all but one are the window, so advancing only ever clears whole words.
//
// Counters are u64 and arrive as two u32 halves: 2^60 and 2^64 − 2^13 − 1 are beyond Number's
// exact range, and only differences that are small relative to the window need exact arithmetic.

const WORD_BITS = 32
const RING_WORDS = 256
/** 8160 counters: far more than the 2048 the design requires, like Linux's 8192-bit ring. */
export const REPLAY_WINDOW = (RING_WORDS - 1) * WORD_BITS
const TWO_POW_32 = 4294967296
const TWO_POW_27 = 134217728
/** REJECT_AFTER_MESSAGES = 2^64 − 2^13 − 1 split into halves; counters at or above it are refused. */
export const REJECT_HIGH = 0xffffffff
export const REJECT_LOW = 0xffffdfff

export function atOrBeyondReject(high: number, low: number): boolean {
  return high === REJECT_HIGH && low >= REJECT_LOW
}

export class ReplayWindow {
  private readonly ring = new Uint32Array(RING_WORDS)
  private lastHigh = 0
  private lastLow = 0

  /** Whether `counter` (high:low) is new and inside the window. Changes nothing. */
  check(high: number, low: number): boolean {
    if (atOrBeyondReject(high, low)) return false
    // Exact while |difference| < 2^53; beyond that the sign and "far outside the window" survive rounding.
    const ahead = (high - this.lastHigh) * TWO_POW_32 + (low - this.lastLow)
    if (ahead > 0) return true
    if (-ahead > REPLAY_WINDOW) return false
    return (this.ring[(low >>> 5) & (RING_WORDS - 1)]! & (1 << (low & 31))) === 0
  }

  /** Records an authenticated counter; false (nothing changed) when it is replayed or too old. */
  accept(high: number, low: number): boolean {
    if (!this.check(high, low)) return false
    const ahead = (high - this.lastHigh) * TWO_POW_32 + (low - this.lastLow)
    if (ahead > 0) {
      const blocksAhead = (high - this.lastHigh) * TWO_POW_27 + ((low >>> 5) - (this.lastLow >>> 5))
      const toClear = Math.min(blocksAhead, RING_WORDS)
      let word = (this.lastLow >>> 5) & (RING_WORDS - 1)
      for (let i = 0; i < toClear; i++) {
        word = (word + 1) & (RING_WORDS - 1)
        this.ring[word] = 0
      }
      this.lastHigh = high
      this.lastLow = low
    }
    this.ring[(low >>> 5) & (RING_WORDS - 1)]! |= 1 << (low & 31)
    return true
  }
}
