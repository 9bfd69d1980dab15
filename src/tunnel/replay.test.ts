import { describe, expect, it } from 'vitest'
import { REJECT_HIGH, REJECT_LOW, REPLAY_WINDOW, ReplayWindow } from './replay.ts'

const split = (counter: bigint): [number, number] => [Number(counter >> 32n), Number(counter & 0xffffffffn)]
const accept = (window: ReplayWindow, counter: bigint) => window.accept(...split(counter))
const check = (window: ReplayWindow, counter: bigint) => window.check(...split(counter))

describe('replay window (RFC 6479 style)', () => {
  it('is at least 2048 counters wide', () => {
    expect(REPLAY_WINDOW).toBeGreaterThanOrEqual(2048)
  })

  it('accepts in-order counters once each, starting at 0', () => {
    const window = new ReplayWindow()
    for (let i = 0n; i < 5000n; i++) expect(accept(window, i)).toBe(true)
    for (let i = 0n; i < 5000n; i += 97n) expect(accept(window, i)).toBe(false)
  })

  it('accepts out-of-order counters within the window exactly once', () => {
    const window = new ReplayWindow()
    expect(accept(window, 100n)).toBe(true)
    expect(accept(window, 40n)).toBe(true)
    expect(accept(window, 99n)).toBe(true)
    expect(accept(window, 40n)).toBe(false)
    expect(accept(window, 0n)).toBe(true)
    expect(accept(window, 100n)).toBe(false)
  })

  it('refuses counters older than the window, accepts the oldest one inside it', () => {
    const window = new ReplayWindow()
    const last = 20_000n
    expect(accept(window, last)).toBe(true)
    const oldest = last - BigInt(REPLAY_WINDOW)
    expect(check(window, oldest - 1n)).toBe(false)
    expect(accept(window, oldest)).toBe(true)
    expect(accept(window, oldest)).toBe(false)
  })

  it('a jump far ahead clears the whole ring', () => {
    const window = new ReplayWindow()
    for (let i = 0n; i < 64n; i++) accept(window, i)
    const far = 1_000_000n
    expect(accept(window, far)).toBe(true)
    // Counters that share ring slots with the old ones must read as fresh (and in-window).
    expect(accept(window, far - 8192n + 32n)).toBe(true)
    expect(accept(window, far - 1n)).toBe(true)
  })

  it('check() changes nothing', () => {
    const window = new ReplayWindow()
    expect(check(window, 7n)).toBe(true)
    expect(check(window, 7n)).toBe(true)
    expect(accept(window, 7n)).toBe(true)
    expect(check(window, 7n)).toBe(false)
  })

  it('is exact across the 2^32 boundary and near 2^64', () => {
    const window = new ReplayWindow()
    expect(accept(window, 0xffffffffn)).toBe(true)
    expect(accept(window, 0x100000000n)).toBe(true)
    expect(accept(window, 0xfffffffen)).toBe(true)
    expect(accept(window, 0xffffffffn)).toBe(false)
    const reject = 2n ** 64n - 2n ** 13n - 1n
    expect(split(reject)).toEqual([REJECT_HIGH, REJECT_LOW])
    expect(accept(window, reject - 1n)).toBe(true)
    expect(accept(window, reject)).toBe(false)
    expect(accept(window, 2n ** 64n - 1n)).toBe(false)
    // Just below 2^64 − 2^13 − 1 the window still distinguishes neighbours that doubles could not.
    expect(accept(window, reject - 2n)).toBe(true)
    expect(accept(window, reject - 2n)).toBe(false)
  })
})

describe('replay window against the Linux WireGuard counter self-test sequence', () => {
  // The sequence of drivers/net/wireguard/selftest/counter.c, with its window size replaced by ours.
  const W = BigInt(REPLAY_WINDOW)
  const LIM = W + 1n
  const REJECT = 2n ** 64n - 2n ** 13n - 1n
  const run = (steps: Array<[bigint, boolean]>) => {
    const window = new ReplayWindow()
    steps.forEach(([counter, expected], i) => expect(accept(window, counter), `step ${i + 1}: counter ${counter}`).toBe(expected))
  }

  it('passes the mixed sequence', () => {
    run([
      [0n, true],
      [1n, true],
      [1n, false],
      [9n, true],
      [8n, true],
      [7n, true],
      [7n, false],
      [LIM, true],
      [LIM - 1n, true],
      [LIM - 1n, false],
      [LIM - 2n, true],
      [2n, true],
      [2n, false],
      [LIM + 16n, true],
      [3n, false],
      [LIM + 16n, false],
      [LIM * 4n, true],
      [LIM * 4n - (LIM - 1n), true],
      [10n, false],
      [LIM * 4n - LIM, false],
      [LIM * 4n - (LIM + 1n), false],
      [LIM * 4n - (LIM - 2n), true],
      [LIM * 4n + 1n - LIM, false],
      [0n, false],
      [REJECT, false],
      [REJECT - 1n, true],
      [REJECT, false],
      [REJECT - 1n, false],
      [REJECT - 2n, true],
      [REJECT + 1n, false],
      [REJECT + 2n, false],
      [REJECT - 2n, false],
      [REJECT - 3n, true],
      [0n, false],
    ])
  })

  it('passes the full-window sweeps', () => {
    const ascending = (from: bigint, to: bigint) => Array.from({ length: Number(to - from + 1n) }, (_, i) => [from + BigInt(i), true] as [bigint, boolean])
    const descending = (from: bigint, to: bigint) => ascending(to, from).reverse()
    run([...ascending(1n, W), [0n, true], [0n, false]])
    run([...ascending(2n, W + 1n), [1n, true], [0n, false]])
    run(descending(W, 0n))
    run([...descending(W + 1n, 1n), [0n, false]])
    run([...descending(W, 1n), [W + 1n, true], [0n, false]])
    run([...descending(W, 1n), [0n, true], [W + 1n, true]])
  })
})
