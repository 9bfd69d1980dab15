// A legitimate pair of Burrow nodes exchanging byte-checked UDP round trips through a relay,
// for tests and benchmarks that attack the relay meanwhile: how many round trips completed, the
// longest wait for one, whether any answer came back wrong, and every state change either node
// went through (a reconnect shows up there).
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Burrow } from '../../src/node.ts'

export interface PairReport {
  roundTrips: number
  /** Longest time between two completed round trips (or from the start to the first), ms. */
  longestStallMs: number
  /** Answers whose bytes differed from what was sent. */
  corrupted: number
  /** State changes of either node after the pair was up, e.g. "a: reconnecting". */
  stateChanges: string[]
  elapsedMs: number
}

export interface LegitPair {
  a: Burrow
  b: Burrow
  /** Runs round trips for `durationMs` (or until `stop` resolves) and reports them. */
  run(durationMs: number): Promise<PairReport>
  close(): Promise<void>
}

const PORT = 7007

export async function startLegitPair(controlURL: string, authKey: string, names: [string, string] = ['legit-a', 'legit-b']): Promise<LegitPair> {
  const a = await Burrow.start({ controlURL, authKey, hostname: names[0], storage: 'memory', probeIntervalMs: 0 })
  const b = await Burrow.start({ controlURL, authKey, hostname: names[1], storage: 'memory', probeIntervalMs: 0 })
  const stateChanges: string[] = []
  a.addEventListener('state', () => stateChanges.push(`a: ${a.state}`))
  b.addEventListener('state', () => stateChanges.push(`b: ${b.state}`))
  // b echoes every datagram back unchanged.
  const echo = b.udp({ localPort: PORT })
  const { readable: echoIn, writable: echoOut } = await echo.opened
  const echoWriter = echoOut.getWriter()
  void (async () => {
    const reader = echoIn.getReader()
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }))
      if (done || !value) return
      void echoWriter.write({ data: value.data, remoteAddress: value.remoteAddress, remotePort: value.remotePort }).catch(() => {})
    }
  })()
  const client = a.udp({ remoteAddress: b.addresses[0]!, remotePort: PORT })
  const { readable: answers, writable: questions } = await client.opened
  const writer = questions.getWriter()
  const reader = answers.getReader()

  const same = (x: Uint8Array, y: Uint8Array) => x.length === y.length && x.every((byte, i) => byte === y[i])
  /**
   * One round trip: sends 256 random bytes and waits for them to come back; resends (new bytes)
   * every 500 ms. A late answer to anything sent recently (this round trip's resends, or an
   * earlier round trip given up on) is skipped; an answer matching nothing sent is corruption.
   */
  const roundTrip = async (deadline: number): Promise<'ok' | 'corrupt' | 'timeout'> => {
    for (;;) {
      const payload = new Uint8Array(randomBytes(256))
      recent.set(key(payload), payload)
      if (recent.size > 4096) recent.delete(recent.keys().next().value!)
      await writer.write({ data: payload })
      const resendAt = Date.now() + 500
      for (;;) {
        const wait = resendAt - Date.now()
        const answer = wait <= 0 ? undefined : await Promise.race([pending ?? (pending = reader.read()), new Promise<undefined>((resolve) => setTimeout(resolve, wait))])
        if (answer === undefined) break
        pending = undefined
        const data = answer.value?.data
        if (!data) return 'timeout'
        if (same(data, payload)) return 'ok'
        const earlier = recent.get(key(data))
        if (earlier === undefined || !same(data, earlier)) return 'corrupt'
      }
      if (Date.now() > deadline) return 'timeout'
    }
  }
  /** Payloads sent lately, by their first 16 bytes (random, so unique). */
  const recent = new Map<string, Uint8Array>()
  const key = (bytes: Uint8Array) => Buffer.from(bytes.subarray(0, 16)).toString('hex')
  let pending: Promise<ReadableStreamReadResult<{ data: Uint8Array }>> | undefined

  // Until the first round trip works, the pair is not up (handshake, relay login).
  const warmUntil = Date.now() + 20_000
  if ((await roundTrip(warmUntil)) !== 'ok') throw new Error('the legit pair never completed a first round trip')
  for (let i = 0; i < 20; i++) await roundTrip(Date.now() + 5000)
  stateChanges.length = 0

  return {
    a,
    b,
    async run(durationMs) {
      const start = Date.now()
      let last = start
      let longestStallMs = 0
      let roundTrips = 0
      let corrupted = 0
      const end = start + durationMs
      while (Date.now() < end) {
        const result = await roundTrip(end + 30_000)
        const now = Date.now()
        longestStallMs = Math.max(longestStallMs, now - last)
        last = now
        if (result === 'ok') roundTrips++
        else if (result === 'corrupt') corrupted++
        else break
      }
      return { roundTrips, longestStallMs, corrupted, stateChanges: [...stateChanges], elapsedMs: Date.now() - start }
    },
    async close() {
      await client.close().catch(() => {})
      await echo.close().catch(() => {})
      await Promise.allSettled([a.close(), b.close()])
    },
  }
}

/** Resident memory of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!match) throw new Error(`no VmRSS for process ${pid}`)
  return Number(match[1]) * 1024
}
