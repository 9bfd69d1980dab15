// What the Node-peer NAT-lab tests (test/nat-direct.test.ts: WebRTC, test/udp-direct.test.ts: plain
// UDP) share on top of the lab (./nat.ts): the relay on the lab's "internet" with STUN on 3478, a
// 20 MB pattern blob served on hostB, the processes' JSON-line stdout, and the relay's /metrics.
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { INTERNET_ADDRESS, type LabNamespace, type NatLab } from './nat.ts'
import { createAuthKey } from './relay-process.ts'

export const ROOT = join(import.meta.dirname, '..', '..')
/** The relay's listen address on the lab's internet. */
export const RELAY_HTTP = `${INTERNET_ADDRESS}:8080`
export const CONTROL = `http://${RELAY_HTTP}`
export const BLOB_BYTES = 20 << 20

export type Line = Record<string, unknown>

/** The child's stdout as JSON lines; `next` waits for the first line (from index `from` on) that passes `test`. */
export function jsonLines(child: ChildProcess): { logs: Line[]; next: (test: (e: Line) => boolean, timeoutMs: number, from?: number) => Promise<Line> } {
  const logs: Line[] = []
  const waiters: Array<() => void> = []
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Line)
    } catch {
      logs.push({ raw: line })
    }
    for (const wake of waiters.splice(0)) wake()
  })
  child.once('exit', () => {
    for (const wake of waiters.splice(0)) wake()
  })
  return {
    logs,
    next: (test, timeoutMs, from = 0) =>
      new Promise((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`no matching line within ${timeoutMs} ms; got ${JSON.stringify(logs)}; stderr ${stderr.slice(-4000)}`)), timeoutMs)
        const check = (): void => {
          const found = logs.slice(from).find(test)
          if (found) {
            clearTimeout(deadline)
            resolve(found)
          } else if (child.exitCode !== null) {
            clearTimeout(deadline)
            reject(new Error(`exited with ${child.exitCode}; got ${JSON.stringify(logs)}; stderr ${stderr.slice(-4000)}`))
          } else waiters.push(check)
        }
        check()
      }),
  }
}

/** One counter of the relay's Prometheus /metrics, read from the lab's internet. */
export async function relayMetric(lab: NatLab, name: string): Promise<number> {
  const text = await lab.inet.run(process.execPath, ['-e', `fetch('http://${RELAY_HTTP}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`])
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return Number(line?.split(' ')[1])
}

/** A byte pattern both sides can make (the served blob and the test's expected hash). */
const BLOB_SCRIPT = `const b = Buffer.alloc(${BLOB_BYTES}); for (let i = 0; i < b.length; i++) b[i] = (i * 31 + (i >> 11)) & 255;`

export function blobSha256(): string {
  const b = Buffer.alloc(BLOB_BYTES)
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + (i >> 11)) & 255
  return createHash('sha256').update(b).digest('hex')
}

/** `burrow relay` on the lab's internet with STUN on 3478 (data in `dir/relay`); resolves to a reusable auth key once it listens. */
export async function startLabRelay(lab: NatLab, dir: string, extraArgs: string[] = []): Promise<string> {
  const relay = lab.inet.spawn(process.execPath, ['bin/burrow.mjs', 'relay', '--listen', RELAY_HTTP, '--data-dir', join(dir, 'relay'), '--stun-port', '3478', ...extraArgs], {
    cwd: ROOT,
  })
  await jsonLines(relay).next((e) => e['msg'] === 'listening', 30_000)
  return createAuthKey(join(dir, 'relay'), '--reusable')
}

/** The blob over HTTP on 127.0.0.1:9000 of `host`. */
export async function startBlobServer(host: LabNamespace): Promise<void> {
  const http = host.spawn(process.execPath, [
    '-e',
    `${BLOB_SCRIPT} require('node:http').createServer((q, r) => r.end(b)).listen(9000, '127.0.0.1', () => console.log('{"msg":"serving"}'))`,
  ])
  await jsonLines(http).next((e) => e['msg'] === 'serving', 20_000)
}
