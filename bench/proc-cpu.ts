// CPU time of processes the bench started, from /proc (Linux): what a whole chain of processes
// (every Chromium process of a browser, the relay) spent on a transfer, for CPU-per-MB figures.
import { readdirSync, readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100

interface ProcStat {
  pid: number
  ppid: number
  comm: string
  /** utime + stime, ms. */
  cpuMs: number
}

/** proc(5): fields after the parenthesised comm; utime and stime are fields 14 and 15. */
function readStat(pid: number): ProcStat | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  const close = text.lastIndexOf(')')
  const comm = text.slice(text.indexOf('(') + 1, close)
  const fields = text.slice(close + 2).split(' ')
  // fields[0] is field 3 (state): field n is fields[n - 3].
  return { pid, ppid: Number(fields[1]), comm, cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS }
}

function allStats(): ProcStat[] {
  const stats: ProcStat[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = readStat(Number(name))
    if (stat) stats.push(stat)
  }
  return stats
}

/** `root` and every process below it. */
export function processTree(root: number, stats: ProcStat[] = allStats()): ProcStat[] {
  const children = new Map<number, ProcStat[]>()
  for (const stat of stats) {
    const list = children.get(stat.ppid)
    if (list) list.push(stat)
    else children.set(stat.ppid, [stat])
  }
  const tree: ProcStat[] = []
  const self = stats.find((s) => s.pid === root)
  if (self) tree.push(self)
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!.pid) ?? []))
  return tree
}

/**
 * CPU ms so far of the chain: every Chromium process among this process's descendants (each
 * browser's main process and its renderer, GPU, network and utility children) and the relay's
 * process tree, by process, so a caller can difference two snapshots.
 */
export function chainCpu(relayPid: number): { browserMs: number; relayMs: number; browserProcesses: number } {
  const stats = allStats()
  const relay = processTree(relayPid, stats)
  const relayPids = new Set(relay.map((s) => s.pid))
  const browsers = processTree(process.pid, stats).filter((s) => !relayPids.has(s.pid) && /chrom/i.test(s.comm))
  // A browser's children are Chromium processes too, whatever their comm says (renderers rename themselves).
  const browserPids = new Set<number>()
  for (const main of browsers) for (const s of processTree(main.pid, stats)) browserPids.add(s.pid)
  let browserMs = 0
  for (const s of stats) if (browserPids.has(s.pid)) browserMs += s.cpuMs
  return { browserMs, relayMs: relay.reduce((sum, s) => sum + s.cpuMs, 0), browserProcesses: browserPids.size }
}
