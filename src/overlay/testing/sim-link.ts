// A seeded, clocked, in-memory link between two endpoints for tests and benchmarks: delay,
// a bandwidth cap with a bounded queue, loss, duplication, reordering and corruption, all
// drawn from one PRNG so every run of a scenario is identical.

export interface SimLinkOptions {
  seed?: number
  /** One-way propagation delay in ms. */
  delayMs?: number
  /** Bits per second per direction; undefined for unlimited. */
  bandwidthBps?: number
  /** Bytes that may wait for the wire per direction before tail drop. */
  queueBytes?: number
  loss?: number
  duplicate?: number
  /** Probability that a packet is held back by up to `reorderDelayMs` extra. */
  reorder?: number
  reorderDelayMs?: number
  /** Probability that one random bit of the packet is flipped. */
  corrupt?: number
}

export type Side = 'a' | 'b'

interface InFlight {
  at: number
  order: number
  to: Side
  packet: Uint8Array
}

export interface SimLinkStats {
  sent: number
  delivered: number
  lost: number
  duplicated: number
  reordered: number
  corrupted: number
  queueDrops: number
}

export class SimLink {
  readonly stats: SimLinkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, corrupted: 0, queueDrops: 0 }
  private readonly heap: InFlight[] = []
  private order = 0
  private rngState: number
  private readonly wireFreeAt: Record<Side, number> = { a: 0, b: 0 }
  private readonly options: Required<Omit<SimLinkOptions, 'bandwidthBps'>> & { bandwidthBps: number | undefined }

  constructor(options: SimLinkOptions = {}) {
    this.options = {
      seed: options.seed ?? 1,
      delayMs: options.delayMs ?? 0,
      bandwidthBps: options.bandwidthBps,
      queueBytes: options.queueBytes ?? 4 << 20,
      loss: options.loss ?? 0,
      duplicate: options.duplicate ?? 0,
      reorder: options.reorder ?? 0,
      reorderDelayMs: options.reorderDelayMs ?? 10,
      corrupt: options.corrupt ?? 0,
    }
    this.rngState = this.options.seed >>> 0 || 0x9e3779b9
  }

  /** Changes impairments mid-run (e.g. cut the link with `loss: 1`). */
  configure(options: Omit<SimLinkOptions, 'seed'>): void {
    Object.assign(this.options, options)
  }

  /** Uniform in [0, 1). */
  random(): number {
    // mulberry32
    this.rngState = (this.rngState + 0x6d2b79f5) >>> 0
    let t = this.rngState
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** `from` puts a packet on the wire at `now`. */
  send(from: Side, packet: Uint8Array, now: number): void {
    this.stats.sent++
    const to: Side = from === 'a' ? 'b' : 'a'
    const o = this.options
    let departs = now
    if (o.bandwidthBps !== undefined) {
      const start = Math.max(now, this.wireFreeAt[from])
      const backlogBytes = ((start - now) * o.bandwidthBps) / 8000
      if (backlogBytes + packet.length > o.queueBytes) {
        this.stats.queueDrops++
        return
      }
      departs = start + (packet.length * 8000) / o.bandwidthBps
      this.wireFreeAt[from] = departs
    }
    if (this.random() < o.loss) {
      this.stats.lost++
      return
    }
    const copies = this.random() < o.duplicate ? 2 : 1
    if (copies === 2) this.stats.duplicated++
    for (let i = 0; i < copies; i++) {
      let p = packet
      if (this.random() < o.corrupt) {
        p = packet.slice()
        const bit = Math.floor(this.random() * p.length * 8)
        p[bit >> 3]! ^= 1 << (bit & 7)
        this.stats.corrupted++
      }
      let at = departs + o.delayMs
      if (this.random() < o.reorder) {
        at += this.random() * o.reorderDelayMs
        this.stats.reordered++
      }
      this.push({ at, order: this.order++, to, packet: p })
    }
  }

  /**
   * Holds every delivery until `until`, then releases the backlog in order: the head-of-line
   * blocking a TCP-carried relay (DERP over WebSocket) inflicts on the packets inside it.
   */
  stall(until: number): void {
    this.stalledUntil = Math.max(this.stalledUntil, until)
  }
  private stalledUntil = -Infinity

  nextEvent(): number | undefined {
    const next = this.heap[0]?.at
    return next === undefined ? undefined : Math.max(next, this.stalledUntil)
  }

  /** Removes and returns the packets due by `now`, in delivery order. */
  deliver(now: number): Array<{ to: Side; packet: Uint8Array }> {
    const out: Array<{ to: Side; packet: Uint8Array }> = []
    if (now < this.stalledUntil) return out
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const item = this.pop()
      out.push({ to: item.to, packet: item.packet })
      this.stats.delivered++
    }
    return out
  }

  private push(item: InFlight): void {
    const h = this.heap
    h.push(item)
    let i = h.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(h[i]!, h[parent]!)) break
      ;[h[i], h[parent]] = [h[parent]!, h[i]!]
      i = parent
    }
  }

  private pop(): InFlight {
    const h = this.heap
    const top = h[0]!
    const last = h.pop()!
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l]!, h[m]!)) m = l
        if (r < h.length && before(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}

function before(x: InFlight, y: InFlight): boolean {
  return x.at < y.at || (x.at === y.at && x.order < y.order)
}
