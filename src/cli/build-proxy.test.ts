import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from './main.ts'
import { recordingIo } from './test-io.ts'

describe('burrow proxy-files', () => {
  it('writes the Service Worker and the bridge page, bundled with no imports left, into --out', async () => {
    const out = mkdtempSync(join(tmpdir(), 'burrow-proxy-files-'))
    try {
      const io = recordingIo()
      expect(await main(['proxy-files', '--out', out], io)).toBe(0)
      expect(io.out).toContain(join(out, 'burrow-sw.js'))
      const worker = readFileSync(join(out, 'burrow-sw.js'), 'utf8')
      // A classic worker script: registered without { type: 'module' }, it may not import anything.
      expect(worker).not.toMatch(/^\s*(import|export)\s/m)
      expect(worker).toContain('burrow-proxy-serve')
      const bridge = readFileSync(join(out, 'burrow-proxy.html'), 'utf8')
      expect(bridge).toMatch(/^<!doctype html>/)
      expect(bridge).toContain('burrow-proxy-connect')
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })

  it('names an unexpected argument and exits with the usage status', async () => {
    const io = recordingIo()
    expect(await main(['proxy-files', 'public'], io)).toBe(2)
    expect(io.err).toMatch(/unexpected argument "public"[\s\S]*usage: burrow proxy-files/)
  })
})
