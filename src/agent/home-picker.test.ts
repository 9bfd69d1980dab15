import { describe, expect, it } from 'vitest'
import type { RelayMap, RelayRegion } from '../control/control-plane.ts'
import { HOME_SWITCH_ABSOLUTE_MS, HomePicker, PROBE_INTERVAL_MIN_MS, PROBE_TIMEOUT_MS, type HomePickerEvent, type HomeProbe } from './home-picker.ts'

function region(id: number, relays = 1, extra: Partial<RelayRegion> = {}): RelayRegion {
  return { id, code: `r${id}`, name: `Region ${id}`, nodes: Array.from({ length: relays }, (_, i) => ({ name: `${id}${'abc'[i]}`, url: `ws://r${id}-${i}.test/derp` })), ...extra }
}

function mapOf(...regions: RelayRegion[]): RelayMap {
  return { regions: new Map(regions.map((r) => [r.id, r])) }
}

function drain(picker: HomePicker): HomePickerEvent[] {
  const events: HomePickerEvent[] = []
  for (let e = picker.takeEvent(); e; e = picker.takeEvent()) events.push(e)
  return events
}

const probesOf = (events: HomePickerEvent[]): HomeProbe[] => events.flatMap((e) => (e.type === 'probe' ? [e.probe] : []))
const homesOf = (events: HomePickerEvent[]) => events.flatMap((e) => (e.type === 'home' ? [{ region: e.region, reason: e.reason }] : []))

/** Answers every probe of the round: `ms` per region (null = no answer, which times out). */
function answer(picker: HomePicker, probes: HomeProbe[], ms: Record<number, number | null>, now: number): HomePickerEvent[] {
  for (const p of probes) {
    const v = ms[p.region]
    if (v !== null && v !== undefined) picker.probeDone(p.id, v, now)
  }
  picker.poll(now + PROBE_TIMEOUT_MS)
  return drain(picker)
}

describe('HomePicker', () => {
  it('probes every relay of every region and picks the lowest latency as the first home', () => {
    const picker = new HomePicker({ random: () => 0 })
    picker.setRelayMap(mapOf(region(1, 2), region(2)), 0)
    const probes = probesOf(drain(picker))
    expect(probes.map((p) => p.url)).toEqual(['ws://r1-0.test/derp', 'ws://r1-1.test/derp', 'ws://r2-0.test/derp'])
    expect(picker.nextEvent()).toBe(PROBE_TIMEOUT_MS)
    // Region 1's best relay counts (the second answers faster).
    picker.probeDone(probes[0]!.id, 80, 10)
    picker.probeDone(probes[1]!.id, 15, 10)
    picker.probeDone(probes[2]!.id, 40, 10)
    expect(homesOf(drain(picker))).toEqual([{ region: 1, reason: 'initial' }])
    expect(picker.home).toBe(1)
    expect(picker.latencies()).toEqual(
      new Map([
        [1, 15],
        [2, 40],
      ]),
    )
    // The next round is 20–26 s later.
    expect(picker.nextEvent()).toBe(10 + PROBE_INTERVAL_MIN_MS)
  })

  it('keeps the home when another region is faster by less than 10 ms or by less than a third (no flapping)', () => {
    const picker = new HomePicker({ random: () => 0 })
    picker.setRelayMap(mapOf(region(1), region(2)), 0)
    let now = 0
    expect(homesOf(answer(picker, probesOf(drain(picker)), { 1: 20, 2: 30 }, now))).toEqual([{ region: 1, reason: 'initial' }])
    // Region 1 gets slower, then jitters around region 2: 8 ms worse (absolute rule), then 30 vs 25 (relative rule).
    for (const [r1, r2] of [
      [38, 30],
      [30, 25],
      [36, 30],
      [29, 28],
    ] as const) {
      now += PROBE_INTERVAL_MIN_MS
      picker.poll(now)
      const events = answer(picker, probesOf(drain(picker)), { 1: r1, 2: r2 }, now)
      expect(homesOf(events)).toEqual([])
    }
    expect(picker.home).toBe(1)
    expect(HOME_SWITCH_ABSOLUTE_MS).toBe(10)
  })

  it('moves home once another region is both 10 ms and a third faster, judged on its best recent latency', () => {
    const picker = new HomePicker({ random: () => 0 })
    picker.setRelayMap(mapOf(region(1), region(2)), 0)
    answer(picker, probesOf(drain(picker)), { 1: 20, 2: 50 }, 0)
    expect(picker.home).toBe(1)
    // 22 vs 13: 9 ms better (under 10 ms), stay. Then 22 vs 12: 10 ms and 12 ≤ 22·2/3, move.
    let now = PROBE_INTERVAL_MIN_MS
    picker.poll(now)
    expect(homesOf(answer(picker, probesOf(drain(picker)), { 1: 22, 2: 13 }, now))).toEqual([])
    now += PROBE_TIMEOUT_MS + PROBE_INTERVAL_MIN_MS
    picker.poll(now)
    expect(homesOf(answer(picker, probesOf(drain(picker)), { 1: 22, 2: 12 }, now))).toEqual([{ region: 2, reason: 'latency' }])
    // Back on region 1's side: region 1 now 5 ms, region 2 still has its 12 ms: 7 ms apart, stay on 2.
    now += PROBE_TIMEOUT_MS + PROBE_INTERVAL_MIN_MS
    picker.poll(now)
    expect(homesOf(answer(picker, probesOf(drain(picker)), { 1: 5, 2: 12 }, now))).toEqual([])
    expect(picker.home).toBe(2)
  })

  it('fails over at once when the home region dies, to the fastest region still answering, and does not come back until it answers', () => {
    const picker = new HomePicker({ random: () => 0 })
    picker.setRelayMap(mapOf(region(1), region(2), region(3)), 0)
    answer(picker, probesOf(drain(picker)), { 1: 5, 2: 40, 3: 30 }, 0)
    expect(picker.home).toBe(1)
    picker.regionDown(1, 1000)
    const events = drain(picker)
    expect(homesOf(events)).toEqual([{ region: 3, reason: 'failover' }])
    // A fresh round goes out right away; region 1 still does not answer, so home stays on 3.
    answer(picker, probesOf(events), { 1: null, 2: 40, 3: 30 }, 1000)
    expect(picker.home).toBe(3)
    // Region 1 is back and much faster: the next round moves home there.
    const later = 1000 + PROBE_TIMEOUT_MS + PROBE_INTERVAL_MIN_MS
    picker.poll(later)
    expect(homesOf(answer(picker, probesOf(drain(picker)), { 1: 5, 2: 40, 3: 30 }, later))).toEqual([{ region: 1, reason: 'latency' }])
  })

  it('fails over to the lowest-numbered other region when nothing has been measured yet', () => {
    const picker = new HomePicker()
    picker.setRelayMap(mapOf(region(4), region(2), region(7)), 0)
    drain(picker)
    picker.setHome(4)
    picker.regionDown(4, 10)
    expect(homesOf(drain(picker))).toEqual([{ region: 2, reason: 'failover' }])
  })

  it('never picks an avoided region while another answers, but uses one when all are avoided', () => {
    const picker = new HomePicker()
    picker.setRelayMap(mapOf(region(1, 1, { avoid: true }), region(2)), 0)
    answer(picker, probesOf(drain(picker)), { 1: 1, 2: 90 }, 0)
    expect(picker.home).toBe(2)
    const only = new HomePicker()
    only.setRelayMap(mapOf(region(1, 1, { avoid: true })), 0)
    answer(only, probesOf(drain(only)), { 1: 3 }, 0)
    expect(only.home).toBe(1)
  })

  it('counts a probe that never answers as failed at its deadline, and ignores late or unknown answers', () => {
    const picker = new HomePicker({ random: () => 0 })
    picker.setRelayMap(mapOf(region(1), region(2)), 0)
    const probes = probesOf(drain(picker))
    picker.probeDone(probes[1]!.id, 30, 5)
    picker.poll(PROBE_TIMEOUT_MS - 1)
    expect(drain(picker)).toEqual([])
    picker.poll(PROBE_TIMEOUT_MS)
    expect(homesOf(drain(picker))).toEqual([{ region: 2, reason: 'initial' }])
    expect(picker.latencies().get(1)).toBeNull()
    picker.probeDone(probes[0]!.id, 1, PROBE_TIMEOUT_MS + 1)
    picker.probeDone(9999, 1, PROBE_TIMEOUT_MS + 1)
    expect(picker.home).toBe(2)
    expect(drain(picker)).toEqual([])
  })

  it('leaves a home that is no longer in a new relay map', () => {
    const picker = new HomePicker()
    picker.setRelayMap(mapOf(region(1), region(2)), 0)
    answer(picker, probesOf(drain(picker)), { 1: 5, 2: 50 }, 0)
    picker.setRelayMap(mapOf(region(2)), 100)
    expect(homesOf(drain(picker))).toEqual([{ region: 2, reason: 'failover' }])
  })

  it('keeps a preferred region home whenever it is up, failing over only while it is down', () => {
    const picker = new HomePicker({ prefer: 2, random: () => 0 })
    picker.setRelayMap(mapOf(region(1), region(2)), 0)
    expect(homesOf(answer(picker, probesOf(drain(picker)), { 1: 1, 2: 90 }, 0))).toEqual([{ region: 2, reason: 'initial' }])
    picker.regionDown(2, 100)
    const events = drain(picker)
    expect(homesOf(events)).toEqual([{ region: 1, reason: 'failover' }])
    answer(picker, probesOf(events), { 1: 1, 2: null }, 100)
    expect(picker.home).toBe(1)
    const later = 100 + PROBE_TIMEOUT_MS + PROBE_INTERVAL_MIN_MS
    picker.poll(later)
    expect(homesOf(answer(picker, probesOf(drain(picker)), { 1: 1, 2: 90 }, later))).toEqual([{ region: 2, reason: 'latency' }])
  })
})
