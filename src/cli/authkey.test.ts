import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AUTH_KEY_PREFIX, hashAuthKey, parseAuthKeyArgs, runAuthKeyCommand, UsageError } from './authkey.ts'
import { SqliteStore } from '../server/coordination/store.ts'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'burrow-authkey-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await runAuthKeyCommand(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) })
  return { code, stdout, stderr }
}

describe('burrow relay authkey', () => {
  it('parses flags in any order, including --data-dir=DIR', () => {
    expect(parseAuthKeyArgs(['create', '--ephemeral', '--data-dir', '/x', '--reusable'])).toEqual({ action: 'create', reusable: true, ephemeral: true, dataDir: '/x' })
    expect(parseAuthKeyArgs(['create', '--data-dir=/y']).dataDir).toBe('/y')
    expect(parseAuthKeyArgs(['create'])).toMatchObject({ reusable: false, ephemeral: false })
  })

  it('names the bad argument', () => {
    expect(() => parseAuthKeyArgs([])).toThrow(UsageError)
    expect(() => parseAuthKeyArgs(['delete'])).toThrow('unknown authkey action "delete"')
    expect(() => parseAuthKeyArgs(['create', '--expires', 'soon'])).toThrow('--expires must be a duration like 90s, 30m, 24h or 7d, got "soon"')
    expect(() => parseAuthKeyArgs(['revoke'])).toThrow('authkey revoke needs exactly one key')
    expect(() => parseAuthKeyArgs(['create', '--forever'])).toThrow('unknown option "--forever"')
    expect(() => parseAuthKeyArgs(['create', '--data-dir'])).toThrow('--data-dir needs a directory')
  })

  it('prints only the key on stdout and stores only its hash with the requested flags', async () => {
    const result = await run(['create', '--reusable', '--data-dir', dir])
    expect(result.code).toBe(0)
    const key = result.stdout.trim()
    expect(key).toMatch(new RegExp(`^${AUTH_KEY_PREFIX}[0-9a-f]{48}$`))
    expect(result.stderr).toContain('created a reusable auth key')
    const store = SqliteStore.open(dir)
    expect(await store.findAuthKey(hashAuthKey(key))).toMatchObject({ reusable: true, ephemeral: false, usedAt: null })
    expect(await store.findAuthKey(key)).toBeUndefined()
    await store.close()
  })

  it('creates a key that expires (--expires 24h), lists keys and revokes one by id or by its text', async () => {
    expect(parseAuthKeyArgs(['create', '--expires', '24h'])).toMatchObject({ action: 'create', expiresInMs: 24 * 3_600_000 })
    const before = Date.now()
    const created = await run(['create', '--expires=24h', '--data-dir', dir])
    expect(created.stderr).toMatch(/created a single-use auth key \(id 1, expiring at \d{4}-/)
    const second = (await run(['create', '--reusable', '--data-dir', dir])).stdout.trim()
    const store = SqliteStore.open(dir)
    const expiresAt = (await store.findAuthKey(hashAuthKey(created.stdout.trim())))!.expiresAt!
    expect(expiresAt - before).toBeGreaterThanOrEqual(24 * 3_600_000)
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(24 * 3_600_000)
    await store.close()
    expect(await run(['revoke', '1', '--data-dir', dir])).toMatchObject({ code: 0, stderr: expect.stringContaining('revoked auth key 1') })
    expect((await run(['revoke', second, '--data-dir', dir])).code).toBe(0)
    expect(await run(['revoke', '99', '--data-dir', dir])).toMatchObject({ code: 1, stderr: expect.stringContaining('no auth key with id 99') })
    const listed = (await run(['list', '--data-dir', dir])).stdout.trim().split('\n')
    expect(listed).toHaveLength(3)
    expect(listed[1]).toMatch(/^1 {2}single-use {2}- {2}\S+ {2}\d{4}-\S+ {2}revoked$/)
    expect(listed[2]).toMatch(/^2 {2}reusable {2}- {2}\S+ {2}never {2}revoked$/)
  })

  it('exits 2 with usage on bad arguments and creates nothing', async () => {
    const result = await run(['create', '--bogus', '--data-dir', dir])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('usage: burrow relay authkey create')
  })
})
