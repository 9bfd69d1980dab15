// The UDP forwarder's flows, sans-IO: which overlay remotes have a real socket, when each was
// last active, which have been idle too long, and which to evict when the table is full.
// Time comes in as `now` (ms); the shell sets one timer at `nextEvent()`.

export class UdpSessionTable<V> {
  private readonly sessions = new Map<string, { value: V; lastActive: number }>()

  constructor(
    readonly idleMs: number,
    readonly maxSessions: number,
  ) {
    if (!(idleMs > 0)) throw new RangeError(`UDP idle timeout must be > 0 ms, got ${idleMs}`)
    if (!Number.isInteger(maxSessions) || maxSessions < 1) throw new RangeError(`UDP session limit must be a whole number ≥ 1, got ${maxSessions}`)
  }

  get size(): number {
    return this.sessions.size
  }

  get(key: string): V | undefined {
    return this.sessions.get(key)?.value
  }

  /**
   * Adds a session. When the table is full the least recently active one is evicted and
   * returned, so the caller can close its socket.
   */
  add(key: string, value: V, now: number): V | undefined {
    let evicted: V | undefined
    if (!this.sessions.has(key) && this.sessions.size >= this.maxSessions) {
      let oldestKey: string | undefined
      let oldest = Infinity
      for (const [k, s] of this.sessions) {
        if (s.lastActive < oldest) {
          oldest = s.lastActive
          oldestKey = k
        }
      }
      evicted = this.sessions.get(oldestKey!)!.value
      this.sessions.delete(oldestKey!)
    }
    this.sessions.set(key, { value, lastActive: now })
    return evicted
  }

  /** Traffic in either direction keeps a session alive. */
  touch(key: string, now: number): void {
    const session = this.sessions.get(key)
    if (session) session.lastActive = Math.max(session.lastActive, now)
  }

  delete(key: string): V | undefined {
    const session = this.sessions.get(key)
    this.sessions.delete(key)
    return session?.value
  }

  /** Removes and returns the sessions idle for `idleMs` or longer. */
  expire(now: number): Array<[string, V]> {
    const out: Array<[string, V]> = []
    for (const [key, s] of this.sessions) {
      if (now - s.lastActive >= this.idleMs) {
        out.push([key, s.value])
        this.sessions.delete(key)
      }
    }
    return out
  }

  /** When the next session would expire, or undefined when there are none. */
  nextEvent(): number | undefined {
    let next: number | undefined
    for (const s of this.sessions.values()) {
      const at = s.lastActive + this.idleMs
      if (next === undefined || at < next) next = at
    }
    return next
  }

  values(): V[] {
    return [...this.sessions.values()].map((s) => s.value)
  }
}
