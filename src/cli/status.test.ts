import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { writeStatusFile, type NodeStatus } from '../node/status-file.ts'
import { status } from './status.ts'
import { recordingIo } from './test-io.ts'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-status-cli-'))
  dirs.push(dir)
  return dir
}

const snapshot = (pid: number): NodeStatus => ({
  version: 1,
  pid,
  updatedAt: Date.now(),
  self: { hostname: 'web', addresses: ['100.64.0.1', 'fd7a::1'], nodeKey: 'nodekey:ab', state: 'online', relayURL: 'ws://r/derp' },
  peers: [{ hostname: 'laptop', addresses: ['100.64.0.2', 'fd7a::2'], online: true, path: 'relay', rttMs: 12, rxBytes: 10, txBytes: 20 }],
  services: [],
})

describe('burrow status', () => {
  it('prints the table of the running up process', async () => {
    const dir = tempDir()
    await writeStatusFile(dir, snapshot(process.pid))
    const io = recordingIo()
    expect(await status(['--state-dir', dir], io)).toBe(0)
    expect(io.out.split('\n')[2]).toMatch(/^100\.64\.0\.2\s+fd7a::2\s+laptop\s+online\s+relay\s+12 ms\s+10 B\s+20 B$/)
    expect(io.out).not.toContain('not running')
  })

  it('prints JSON with --json', async () => {
    const dir = tempDir()
    await writeStatusFile(dir, snapshot(process.pid))
    const io = recordingIo()
    expect(await status(['--json', '--state-dir', dir], io)).toBe(0)
    expect(JSON.parse(io.out)).toMatchObject({ self: { hostname: 'web' }, peers: [{ hostname: 'laptop' }] })
  })

  it('flags a status left by a process that is gone', async () => {
    const dir = tempDir()
    // Pids are at most 2^22 on Linux: this one cannot exist.
    await writeStatusFile(dir, snapshot(2 ** 22 + 1))
    const io = recordingIo()
    expect(await status(['--state-dir', dir], io)).toBe(0)
    expect(io.out.split('\n')[0]).toMatch(/^# burrow up \(pid 4194305\) is not running; last status from \d+ s ago$/)
  })

  it('fails clearly without a running up, on a broken file and on bad usage', async () => {
    const dir = tempDir()
    let io = recordingIo()
    expect(await status(['--state-dir', dir], io)).toBe(1)
    expect(io.err).toBe(`burrow status: no burrow up is running with state dir ${dir} (${join(dir, 'status.json')} does not exist)\n`)
    writeFileSync(join(dir, 'status.json'), '[')
    io = recordingIo()
    expect(await status(['--state-dir', dir], io)).toBe(1)
    expect(io.err).toBe(`burrow status: ${join(dir, 'status.json')} is not JSON\n`)
    io = recordingIo()
    expect(await status(['--state-dir', dir, 'extra'], io)).toBe(2)
    expect(io.err).toBe('burrow status: unexpected argument "extra"\n')
    io = recordingIo()
    expect(await status(['--bogus'], io)).toBe(2)
  })
})
