import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseAddress } from '../wire/address.ts'
import { buildEcho, parseEcho } from '../wire/icmp.ts'
import { buildIp, parseIp, PROTO_ICMP } from '../wire/ip.ts'
import { buildEchoRequest, formatSummary, matchEchoReply, ping } from './ping.ts'
import { recordingIo } from './test-io.ts'

const dir = mkdtempSync(join(tmpdir(), 'burrow-ping-test-'))
function configFile(text: string): string {
  const path = join(dir, `c${Math.random().toString(36).slice(2)}.conf`)
  writeFileSync(path, text)
  return path
}

const me = parseAddress('10.5.0.2')
const them = parseAddress('10.5.0.1')

describe('echo helpers', () => {
  it('builds a 56-byte echo request from source to target', () => {
    const ip = parseIp(buildEchoRequest(me, them, 77, 3))
    expect(ip.protocol).toBe(PROTO_ICMP)
    const echo = parseEcho(ip.payload, 4, ip.src, ip.dst)
    expect(echo).toMatchObject({ kind: 'request', id: 77, seq: 3 })
    expect(echo!.data).toHaveLength(56)
  })

  it('matches only replies from the target to our id', () => {
    const reply = (src: Uint8Array, id: number, kind: 'reply' | 'request' = 'reply') =>
      buildIp({ src, dst: me, protocol: PROTO_ICMP, ttl: 61, payload: buildEcho({ kind, id, seq: 9, data: new Uint8Array(56) }, 4, src, me) })
    expect(matchEchoReply(reply(them, 77), them, 77)).toEqual({ seq: 9, ttl: 61, bytes: 64 })
    expect(matchEchoReply(reply(them, 78), them, 77)).toBeUndefined()
    expect(matchEchoReply(reply(parseAddress('10.5.0.9'), 77), them, 77)).toBeUndefined()
    expect(matchEchoReply(reply(them, 77, 'request'), them, 77)).toBeUndefined()
    expect(matchEchoReply(new Uint8Array(3), them, 77)).toBeUndefined()
  })

  it('summarises like ping(8)', () => {
    expect(formatSummary('10.5.0.1', 4, [1, 2, 3])).toBe(
      '--- 10.5.0.1 ping statistics ---\n4 packets transmitted, 3 received, 25% packet loss\nrtt min/avg/max = 1.000/2.000/3.000 ms\n',
    )
    expect(formatSummary('10.5.0.1', 2, [])).toBe('--- 10.5.0.1 ping statistics ---\n2 packets transmitted, 0 received, 100% packet loss\n')
  })
})

describe('burrow ping argument and config errors', () => {
  const good = configFile('[Interface]\nPrivateKey = sGARi2x9k5IjoYfxhvGZ09NdQ8hkPhl1+E9GLgONP3Y=\nAddress = 10.5.0.2/24\n')

  const cases: Array<[string, string[], RegExp]> = [
    ['no --config', ['10.5.0.1'], /--config FILE is required/],
    ['no address', ['--config', good], /exactly one ADDRESS/],
    ['two addresses', ['--config', good, '10.5.0.1', '10.5.0.3'], /exactly one ADDRESS/],
    ['bad address', ['--config', good, '10.5.0'], /"10.5.0" is not an IPv4 or IPv6 address/],
    ['unknown flag', ['--config', good, '--ttl', '3', '10.5.0.1'], /unknown option --ttl/],
    ['bad count', ['--config', good, '--count', '0', '10.5.0.1'], /--count must be a whole number from 1/],
    ['bad interval', ['--config', good, '--interval', 'soon', '10.5.0.1'], /--interval must be a number/],
    ['missing file', ['--config', join(dir, 'nope.conf'), '10.5.0.1'], /cannot read .*nope\.conf/],
    [
      'broken config',
      ['--config', configFile('[Interface]\nPrivateKey = sGARi2x9k5IjoYfxhvGZ09NdQ8hkPhl1+E9GLgONP3Y=\n\nMTU = big\n'), '10.5.0.1'],
      /line 4: MTU must be a whole number/,
    ],
    ['no source of that family', ['--config', good, 'fd00::1'], /has no IPv6 Address to ping fd00::1 from/],
  ]
  for (const [name, args, message] of cases) {
    it(`exits 2 for ${name}`, async () => {
      const io = recordingIo()
      expect(await ping(args, io)).toBe(2)
      expect(io.err).toMatch(message)
      expect(io.out).toBe('')
    })
  }
})
