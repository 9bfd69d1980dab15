// Runs `burrow start` (relay + demo, what `npm start` runs) for a test and reads what it prints.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, REPO_ROOT } from './browser.ts'

export interface BurrowStart {
  child: ChildProcess
  /** e.g. `http://127.0.0.1:41234/` */
  demoURL: string
  controlURL: string
  /** The reusable, non-ephemeral dev key it printed (for `burrow up`). */
  authKey: string
  dataDir: string
  stop(): Promise<void>
}

export async function startBurrowStart(): Promise<BurrowStart> {
  const dataDir = mkdtempSync(join(tmpdir(), 'burrow-start-'))
  const port = await freePort()
  const child = spawn(process.execPath, ['bin/burrow.mjs', 'start', '--data-dir', dataDir, '--port', String(port)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
  let output = ''
  try {
    const printed = await new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`burrow start printed no demo URL within 60 s:\n${output}`)), 60_000)
      const onData = (chunk: Buffer): void => {
        output += chunk.toString()
        const match = /demo\s+(http:\/\/\S+)[\s\S]*relay\s+(http:\/\/\S+)[\s\S]*authkey\s+(\S+)/.exec(output)
        if (match) {
          clearTimeout(timer)
          resolve(match)
        }
      }
      child.stdout!.on('data', onData)
      child.stderr!.on('data', onData)
      child.once('exit', (code) => reject(new Error(`burrow start exited with ${code}:\n${output}`)))
    })
    return { child, demoURL: printed[1]!, controlURL: printed[2]!, authKey: printed[3]!, dataDir, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
