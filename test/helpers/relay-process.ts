// Spawns a real `burrow relay` child process and waits for its "listening" log line.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

export interface RelayProcess {
  proc: ChildProcess
  url: string
  port: number
  publicKey: string
  dataDir: string
  /** Every JSON log line seen so far. */
  logs: Array<Record<string, unknown>>
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

const ROOT = join(import.meta.dirname, '..', '..')

/** Data dirs this helper made; a restarted relay may reuse one, so they are removed only on request. */
const createdDirs: string[] = []

/** Removes the data dirs of every relay this helper started (call in afterAll, after stopping them). */
export function removeRelayDataDirs(): void {
  for (const dir of createdDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

export async function startRelayProcess(extraArgs: string[] = [], options: { port?: number; dataDir?: string } = {}): Promise<RelayProcess> {
  let dataDir = options.dataDir
  if (dataDir === undefined) {
    dataDir = mkdtempSync(join(tmpdir(), 'burrow-relay-'))
    createdDirs.push(dataDir)
  }
  const proc = spawn(process.execPath, ['bin/burrow.mjs', 'relay', '--listen', `127.0.0.1:${options.port ?? 0}`, '--data-dir', dataDir, ...extraArgs], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>
        logs.push(entry)
        if (entry.msg === 'listening') resolve(entry)
      } catch {
        logs.push({ raw: line })
      }
    })
    void exited.then((code) => reject(new Error(`relay exited with ${code} before listening: ${stderr}`)))
    setTimeout(() => reject(new Error(`relay did not start within 30 s: ${stderr}`)), 30_000).unref()
  })
  const entry = await listening
  return {
    proc,
    url: entry.url as string,
    port: Number((entry.address as string).split(':').at(-1)),
    publicKey: entry.publicKey as string,
    dataDir,
    logs,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      return exited
    },
  }
}

/** Runs `burrow relay authkey create <flags…> --data-dir <dataDir>` and returns the key it prints (its stderr goes into the error if it fails). */
export function createAuthKey(dataDir: string, ...flags: string[]): string {
  return execFileSync(process.execPath, ['bin/burrow.mjs', 'relay', 'authkey', 'create', ...flags, '--data-dir', dataDir], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim()
}

export async function waitFor(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
