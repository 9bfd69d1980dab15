// Home region by measured latency, sans-IO. The picker asks for probes (the driver times an HTTP
// HEAD of each relay's /derp/latency-check and reports the round-trip time, or a failure), keeps a
// short history per region, and says when the home region should change. Rules from Tailscale's
// net/netcheck/netcheck.go (addReportHistoryAndSetPreferredDERP) and wgengine/magicsock:
//  - a region's latency is the best of its relays in a round, and its "best recent" the lowest
//    such value over the last 5 minutes (maxAge), so one slow sample does not move us;
//  - the home moves only when the best region beats the current home's latest latency by at
//    least 10 ms (preferredDERPAbsoluteDiff) **and** is under 2/3 of it; otherwise we keep it
//    (hysteresis: no flapping between two close regions);
//  - a home whose relay died (no relay of the region answers) is left at once for the best
//    region that answers, or the lowest-numbered other region when none has answered yet;
//  - rounds repeat every 20–26 s (magicsock's periodic re-STUN; the driver passes `random`).
// Regions marked `avoid` are probed but never picked, unless every region is `avoid`. A node may
// prefer one region (`prefer`, Burrow's `homeRegion` option): it is home whenever it is up, and
// the rules above apply only while it is down.
import type { RelayMap } from '../control/control-plane.ts'

/** Switch only to a region at least this much faster (netcheck's preferredDERPAbsoluteDiff). */
export const HOME_SWITCH_ABSOLUTE_MS = 10
/** How long a latency sample counts towards a region's best recent latency (netcheck's maxAge). */
export const LATENCY_HISTORY_MS = 5 * 60_000
/** One probe round to the next: 20–26 s (magicsock periodicReSTUN). */
export const PROBE_INTERVAL_MIN_MS = 20_000
export const PROBE_INTERVAL_MAX_MS = 26_000
/** A probe without an answer by then has failed (netcheck's HTTPS probes share a 5 s report budget). */
export const PROBE_TIMEOUT_MS = 5_000

export interface HomeProbe {
  id: number
  region: number
  /** The relay's DERP URL (`ws(s)://host/derp`); the driver probes `http(s)://host/derp/latency-check`. */
  url: string
}

export type HomePickerEvent =
  | { type: 'probe'; probe: HomeProbe }
  /** Make `region` home (`reason`: the first choice, a faster region, or the old home died). */
  | { type: 'home'; region: number; reason: 'initial' | 'latency' | 'failover' }

export interface HomePickerOptions {
  /** A number in [0, 1) for the round spacing; default Math.random. */
  random?: () => number
  probeTimeoutMs?: number
  /** The region to call home whenever it is in the map and up. */
  prefer?: number
}

interface Round {
  startedAt: number
  /** Probe id → its region, while unanswered. */
  pending: Map<number, { region: number; deadline: number }>
  /** Best answer per region in this round. */
  best: Map<number, number>
}

export class HomePicker {
  private map: RelayMap = { regions: new Map() }
  private current: number | undefined
  private round: Round | undefined
  private nextRoundAt: number | undefined
  private nextId = 1
  /** Per region: samples (at, ms) of the last LATENCY_HISTORY_MS. */
  private readonly history = new Map<number, Array<[number, number]>>()
  /** Per region: the latest round's latency, or null when no relay of it answered. */
  private readonly latest = new Map<number, number | null>()
  /** Regions whose relay connection died since they last answered a probe. */
  private readonly down = new Set<number>()
  private readonly events: HomePickerEvent[] = []
  private readonly random: () => number
  private readonly probeTimeoutMs: number
  private readonly prefer: number | undefined

  constructor(options: HomePickerOptions = {}) {
    this.prefer = options.prefer
    this.random = options.random ?? Math.random
    this.probeTimeoutMs = options.probeTimeoutMs ?? PROBE_TIMEOUT_MS
  }

  get home(): number | undefined {
    return this.current
  }

  /** The latest round's latency per region (null: no answer), for status output. */
  latencies(): Map<number, number | null> {
    return new Map(this.latest)
  }

  /** A new relay map: regions gone are forgotten; a round starts now. */
  setRelayMap(map: RelayMap, now: number): void {
    this.map = map
    for (const table of [this.history, this.latest] as Array<Map<number, unknown>>) for (const id of table.keys()) if (!map.regions.has(id)) table.delete(id)
    for (const id of this.down) if (!map.regions.has(id)) this.down.delete(id)
    if (this.current !== undefined && !map.regions.has(this.current)) this.choose(now, 'failover')
    this.startRound(now)
  }

  /** The home the agent runs now (the first choice may come from elsewhere, e.g. the control plane's suggestion). */
  setHome(region: number): void {
    this.current = region
  }

  /** The relay connection of `region` died: it is not a candidate until one of its relays answers again. */
  regionDown(region: number, now: number): void {
    this.down.add(region)
    this.latest.set(region, null)
    this.history.delete(region)
    if (region === this.current) this.choose(now, 'failover')
    // Measure again soon: the region we fled to was picked on old numbers.
    if (this.round === undefined) this.startRound(now)
  }

  /** A probe's answer: the round-trip time in ms, or null when it failed. */
  probeDone(id: number, rttMs: number | null, now: number): void {
    const round = this.round
    const probe = round?.pending.get(id)
    if (!round || !probe) return
    round.pending.delete(id)
    if (rttMs !== null) round.best.set(probe.region, Math.min(rttMs, round.best.get(probe.region) ?? Infinity))
    if (round.pending.size === 0) this.finishRound(now)
  }

  poll(now: number): void {
    const round = this.round
    if (round) {
      for (const [id, probe] of round.pending) if (probe.deadline <= now) this.probeDone(id, null, now)
    } else if (this.nextRoundAt !== undefined && this.nextRoundAt <= now) {
      this.startRound(now)
    }
  }

  nextEvent(): number | undefined {
    if (this.events.length > 0) return -Infinity
    if (this.round) return Math.min(...[...this.round.pending.values()].map((p) => p.deadline))
    return this.nextRoundAt
  }

  takeEvent(): HomePickerEvent | undefined {
    return this.events.shift()
  }

  private startRound(now: number): void {
    const round: Round = { startedAt: now, pending: new Map(), best: new Map() }
    for (const region of this.map.regions.values()) {
      for (const node of region.nodes) {
        const id = this.nextId++
        round.pending.set(id, { region: region.id, deadline: now + this.probeTimeoutMs })
        this.events.push({ type: 'probe', probe: { id, region: region.id, url: node.url } })
      }
    }
    this.nextRoundAt = undefined
    this.round = round.pending.size > 0 ? round : undefined
  }

  private finishRound(now: number): void {
    const round = this.round!
    this.round = undefined
    for (const id of this.map.regions.keys()) {
      const ms = round.best.get(id)
      this.latest.set(id, ms ?? null)
      if (ms === undefined) continue
      this.down.delete(id)
      const samples = (this.history.get(id) ?? []).filter(([at]) => at > now - LATENCY_HISTORY_MS)
      samples.push([now, ms])
      this.history.set(id, samples)
    }
    this.choose(now, this.current === undefined ? 'initial' : 'latency')
    this.nextRoundAt = now + PROBE_INTERVAL_MIN_MS + Math.floor(this.random() * (PROBE_INTERVAL_MAX_MS - PROBE_INTERVAL_MIN_MS))
  }

  private bestRecent(region: number, now: number): number | undefined {
    const samples = this.history.get(region)?.filter(([at]) => at > now - LATENCY_HISTORY_MS)
    return samples && samples.length > 0 ? Math.min(...samples.map(([, ms]) => ms)) : undefined
  }

  private choose(now: number, reason: 'initial' | 'latency' | 'failover'): void {
    const regions = [...this.map.regions.values()]
    const allAvoid = regions.every((r) => r.avoid)
    const candidates = regions.filter((r) => (allAvoid || !r.avoid) && !this.down.has(r.id))
    let best: number | undefined
    let bestMs = Infinity
    for (const r of candidates) {
      const ms = this.bestRecent(r.id, now)
      if (ms !== undefined && (ms < bestMs || (ms === bestMs && r.id < best!))) [best, bestMs] = [r.id, ms]
    }
    const old = this.current
    const oldUsable = old !== undefined && this.map.regions.has(old) && !this.down.has(old)
    let next = old
    const preferred = this.prefer !== undefined && candidates.some((r) => r.id === this.prefer) ? this.prefer : undefined
    if (preferred !== undefined) {
      next = preferred
    } else if (!oldUsable) {
      // Nothing measured yet: the lowest-numbered other candidate, so a failover never waits for a round.
      next = best ?? candidates.map((r) => r.id).sort((a, b) => a - b)[0]
    } else if (best !== undefined && best !== old) {
      const oldMs = this.latest.get(old!) ?? null
      // The old home stopped answering probes (its connection may still be up): any answering region is better.
      if (oldMs === null) next = this.bestRecent(old!, now) === undefined ? best : old
      else if (oldMs - bestMs >= HOME_SWITCH_ABSOLUTE_MS && bestMs <= (oldMs / 3) * 2) next = best
    }
    if (next === undefined || next === old) return
    this.current = next
    this.events.push({ type: 'home', region: next, reason: old === undefined ? 'initial' : !oldUsable ? 'failover' : reason })
  }
}
