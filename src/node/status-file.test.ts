import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { StatusFileError, formatBytes, formatStatus, readStatusFile, removeStatusFile, writeStatusFile, type NodeStatus } from './status-file.ts'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-status-'))
  dirs.push(dir)
  return dir
}

const sample: NodeStatus = {
  version: 1,
  pid: 4242,
  updatedAt: 1_000_000,
  self: { hostname: 'web', addresses: ['100.64.0.1', 'fd7a:115c:a1e0::1'], nodeKey: 'nodekey:ab', state: 'online', relayURL: 'http://r/derp' },
  peers: [
    { hostname: 'phone', addresses: ['100.64.0.3', 'fd7a:115c:a1e0::3'], online: false, path: 'relay', rttMs: null, rxBytes: 0, txBytes: 0 },
    { hostname: 'laptop', addresses: ['100.64.0.2', 'fd7a:115c:a1e0::2'], online: true, path: 'direct', rttMs: 3.25, rxBytes: 5 * 1024 * 1024, txBytes: 1500 },
  ],
  services: [{ proto: 'tcp', port: 80, target: '127.0.0.1:8080', active: 2 }],
}

describe('status file', () => {
  it('round-trips through an atomic write with mode 0600 and no leftovers', async () => {
    const dir = tempDir()
    expect(await readStatusFile(dir)).toBeUndefined()
    await writeStatusFile(dir, sample)
    await writeStatusFile(dir, { ...sample, updatedAt: 2_000_000 })
    expect(await readStatusFile(dir)).toEqual({ ...sample, updatedAt: 2_000_000 })
    expect(readdirSync(dir)).toEqual(['status.json'])
    expect(statSync(join(dir, 'status.json')).mode & 0o777).toBe(0o600)
    await removeStatusFile(dir)
    expect(await readStatusFile(dir)).toBeUndefined()
  })

  it('refuses a file that is not a status file', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'status.json'), '{"version":9}')
    await expect(readStatusFile(dir)).rejects.toThrow(StatusFileError)
    await expect(readStatusFile(dir)).rejects.toThrow(/is not a burrow status file of version 1/)
    writeFileSync(join(dir, 'status.json'), 'nope')
    await expect(readStatusFile(dir)).rejects.toThrow(/status\.json is not JSON/)
  })
})

describe('formatStatus', () => {
  it('prints self, peers sorted by name and served ports as aligned columns', () => {
    expect(formatStatus(sample, 1_000_500, true)).toBe(
      [
        'IPv4        IPv6               HOSTNAME  STATUS        PATH    RTT     RX       TX',
        '100.64.0.1  fd7a:115c:a1e0::1  web       self, online  -       -       -        -',
        '100.64.0.2  fd7a:115c:a1e0::2  laptop    online        direct  3.3 ms  5.0 MiB  1.5 KiB',
        '100.64.0.3  fd7a:115c:a1e0::3  phone     offline       -       -       0 B      0 B',
        '',
        'SERVES  TO              ACTIVE',
        'tcp/80  127.0.0.1:8080  2',
        '',
      ].join('\n'),
    )
  })

  it('says when the up process is gone or not updating', () => {
    expect(formatStatus(sample, 1_030_000, false).split('\n')[0]).toBe('# burrow up (pid 4242) is not running; last status from 30 s ago')
    expect(formatStatus(sample, 1_000_000 + 7 * 60_000, true).split('\n')[0]).toBe('# status is 7 min old: burrow up (pid 4242) is not updating it')
  })

  it('formats byte counts', () => {
    expect([formatBytes(0), formatBytes(1023), formatBytes(1024), formatBytes(150 * 1024), formatBytes(3 * 1024 ** 3)]).toEqual(['0 B', '1023 B', '1.0 KiB', '150 KiB', '3.0 GiB'])
  })

  it('shows the home relay region and the relay in use under the table, when the status has one', () => {
    const withHome: NodeStatus = { ...sample, self: { ...sample.self, relayURL: 'ws://fra2.example/derp', homeRegion: { id: 1, code: 'fra', name: 'Frankfurt' } } }
    expect(formatStatus(withHome, sample.updatedAt, true)).toContain('\nhome relay: region 1 (fra, Frankfurt) via ws://fra2.example/derp\n')
    expect(formatStatus(sample, sample.updatedAt, true)).not.toContain('home relay')
  })
})
