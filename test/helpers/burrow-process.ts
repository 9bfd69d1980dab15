// Spawns `burrow …` (bin/burrow.mjs) as a child process and collects its JSON-line logs.
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const ROOT = join(import.meta.dirname, '..', '..')

export interface BurrowProcess {
  proc: ChildProcess
  /** Every stdout line seen so far, parsed; a line that is not JSON is kept as `{ raw }`. */
  logs: Array<Record<string, unknown>>
  exited: Promise<number | null>
  stderr: () => string
}

/** Runs `burrow <argv…>` from the repository root, with `env` added to this process's environment. */
export function spawnBurrow(argv: string[], env: NodeJS.ProcessEnv = {}): BurrowProcess {
  const proc = spawn(process.execPath, ['bin/burrow.mjs', ...argv], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      logs.push({ raw: line })
    }
  })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return { proc, logs, exited, stderr: () => stderr }
}
