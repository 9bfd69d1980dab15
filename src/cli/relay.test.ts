import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { generateKeyPair, formatKey, formatNodeKey, toHex } from '../crypto/index.ts'
import { UsageError } from './args.ts'
import { parseListen, readAllowedKeys, relay } from './relay.ts'

function capture() {
  const out = { stdout: '', stderr: '' }
  return { out, io: { stdout: (t: string) => void (out.stdout += t), stderr: (t: string) => void (out.stderr += t), readStdin: async () => '' } }
}

describe('burrow relay flags', () => {
  it('parses HOST:PORT including IPv6 and port 0', () => {
    expect(parseListen('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseListen('[::1]:8080')).toEqual({ host: '::1', port: 8080 })
    expect(() => parseListen('8080')).toThrow(UsageError)
    expect(() => parseListen('h:70000')).toThrow(/HOST:PORT/)
  })

  it('rejects bad usage with exit status 2 and a message', async () => {
    const { out, io } = capture()
    expect(await relay(['--listen', 'nope'], io)).toBe(2)
    expect(out.stderr).toMatch(/--listen must be HOST:PORT/)
    const second = capture()
    expect(await relay(['--allowed-keys', '/nonexistent'], second.io)).toBe(2)
    expect(second.out.stderr).toMatch(/--allowed-keys only applies with --verify-clients/)
    const third = capture()
    expect(await relay(['--queue-packets', '0'], third.io)).toBe(2)
    expect(third.out.stderr).toMatch(/--queue-packets must be a whole number from 1/)
  })

  it('rejects bad limit flags with exit status 2 and a message naming the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--reverify-interval', '1000'], /--reverify-interval only applies with --verify-clients/],
      [['--control-rate', '0'], /--control-rate must be a number from 1/],
      [['--idle-timeout', '10'], /--idle-timeout must be a whole number from 1000/],
      [['--max-connections-per-ip', 'many'], /--max-connections-per-ip must be a whole number/],
      [['--handshake-rate', '-1'], /--handshake-rate must be a number from 0/],
      [['--max-buffered-bytes', '1000'], /--max-buffered-bytes must be a whole number from 1048576/],
    ]
    for (const [argv, message] of cases) {
      const { out, io } = capture()
      expect(await relay(argv, io)).toBe(2)
      expect(out.stderr).toMatch(message)
    }
  })

  it('reads an allow-list in either key format and names a bad line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-allow-'))
    const a = generateKeyPair().publicKey
    const b = generateKeyPair().publicKey
    writeFileSync(join(dir, 'ok'), `# team\n${formatNodeKey(a)}\n\n${formatKey(b)}  # laptop\n`)
    expect(await readAllowedKeys(join(dir, 'ok'))).toEqual(new Set([toHex(a), toHex(b)]))
    writeFileSync(join(dir, 'bad'), `${formatNodeKey(a)}\nnodekey:zz\n`)
    await expect(readAllowedKeys(join(dir, 'bad'))).rejects.toThrow(/bad:2:/)
    rmSync(dir, { recursive: true, force: true })
  })

  it('rejects a bad --relay-map or region flags with exit status 2 and a message naming the field or flag', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-relay-map-'))
    try {
      writeFileSync(join(dir, 'bad.json'), JSON.stringify({ regions: [{ id: 1, code: 'x', nodes: [{ url: 'nope' }] }] }))
      const cases: Array<[string[], RegExp]> = [
        [['--relay-map', join(dir, 'bad.json')], /--relay-map .*bad\.json: regions\[0\]\.nodes\[0\]\.url must be an http\(s\) or ws\(s\) URL/],
        [['--relay-map', join(dir, 'missing.json')], /--relay-map cannot read the relay map/],
        [['--relay-map', join(dir, 'bad.json'), '--relay-url', 'http://a'], /give --relay-map FILE or --relay-url/],
        [['--region-id', '1'], /--region-id and --region-code go together/],
        [['--region-id', '1', '--region-code', 'x'], /give --relay-url too/],
        [['--region-id', '0', '--region-code', 'x', '--relay-url', 'http://a'], /--region-id: id must be 1–/],
      ]
      for (const [argv, message] of cases) {
        const { out, io } = capture()
        expect(await relay(['--data-dir', dir, ...argv], io)).toBe(2)
        expect(out.stderr).toMatch(message)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('lists --database in --help, refuses a --database that is not a postgres:// URL, and names an unreachable database without its password', async () => {
    const help = capture()
    expect(await relay(['--help'], help.io)).toBe(0)
    expect(help.out.stdout).toContain('--database postgres://')
    const bad = capture()
    expect(await relay(['--database', 'mysql://db/x'], bad.io)).toBe(2)
    expect(bad.out.stderr).toContain('--database must be a postgres:// or postgresql:// URL, got "mysql://db/x"')
    const dir = mkdtempSync(join(tmpdir(), 'burrow-relay-db-'))
    try {
      const down = capture()
      expect(await relay(['--listen', '127.0.0.1:0', '--stun-port', '0', '--data-dir', dir, '--database', 'postgres://burrow:hunter2@127.0.0.1:1/burrow'], down.io)).toBe(1)
      expect(down.out.stderr).toContain('cannot open the coordination store (--database): the coordination database postgres://burrow:***@127.0.0.1:1/burrow is unavailable')
      expect(down.out.stderr).not.toContain('hunter2')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
