import { addressEquals, formatAddress, type IpAddress } from '../wire/index.ts'

export class PingError extends Error {
  override readonly name = 'PingError'
  constructor(
    readonly code: 'timeout' | 'bad-address',
    message: string,
  ) {
    super(message)
  }
}

interface PendingPing {
  address: IpAddress
  id: number
  seq: number
  sentAt: number
  deadline: number
  done: (rtt: number | PingError) => void
}

/** Outstanding echo requests, matched to replies by address, identifier and sequence number. */
export class PingTracker {
  private readonly pending = new Map<number, PendingPing>()
  private nextSeq = 0

  constructor(readonly id: number) {}

  /** Registers a request and returns the sequence number to put in it. */
  start(address: IpAddress, now: number, timeoutMs: number, done: (rtt: number | PingError) => void): number {
    const seq = this.nextSeq
    this.nextSeq = (this.nextSeq + 1) & 0xffff
    this.pending.get(seq)?.done(new PingError('timeout', `ping ${formatAddress(address)} superseded`))
    this.pending.set(seq, { address, id: this.id, seq, sentAt: now, deadline: now + timeoutMs, done })
    return seq
  }

  /** An echo reply arrived; true when it answered one of ours. */
  reply(from: IpAddress, id: number, seq: number, now: number): boolean {
    if (id !== this.id) return false
    const p = this.pending.get(seq)
    if (!p || !addressEquals(p.address, from)) return false
    this.pending.delete(seq)
    p.done(now - p.sentAt)
    return true
  }

  nextEvent(): number | undefined {
    let next: number | undefined
    for (const p of this.pending.values()) if (next === undefined || p.deadline < next) next = p.deadline
    return next
  }

  poll(now: number): void {
    for (const [seq, p] of this.pending) {
      if (now >= p.deadline) {
        this.pending.delete(seq)
        p.done(new PingError('timeout', `ping ${formatAddress(p.address)}: no reply within ${p.deadline - p.sentAt} ms`))
      }
    }
  }
}
