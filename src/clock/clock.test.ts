import { afterEach, describe, expect, it, vi } from 'vitest'
import { DeadlineTimer, ManualClock, systemClock } from './clock.ts'

afterEach(() => {
  vi.restoreAllMocks()
  vi.useRealTimers()
})

describe('systemClock', () => {
  it('fires at its instant, never before', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const at = performance.now() + 25_000.5
    let firedAt: number | undefined
    systemClock.setTimer(at, () => (firedAt = performance.now()))
    vi.advanceTimersByTime(25_000)
    expect(firedAt).toBeUndefined()
    vi.advanceTimersByTime(1)
    expect(firedAt).toBeGreaterThanOrEqual(at)
  })

  it('waits out an instant beyond what setTimeout can hold in long sleeps, not in 1 ms retries', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const arm = vi.spyOn(globalThis, 'setTimeout')
    const at = performance.now() + 2 ** 31 + 5000
    let fired = 0
    systemClock.setTimer(at, () => fired++)
    vi.advanceTimersByTime(100)
    expect(arm.mock.calls.length).toBe(1)
    vi.advanceTimersByTime(2 ** 31 + 4900)
    expect(fired).toBe(1)
    expect(arm.mock.calls.length).toBe(2)
  })

  it('does not fire once cleared', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    let fired = 0
    systemClock.setTimer(performance.now() + 10, () => fired++).clear()
    vi.advanceTimersByTime(100)
    expect(fired).toBe(0)
  })
})

describe('DeadlineTimer', () => {
  it('fires once at the armed deadline; re-arming replaces it, undefined disarms', () => {
    const clock = new ManualClock()
    const fired: number[] = []
    const timer = new DeadlineTimer(clock, () => fired.push(clock.now()))
    timer.arm(100)
    timer.arm(100)
    expect(clock.pending).toBe(1)
    timer.arm(300)
    expect(timer.at).toBe(300)
    while (clock.fireNext(1000));
    expect(fired).toEqual([300])
    expect(timer.at).toBeUndefined()
    timer.arm(1200)
    timer.arm(undefined)
    while (clock.fireNext(2000));
    expect(fired).toEqual([300])
    expect(clock.pending).toBe(0)
  })

  it('with keepEarlier, keeps an armed deadline at or before the new one and moves only earlier', () => {
    const clock = new ManualClock()
    const fired: number[] = []
    const timer = new DeadlineTimer(clock, () => fired.push(clock.now()), { keepEarlier: true })
    timer.arm(100)
    timer.arm(150)
    expect(timer.at).toBe(100)
    timer.arm(50)
    expect(timer.at).toBe(50)
    expect(clock.pending).toBe(1)
    while (clock.fireNext(1000));
    expect(fired).toEqual([50])
  })
})
