// Runs test/helpers/fetch-once.ts as a child process (its own environment, e.g.
// NODE_EXTRA_CA_CERTS for a relay with a test-made CA) and returns the JSON line it prints:
// {status, bytes, sha256, relayURL}, or {error, code}.
import { spawn } from 'node:child_process'
import { join } from 'node:path'

const ROOT = join(import.meta.dirname, '..', '..')

export function fetchOnce(controlURL: string, authKey: string, host: string, url: string, env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/fetch-once.ts', controlURL, authKey, host, url], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('close', () => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>)
      } catch {
        reject(new Error(`fetch-once printed no result: ${out} ${err}`))
      }
    })
  })
}
