import { describe, expect, it } from 'vitest'
import { PeerPathSelector, type PathAction, type PathSelectorOptions } from './path-selector.ts'

function counterTxIds(): () => Uint8Array {
  let n = 0
  return () => {
    const id = new Uint8Array(12)
    new DataView(id.buffer).setUint32(8, ++n)
    return id
  }
}

function selector(options: PathSelectorOptions = {}): PeerPathSelector {
  return new PeerPathSelector({ newTxId: counterTxIds(), ...options })
}

const types = (actions: PathAction[]): string[] => actions.map((a) => a.type)
const pings = (actions: PathAction[]): Uint8Array[] => actions.flatMap((a) => (a.type === 'ping' ? [a.txId] : []))

/** Brings a selector to "direct open, trusted" at `now` and returns the time after the pong. */
function openAndTrust(s: PeerPathSelector, now: number, rtt = 20): number {
  s.noteActivity(now)
  expect(types(s.poll(now))).toEqual(['connect-direct'])
  s.directOpened(now)
  const [txId] = pings(s.poll(now))
  expect(s.handlePong(txId!, now + rtt)).toBe(true)
  expect(s.poll(now + rtt)).toEqual([{ type: 'path-changed', path: 'direct', rttMs: rtt }])
  return now + rtt
}

describe('PeerPathSelector', () => {
  it('does nothing for a peer that never had traffic', () => {
    const s = selector()
    expect(s.poll(0)).toEqual([])
    expect(s.nextEvent()).toBeUndefined()
    expect(s.routes(0)).toEqual(['relay'])
    expect(s.status(0)).toMatchObject({ path: 'relay', direct: 'none', active: false })
  })

  it('asks for a WebRTC attempt as soon as the peer is active, once', () => {
    const s = selector()
    s.noteActivity(1000)
    expect(s.nextEvent()).toBe(1000)
    expect(types(s.poll(1000))).toEqual(['connect-direct'])
    expect(s.poll(1001)).toEqual([])
    expect(s.routes(1001)).toEqual(['relay'])
  })

  it('pings at once when the channel opens, sends on both paths until the first pong, then direct only', () => {
    const s = selector()
    s.noteActivity(0)
    s.poll(0)
    s.directOpened(100)
    expect(s.nextEvent()).toBe(100)
    const [txId] = pings(s.poll(100))
    expect(txId).toBeDefined()
    expect(s.routes(110)).toEqual(['direct', 'relay'])
    expect(s.status(110).path).toBe('relay')
    expect(s.handlePong(txId!, 130)).toBe(true)
    expect(s.poll(130)).toEqual([{ type: 'path-changed', path: 'direct', rttMs: 30 }])
    expect(s.routes(130)).toEqual(['direct'])
    expect(s.status(130)).toMatchObject({ path: 'direct', rttMs: 30, direct: 'open' })
  })

  it('heartbeats every 3 s while active', () => {
    const s = selector()
    let now = openAndTrust(s, 0)
    const sentAt: number[] = []
    for (let i = 0; i < 8; i++) {
      now = s.nextEvent()!
      const sent = pings(s.poll(now))
      if (sent.length) {
        sentAt.push(now)
        s.handlePong(sent[0]!, now + 10)
      }
      s.noteActivity(now)
    }
    expect(sentAt).toEqual([3000, 6000, 9000, 12000, 15000, 18000, 21000, 24000])
  })

  it('trusts the direct path for 6.5 s after the last pong, then falls back to both paths', () => {
    const s = selector()
    const trustedAt = openAndTrust(s, 0, 20) // pong at 20 ms
    s.noteActivity(trustedAt)
    // Heartbeats at 3 s and 6 s go unanswered.
    expect(pings(s.poll(3000))).toHaveLength(1)
    expect(pings(s.poll(6000))).toHaveLength(1)
    expect(s.nextEvent()).toBe(6520)
    expect(s.routes(6519)).toEqual(['direct'])
    expect(s.poll(6519)).toEqual([])
    expect(s.poll(6520)).toEqual([{ type: 'path-changed', path: 'relay', rttMs: 20 }])
    expect(s.routes(6520)).toEqual(['direct', 'relay'])
  })

  it('a late pong (after the ping timeout) or an unknown one earns no trust', () => {
    const s = selector()
    s.noteActivity(0)
    s.poll(0)
    s.directOpened(0)
    const [txId] = pings(s.poll(0))
    expect(s.handlePong(new Uint8Array(12).fill(9), 10)).toBe(false)
    expect(s.handlePong(txId!, 5001)).toBe(false)
    expect(s.routes(5001)).toEqual(['direct', 'relay'])
    // A pong is used once.
    const [second] = pings(s.poll(3000))
    expect(s.handlePong(second!, 3010)).toBe(true)
    expect(s.handlePong(second!, 3020)).toBe(false)
  })

  it('stops heartbeats after 45 s idle and pings at once when traffic resumes', () => {
    const s = selector()
    let now = openAndTrust(s, 0)
    let lastPing = 0
    for (;;) {
      const next = s.nextEvent()
      if (next === undefined) break
      now = next
      const sent = pings(s.poll(now))
      if (sent.length) {
        lastPing = now
        s.handlePong(sent[0]!, now)
      }
    }
    // Activity was at 0: the last heartbeat is the one before 45 s, and then the selector sleeps.
    expect(lastPing).toBe(42000)
    expect(s.status(now).active).toBe(false)
    expect(s.poll(100_000)).toEqual([])
    expect(s.status(100_000).path).toBe('relay')
    s.noteActivity(100_000)
    expect(s.nextEvent()).toBe(100_000)
    expect(pings(s.poll(100_000))).toHaveLength(1)
    expect(s.nextEvent()).toBe(103_000)
  })

  it('does not attempt WebRTC for an idle peer', () => {
    const s = selector()
    s.noteActivity(0)
    s.poll(0)
    s.directClosed(10) // failed: retry after 1 s
    expect(s.nextEvent()).toBe(1010)
    expect(s.poll(46_000)).toEqual([])
    expect(s.nextEvent()).toBeUndefined()
    s.noteActivity(50_000)
    expect(types(s.poll(50_000))).toEqual(['connect-direct'])
  })

  it('retries failed attempts with exponential backoff capped at the maximum', () => {
    const s = selector({ retryInitialMs: 1000, retryMaxMs: 8000, idleTimeoutMs: 1e9 })
    s.noteActivity(0)
    let now = 0
    const attempts: number[] = []
    for (let i = 0; i < 6; i++) {
      const actions = s.poll(now)
      expect(types(actions)).toEqual(['connect-direct'])
      attempts.push(now)
      s.directClosed(now + 100)
      now = s.nextEvent()!
    }
    expect(attempts.map((t, i) => (i === 0 ? 0 : t - attempts[i - 1]! - 100))).toEqual([0, 1000, 2000, 4000, 8000, 8000])
    expect(s.status(now).failures).toBe(6)
  })

  it('abandons an attempt that does not open in time, and counts it as a failure', () => {
    const s = selector({ connectTimeoutMs: 15_000, idleTimeoutMs: 1e9 })
    s.noteActivity(0)
    s.poll(0)
    expect(s.nextEvent()).toBe(15_000)
    expect(s.poll(14_999)).toEqual([])
    expect(types(s.poll(15_000))).toEqual(['abandon-direct'])
    expect(s.status(15_000)).toMatchObject({ direct: 'none', failures: 1 })
    expect(s.nextEvent()).toBe(16_000)
    expect(types(s.poll(16_000))).toEqual(['connect-direct'])
  })

  it('a successful open resets the backoff', () => {
    const s = selector({ idleTimeoutMs: 1e9 })
    s.noteActivity(0)
    s.poll(0)
    s.directClosed(0)
    s.poll(1000)
    s.directClosed(1000) // second failure: next retry 2 s later
    expect(s.nextEvent()).toBe(3000)
    s.poll(3000)
    s.directOpened(3000)
    s.directClosed(4000)
    expect(s.nextEvent()).toBe(5000)
  })

  it('falls back to the relay at once when the direct channel closes', () => {
    const s = selector()
    const now = openAndTrust(s, 0)
    s.directClosed(now + 5)
    expect(s.routes(now + 5)).toEqual(['relay'])
    expect(s.poll(now + 5)).toEqual([{ type: 'path-changed', path: 'relay', rttMs: 20 }])
    expect(s.handlePong(new Uint8Array(12), now + 6)).toBe(false)
  })

  it('ignores pongs that arrive when there is no open channel', () => {
    const s = selector()
    s.noteActivity(0)
    s.poll(0)
    s.directOpened(0)
    const [txId] = pings(s.poll(0))
    s.directClosed(1)
    expect(s.handlePong(txId!, 2)).toBe(false)
    expect(s.status(2).path).toBe('relay')
  })

  it('remembers a bounded number of unanswered pings', () => {
    const s = selector({ heartbeatIntervalMs: 1, pingTimeoutMs: 1e6 })
    s.noteActivity(0)
    s.poll(0)
    s.directOpened(0)
    const sent: Uint8Array[] = []
    for (let t = 0; t < 40; t++) sent.push(...pings(s.poll(t)))
    expect(sent).toHaveLength(40)
    expect(s.handlePong(sent[0]!, 40)).toBe(false)
    expect(s.handlePong(sent[39]!, 40)).toBe(true)
  })

  it('rejects nonsensical timing options', () => {
    expect(() => new PeerPathSelector({ trustMs: 0 })).toThrow(/trustMs/)
    expect(() => new PeerPathSelector({ heartbeatIntervalMs: Number.NaN })).toThrow(/heartbeatIntervalMs/)
  })

  it('directProven opens and trusts a UDP path from a probe pong: direct at once, heartbeat one interval later, relay when pongs stop', () => {
    const s = selector()
    s.noteActivity(0)
    expect(types(s.poll(0))).toEqual(['connect-direct'])
    s.directProven(40, 40)
    expect(s.status(40)).toMatchObject({ path: 'direct', direct: 'open', rttMs: 40, failures: 0 })
    expect(s.routes(40)).toEqual(['direct'])
    expect(s.poll(40)).toEqual([{ type: 'path-changed', path: 'direct', rttMs: 40 }])
    expect(s.nextEvent()).toBe(3040)
    const [txId] = pings(s.poll(3040))
    expect(txId).toBeDefined()
    // No pong: trust lapses 6.5 s after the probe's pong and data goes on both paths again.
    expect(s.routes(6539)).toEqual(['direct'])
    expect(s.routes(6540)).toEqual(['direct', 'relay'])
    expect(types(s.poll(6540))).toEqual(['ping', 'path-changed'])
  })
})
