// How `burrow status` sees a running `burrow up`: the up process rewrites `<state dir>/status.json`
// every second, atomically (a temporary file renamed over the old one, so a reader never sees half
// a file). A file is chosen over a Unix socket because it also answers when the process is wedged
// or gone: `status` then shows the last known state and says how old it is.
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'

export const STATUS_FILE = 'status.json'
export const STATUS_VERSION = 1
/** A status older than this means the `up` process has stopped updating it. */
export const STALE_AFTER_MS = 5000

export interface StatusPeer {
  hostname: string
  addresses: string[]
  online: boolean
  path: 'relay' | 'direct'
  /** While direct: how ICE connected (host, srflx, prflx, relay = TURN); absent in older files. */
  candidateType?: string | null
  rttMs: number | null
  rxBytes: number
  txBytes: number
}

export interface StatusService {
  proto: 'tcp' | 'udp'
  port: number
  target: string
  /** Open connections (TCP) or flows (UDP). */
  active: number
}

export interface NodeStatus {
  version: typeof STATUS_VERSION
  pid: number
  /** Epoch ms of this snapshot. */
  updatedAt: number
  self: {
    hostname: string
    addresses: string[]
    nodeKey: string
    state: string
    relayURL: string
    /** The home relay region (absent in files from before regions). */
    homeRegion?: { id: number; code: string; name: string }
  }
  peers: StatusPeer[]
  services: StatusService[]
}

export class StatusFileError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'StatusFileError'
  }
}

export function statusPath(stateDir: string): string {
  return join(stateDir, STATUS_FILE)
}

let sequence = 0

/** Replaces the status file in one rename. */
export async function writeStatusFile(stateDir: string, status: NodeStatus): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  const temporary = join(stateDir, `.${STATUS_FILE}.${process.pid}.${sequence++}.tmp`)
  const file = await open(temporary, 'w', 0o600)
  try {
    await file.writeFile(`${JSON.stringify(status, null, 1)}\n`)
  } finally {
    await file.close()
  }
  try {
    await rename(temporary, statusPath(stateDir))
  } catch (error) {
    await rm(temporary, { force: true })
    throw error
  }
}

export async function removeStatusFile(stateDir: string): Promise<void> {
  await rm(statusPath(stateDir), { force: true })
}

/** The status written by `burrow up`, or undefined when none is running there (no file). */
export async function readStatusFile(stateDir: string): Promise<NodeStatus | undefined> {
  const path = statusPath(stateDir)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new StatusFileError(`cannot read ${path}: ${(error as Error).message}`)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new StatusFileError(`${path} is not JSON`)
  }
  const status = value as Partial<NodeStatus>
  if (status?.version !== STATUS_VERSION || typeof status.updatedAt !== 'number' || !Array.isArray(status.peers) || typeof status.self !== 'object' || status.self === null) {
    throw new StatusFileError(`${path} is not a burrow status file of version ${STATUS_VERSION}`)
  }
  return status as NodeStatus
}

/** A `tailscale status`-like table: one line for this node, one per peer, then the served ports. */
export function formatStatus(status: NodeStatus, now: number, processAlive: boolean): string {
  const lines: string[] = []
  const age = now - status.updatedAt
  if (!processAlive) lines.push(`# burrow up (pid ${status.pid}) is not running; last status from ${formatAge(age)} ago`)
  else if (age > STALE_AFTER_MS) lines.push(`# status is ${formatAge(age)} old: burrow up (pid ${status.pid}) is not updating it`)
  const rows: string[][] = [['IPv4', 'IPv6', 'HOSTNAME', 'STATUS', 'PATH', 'RTT', 'RX', 'TX']]
  const self = status.self
  rows.push([self.addresses[0] ?? '-', self.addresses[1] ?? '-', self.hostname, `self, ${self.state}`, '-', '-', '-', '-'])
  const peers = [...status.peers].sort((a, b) => a.hostname.localeCompare(b.hostname))
  for (const peer of peers) {
    rows.push([
      peer.addresses[0] ?? '-',
      peer.addresses[1] ?? '-',
      peer.hostname,
      peer.online ? 'online' : 'offline',
      peer.online ? (peer.path === 'direct' && peer.candidateType ? `direct (${peer.candidateType})` : peer.path) : '-',
      peer.rttMs === null ? '-' : `${peer.rttMs < 10 ? peer.rttMs.toFixed(1) : Math.round(peer.rttMs)} ms`,
      formatBytes(peer.rxBytes),
      formatBytes(peer.txBytes),
    ])
  }
  lines.push(...table(rows))
  if (self.homeRegion)
    lines.push(
      '',
      `home relay: region ${self.homeRegion.id} (${self.homeRegion.code}${self.homeRegion.name !== self.homeRegion.code ? `, ${self.homeRegion.name}` : ''}) via ${self.relayURL}`,
    )
  if (status.services.length > 0) {
    lines.push('')
    lines.push(...table([['SERVES', 'TO', 'ACTIVE'], ...status.services.map((s) => [`${s.proto}/${s.port}`, s.target, String(s.active)])]))
  }
  return `${lines.join('\n')}\n`
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd(),
  )
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = n / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}

function formatAge(ms: number): string {
  if (ms < 60_000) return `${Math.max(0, Math.round(ms / 1000))} s`
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`
  return `${Math.round(ms / 3_600_000)} h`
}
