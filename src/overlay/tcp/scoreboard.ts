import type { Range } from './receive-buffer.ts'

const DUP_THRESH = 3

/**
 * The sender's view of what the peer has SACKed above SND.UNA (RFC 6675 §3), by send offset,
 * and the loss inference built on it: which holes count as lost, what to retransmit next and
 * how much data is still in the network (`pipe`).
 */
export class Scoreboard {
  /** Sorted, disjoint SACKed ranges, all above SND.UNA. */
  private readonly ranges: Range[] = []
  sackedBytes = 0

  get isEmpty(): boolean {
    return this.ranges.length === 0
  }

  get highestSacked(): number | undefined {
    return this.ranges.length > 0 ? this.ranges[this.ranges.length - 1]!.end : undefined
  }

  /** Records a SACK block; returns the number of newly SACKed bytes. */
  add(start: number, end: number): number {
    if (end <= start) return 0
    let i = 0
    while (i < this.ranges.length && this.ranges[i]!.end < start) i++
    let j = i
    let s = start
    let e = end
    let covered = 0
    while (j < this.ranges.length && this.ranges[j]!.start <= e) {
      const r = this.ranges[j]!
      covered += r.end - r.start
      s = Math.min(s, r.start)
      e = Math.max(e, r.end)
      j++
    }
    this.ranges.splice(i, j - i, { start: s, end: e })
    const added = e - s - covered
    this.sackedBytes += added
    return added
  }

  /** SND.UNA moved to `una`: forget everything below it. */
  advance(una: number): void {
    while (this.ranges.length > 0 && this.ranges[0]!.start < una) {
      const r = this.ranges[0]!
      if (r.end <= una) {
        this.sackedBytes -= r.end - r.start
        this.ranges.shift()
      } else {
        this.sackedBytes -= una - r.start
        r.start = una
        break
      }
    }
  }

  clear(): void {
    this.ranges.length = 0
    this.sackedBytes = 0
  }

  isSacked(offset: number): boolean {
    for (const r of this.ranges) {
      if (offset < r.start) return false
      if (offset < r.end) return true
    }
    return false
  }

  /**
   * Unsacked bytes below the returned offset are lost (RFC 6675 IsLost): at least DupThresh
   * SACKed ranges or more than (DupThresh - 1) * MSS SACKed bytes lie above them.
   */
  lossBoundary(mss: number): number | undefined {
    let bytes = 0
    let blocks = 0
    for (let i = this.ranges.length - 1; i >= 0; i--) {
      const r = this.ranges[i]!
      bytes += r.end - r.start
      blocks += Math.ceil((r.end - r.start) / mss)
      if (blocks >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss) return r.start
    }
    return undefined
  }

  /** The first unsacked range at or after `from` and below `limit`, at most `max` bytes long. */
  nextHole(from: number, limit: number, max: number): Range | undefined {
    let start = from
    for (const r of this.ranges) {
      if (r.end <= start) continue
      if (r.start <= start) {
        start = r.end
        continue
      }
      // Hole is [start, r.start).
      if (start >= limit) return undefined
      return { start, end: Math.min(r.start, limit, start + max) }
    }
    if (start >= limit) return undefined
    return { start, end: Math.min(limit, start + max) }
  }

  /** Unsacked bytes in [from, limit). */
  unsackedBetween(from: number, limit: number): number {
    if (limit <= from) return 0
    let n = limit - from
    for (const r of this.ranges) {
      if (r.end <= from) continue
      if (r.start >= limit) break
      n -= Math.min(r.end, limit) - Math.max(r.start, from)
    }
    return n
  }
}
