import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from './main.ts'
import { recordingIo } from './test-io.ts'

describe('burrow fetch (arguments)', () => {
  it('requires --config and exactly one http:// URL', async () => {
    const noConfig = recordingIo()
    expect(await main(['fetch', 'http://10.0.0.1/'], noConfig)).toBe(2)
    expect(noConfig.err).toContain('--config FILE is required')
    const https = recordingIo()
    expect(await main(['fetch', '--config', 'x.conf', 'https://10.0.0.1/'], https)).toBe(2)
    expect(https.err).toContain('only http:// URLs')
    const two = recordingIo()
    expect(await main(['fetch', '--config', 'x.conf', 'http://a/', 'http://b/'], two)).toBe(2)
    expect(two.err).toContain('exactly one URL')
  })

  it('reports an unreadable or invalid config file', async () => {
    const missing = recordingIo()
    expect(await main(['fetch', '--config', '/nonexistent/burrow.conf', 'http://10.0.0.1/'], missing)).toBe(2)
    expect(missing.err).toContain('cannot read /nonexistent/burrow.conf')
    const dir = mkdtempSync(join(tmpdir(), 'burrow-fetch-'))
    const bad = join(dir, 'bad.conf')
    writeFileSync(bad, '[Interface]\nPrivateKey = nope\n')
    const invalid = recordingIo()
    expect(await main(['fetch', '--config', bad, 'http://10.0.0.1/'], invalid)).toBe(2)
    expect(invalid.err).toContain(bad)
  })
})
