// Shared by test/relay-attack.test.ts and bench/attack.bench.ts: hostile clients in their own
// processes, a legitimate pair whose round trips are byte-checked, and the relay's memory.
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { formatNodeKey, generateKeyPair, type KeyPair } from '../../src/crypto/index.ts'
import { DerpConnection } from '../../src/underlay/derp/connection.ts'
import { httpUpgradeDialer, nodeWebSocketDialer } from '../../src/underlay/derp/node.ts'
import { waitFor } from './relay-process.ts'

const ROOT = join(import.meta.dirname, '..', '..')

/** Resident memory of a process in MB, from /proc/<pid>/status. */
export function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))
  return Number(line?.split(/\s+/)[1]) / 1024
}

export interface Attacker {
  proc: ChildProcess
  /** The attacker's DERP key (hex) once logged in. */
  key: string
  /** Frames written and packets received, as last reported. */
  sent: number
  received: number
  closed: boolean
  stop(): Promise<void>
}

/** Starts `test/helpers/derp-attacker.ts` in its own process and waits for its login. */
export async function startAttacker(mode: 'ping' | 'ping-noread' | 'ping-ws' | 'packets', url: string, ...args: string[]): Promise<Attacker> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/derp-attacker.ts', mode, url, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const attacker: Attacker = {
    proc,
    key: '',
    sent: 0,
    received: 0,
    closed: false,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      await exited
    },
  }
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const entry = JSON.parse(line) as { ready?: boolean; key?: string; sent?: number; received?: number; closed?: boolean }
    if (entry.key) attacker.key = entry.key
    if (entry.sent !== undefined) attacker.sent = entry.sent
    if (entry.received !== undefined) attacker.received = entry.received
    if (entry.closed) attacker.closed = true
  })
  try {
    await waitFor(`the ${mode} attacker to log in (${stderr})`, () => attacker.key !== '' || proc.exitCode !== null, 30_000)
  } catch (error) {
    await attacker.stop()
    throw error
  }
  if (attacker.key === '') throw new Error(`attacker exited before logging in: ${stderr}`)
  return attacker
}

export interface PairStats {
  roundTrips: number
  /** Longest time without a completed round trip, ms. */
  longestStallMs: number
  disconnects: number
  errors: string[]
}

/**
 * Two DERP clients (one over WebSocket, one over `Upgrade: DERP`): `a` sends a packet whose bytes
 * derive from its sequence number, `b` echoes it, `a` checks every byte and sends the next.
 */
export class EchoPair {
  readonly a: DerpConnection
  readonly b: DerpConnection
  readonly aKeys: KeyPair = generateKeyPair()
  readonly bKeys: KeyPair = generateKeyPair()
  private seq = 0
  private stats: PairStats = { roundTrips: 0, longestStallMs: 0, disconnects: 0, errors: [] }
  private lastAt = performance.now()
  private readonly watchdog: ReturnType<typeof setInterval>

  constructor(url: string) {
    const backoff = { baseMs: 50, capMs: 1000 }
    this.a = new DerpConnection({ url, privateKey: this.aKeys.privateKey, dial: nodeWebSocketDialer(), backoff }).start()
    this.b = new DerpConnection({ url, privateKey: this.bKeys.privateKey, dial: httpUpgradeDialer(), backoff }).start()
    const aName = formatNodeKey(this.aKeys.publicKey)
    const bName = formatNodeKey(this.bKeys.publicKey)
    this.b.on('packet', (source, packet) => {
      if (formatNodeKey(source) === aName) this.b.send(this.aKeys.publicKey, packet.slice())
    })
    this.a.on('packet', (source, packet) => {
      if (formatNodeKey(source) !== bName) return
      const expected = echoPacket(this.seq)
      if (packet.length !== expected.length || packet.some((byte, i) => byte !== expected[i])) {
        this.stats.errors.push(`round trip ${this.seq}: wrong bytes came back`)
      }
      this.stats.roundTrips++
      this.noteProgress()
      this.seq++
      this.a.send(this.bKeys.publicKey, echoPacket(this.seq))
    })
    this.a.on('disconnected', () => this.stats.disconnects++)
    this.b.on('disconnected', () => this.stats.disconnects++)
    this.watchdog = setInterval(() => this.noteProgress(false), 100)
  }

  async start(): Promise<void> {
    await waitFor('the legit pair to log in', () => this.a.isConnected && this.b.isConnected)
    this.lastAt = performance.now()
    this.a.send(this.bKeys.publicKey, echoPacket(this.seq))
    await waitFor('the first round trip', () => this.stats.roundTrips > 0)
  }

  /** Counters since the last call (the stall counts from the last round trip before it). */
  take(): PairStats {
    this.noteProgress(false)
    const out = this.stats
    this.stats = { roundTrips: 0, longestStallMs: 0, disconnects: 0, errors: [] }
    return out
  }

  close(): void {
    clearInterval(this.watchdog)
    this.a.close()
    this.b.close()
  }

  private noteProgress(completed = true): void {
    const now = performance.now()
    this.stats.longestStallMs = Math.max(this.stats.longestStallMs, now - this.lastAt)
    if (completed) this.lastAt = now
  }
}

function echoPacket(seq: number): Uint8Array {
  const p = new Uint8Array(64 + (seq % 900))
  for (let i = 0; i < p.length; i++) p[i] = (seq * 31 + i * 7) & 0xff
  new DataView(p.buffer).setUint32(0, seq)
  return p
}

/** GET /healthz with a deadline; the time it took in ms, or Infinity when it did not answer in time. */
export async function healthzMs(port: number, timeoutMs = 5000): Promise<number> {
  const start = performance.now()
  try {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(timeoutMs) })
    await response.text()
    return response.ok ? performance.now() - start : Infinity
  } catch {
    return Infinity
  }
}
