import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AUTH_KEY_PREFIX, hashAuthKey, parseAuthKeyArgs, runAuthKeyCommand, UsageError } from './authkey.ts'
import { CoordinationStore } from '../server/coordination/store.ts'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'burrow-authkey-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  let stdout = ''
  let stderr = ''
  const code = runAuthKeyCommand(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) })
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
    expect(() => parseAuthKeyArgs(['list'])).toThrow('unknown authkey action "list"')
    expect(() => parseAuthKeyArgs(['create', '--forever'])).toThrow('unknown option "--forever"')
    expect(() => parseAuthKeyArgs(['create', '--data-dir'])).toThrow('--data-dir needs a directory')
  })

  it('prints only the key on stdout and stores only its hash with the requested flags', () => {
    const result = run(['create', '--reusable', '--data-dir', dir])
    expect(result.code).toBe(0)
    const key = result.stdout.trim()
    expect(key).toMatch(new RegExp(`^${AUTH_KEY_PREFIX}[0-9a-f]{48}$`))
    expect(result.stderr).toContain('created a reusable auth key')
    const store = CoordinationStore.open(dir)
    expect(store.findAuthKey(hashAuthKey(key))).toMatchObject({ reusable: true, ephemeral: false, usedAt: null })
    expect(store.findAuthKey(key)).toBeUndefined()
    store.close()
  })

  it('exits 2 with usage on bad arguments and creates nothing', () => {
    const result = run(['create', '--bogus', '--data-dir', dir])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain('usage: burrow relay authkey create')
  })
})
