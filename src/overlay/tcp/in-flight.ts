// The sender's record of every segment sent and not yet cumulatively acknowledged, by send
// offset: which the peer SACKed, which are lost, and when each was last transmitted. Loss is
// inferred by time, as RACK does (RFC 8985): a segment is lost once a segment sent sufficiently
// later (by the reordering window) has been delivered. That tolerates reordering, detects lost
// retransmissions, and needs no duplicate-ACK counting.

export interface SentSegment {
  start: number
  end: number
  sentAt: number
  delivered: boolean
  lost: boolean
  retransmitted: boolean
}

export class InFlight {
  /** Sorted by `start`, disjoint; entries before `head` are gone. */
  private segments: SentSegment[] = []
  private head = 0
  /** Bytes SACKed but not yet cumulatively acknowledged. */
  deliveredBytes = 0
  /** Bytes deemed lost and not yet retransmitted. */
  lostBytes = 0
  /** Send time and end of the most recently sent segment known to be delivered (RACK.xmit_ts / end_seq). */
  private rackSentAt = -Infinity
  private rackEnd = -Infinity
  /** Shortest RTT seen, for the reordering window. */
  minRtt = Infinity
  /** Time a still-ambiguous segment would be declared lost (the RACK reorder timer). */
  reorderDeadline: number | undefined
  /**
   * Whether first transmissions were recorded with non-decreasing times, as they are when `now`
   * is monotonic; `detectLosses` relies on it to stop scanning early, and scans everything if not.
   */
  private sendTimesOrdered = true
  private lastFirstSentAt = -Infinity

  get isEmpty(): boolean {
    return this.head >= this.segments.length
  }

  get count(): number {
    return this.segments.length - this.head
  }

  /** Records a first transmission; segments must be sent in offset order. */
  sent(start: number, end: number, now: number): void {
    if (now < this.lastFirstSentAt) this.sendTimesOrdered = false
    this.lastFirstSentAt = now
    this.segments.push({ start, end, sentAt: now, delivered: false, lost: false, retransmitted: false })
  }

  /** Records a retransmission of `segment`. */
  resent(segment: SentSegment, now: number): void {
    if (segment.lost) {
      segment.lost = false
      this.lostBytes -= segment.end - segment.start
    }
    if (now < segment.sentAt) this.sendTimesOrdered = false
    segment.sentAt = now
    segment.retransmitted = true
  }

  /** Everything before `offset` is acknowledged. */
  acknowledge(offset: number, now: number): void {
    const s = this.segments
    while (this.head < s.length && s[this.head]!.start < offset) {
      const seg = s[this.head]!
      if (seg.end > offset) {
        // Partly acknowledged (the peer acked inside a segment): keep the rest.
        const acked = offset - seg.start
        if (seg.delivered) this.deliveredBytes -= acked
        if (seg.lost) this.lostBytes -= acked
        seg.start = offset
        break
      }
      if (seg.delivered) this.deliveredBytes -= seg.end - seg.start
      else this.noteDelivered(seg, now)
      if (seg.lost) this.lostBytes -= seg.end - seg.start
      this.head++
    }
    if (this.head > 1024 && this.head * 2 > s.length) {
      this.segments = s.slice(this.head)
      this.head = 0
    }
  }

  /** A SACK block [start, end): marks the segments it covers delivered; returns bytes newly SACKed. */
  sack(start: number, end: number, now: number): number {
    const s = this.segments
    let lo = this.head
    let hi = s.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (s[mid]!.end <= start) lo = mid + 1
      else hi = mid
    }
    let added = 0
    for (let i = lo; i < s.length && s[i]!.start < end; i++) {
      const seg = s[i]!
      if (seg.delivered || seg.start < start || seg.end > end) continue
      seg.delivered = true
      if (seg.lost) {
        seg.lost = false
        this.lostBytes -= seg.end - seg.start
      }
      this.deliveredBytes += seg.end - seg.start
      added += seg.end - seg.start
      this.noteDelivered(seg, now)
    }
    return added
  }

  private noteDelivered(seg: SentSegment, now: number): void {
    // A retransmitted segment acknowledged sooner than any RTT we have seen was the original's
    // delivery: its send time says nothing (RFC 8985 §6.2 step 2).
    if (seg.retransmitted && now - seg.sentAt < this.minRtt) return
    if (seg.sentAt > this.rackSentAt || (seg.sentAt === this.rackSentAt && seg.end > this.rackEnd)) {
      this.rackSentAt = seg.sentAt
      this.rackEnd = seg.end
    }
  }

  /**
   * Marks lost every outstanding segment sent more than `reorderWindow` before the latest
   * delivered one (RFC 8985 §6.2 step 5); returns the bytes newly marked. Sets `reorderDeadline`
   * for segments that are not lost yet but will be unless delivered by then.
   */
  detectLosses(now: number, reorderWindow: number, rtt: number): number {
    this.reorderDeadline = undefined
    if (this.rackSentAt === -Infinity) return 0
    let marked = 0
    const s = this.segments
    for (let i = this.head; i < s.length; i++) {
      const seg = s[i]!
      const sentBefore = seg.sentAt < this.rackSentAt || (seg.sentAt === this.rackSentAt && seg.end < this.rackEnd)
      // Segments are in first-send order (offsets ascending within a send time) and a
      // retransmission only moves a send time later, so past a never-retransmitted segment that
      // was not sent before the RACK segment, no segment was: none of them can be lost yet.
      // This keeps the per-ACK scan from walking the whole window.
      if (!sentBefore && !seg.retransmitted && this.sendTimesOrdered) break
      if (seg.delivered || seg.lost) continue
      if (!sentBefore) continue
      const lostAt = seg.sentAt + rtt + reorderWindow
      if (this.rackSentAt - seg.sentAt >= reorderWindow || now >= lostAt) {
        seg.lost = true
        this.lostBytes += seg.end - seg.start
        marked += seg.end - seg.start
      } else if (this.reorderDeadline === undefined || lostAt < this.reorderDeadline) {
        this.reorderDeadline = lostAt
      }
    }
    return marked
  }

  /** Marks the first outstanding segment lost (duplicate-ACK recovery when the peer has no SACK). */
  markFirstLost(): number {
    const seg = this.segments[this.head]
    if (!seg || seg.lost || seg.delivered) return 0
    seg.lost = true
    this.lostBytes += seg.end - seg.start
    return seg.end - seg.start
  }

  /** Retransmission timeout: everything not SACKed is presumed lost (RFC 8985 §6.3). */
  markAllLost(): void {
    for (let i = this.head; i < this.segments.length; i++) {
      const seg = this.segments[i]!
      if (seg.delivered || seg.lost) continue
      seg.lost = true
      this.lostBytes += seg.end - seg.start
    }
    this.reorderDeadline = undefined
  }

  /** A loss verdict turned out wrong (the originals arrived): nothing is lost after all. */
  clearLost(): void {
    if (this.lostBytes === 0) return
    for (let i = this.head; i < this.segments.length; i++) this.segments[i]!.lost = false
    this.lostBytes = 0
  }

  /** The highest outstanding segment not SACKed, or undefined. */
  lastOutstanding(): SentSegment | undefined {
    for (let i = this.segments.length - 1; i >= this.head; i--) {
      const seg = this.segments[i]!
      if (!seg.delivered) return seg
    }
    return undefined
  }

  /** Lost segments in offset order. */
  *lost(): Generator<SentSegment> {
    if (this.lostBytes <= 0) return
    for (let i = this.head; i < this.segments.length; i++) {
      const seg = this.segments[i]!
      if (seg.lost) yield seg
    }
  }
}
