import { describe, expect, it } from 'vitest'
import { parseServeSpec, parseUpArgs } from './up-args.ts'

describe('parseUpArgs', () => {
  it('reads every flag, repeatable ones in order', () => {
    const config = parseUpArgs([
      '--control',
      'http://127.0.0.1:8080',
      '--authkey=bwauth-1',
      '--hostname',
      'web',
      '--state-dir',
      '/tmp/s',
      '--serve',
      '80=127.0.0.1:8080',
      '--serve=443=localhost:8443',
      '--serve-udp',
      '53=[::1]:5353',
      '--allow',
      '100.64.0.0/24',
      '--allow',
      'laptop',
      '--ephemeral',
      '--udp-idle',
      '30',
      '--pcap',
      '/tmp/up.pcap',
      '--log-level',
      'debug',
    ])
    expect(config).toMatchObject({
      controlURL: 'http://127.0.0.1:8080',
      authKey: 'bwauth-1',
      hostname: 'web',
      stateDir: '/tmp/s',
      ephemeral: true,
      serveTcp: [
        { port: 80, target: { host: '127.0.0.1', port: 8080 } },
        { port: 443, target: { host: 'localhost', port: 8443 } },
      ],
      serveUdp: [{ port: 53, target: { host: '::1', port: 5353 } }],
      allow: ['100.64.0.0/24', 'laptop'],
      udpIdleSeconds: 30,
      pcapPath: '/tmp/up.pcap',
      logLevel: 'debug',
    })
    expect(config.policy.entries.map((e) => e.text)).toEqual(['100.64.0.0/24', 'laptop'])
  })

  it('defaults: no services, everyone allowed, persistent identity', () => {
    const config = parseUpArgs(['--control', 'https://relay.example'])
    expect(config).toMatchObject({
      authKey: undefined,
      hostname: undefined,
      stateDir: undefined,
      ephemeral: false,
      serveTcp: [],
      serveUdp: [],
      allow: [],
      udpIdleSeconds: 60,
      pcapPath: undefined,
      logLevel: 'info',
    })
    expect(config.policy.allowsEveryone).toBe(true)
  })

  it('tailnet flags: --control-key mkey:… and --derp-over-http reach the config; both are off by default', () => {
    const key = `mkey:${'ab'.repeat(32)}`
    expect(parseUpArgs(['--control', 'http://hs:8080', '--authkey', 'hskey-auth-x', '--control-key', key, '--derp-over-http'])).toMatchObject({
      controlKey: key,
      derpOverHTTP: true,
    })
    expect(parseUpArgs(['--control', 'http://hs:8080'])).toMatchObject({ controlKey: undefined, derpOverHTTP: false })
    expect(() => parseUpArgs(['--control', 'http://hs:8080', '--control-key', 'nodekey:00'])).toThrow('--control-key must be mkey: and 64 hex digits')
    expect(() => parseUpArgs(['--control', 'http://hs:8080', '--derp-over-http=yes'])).toThrow('--derp-over-http takes no value')
  })

  it('refuses bad usage with messages that name the problem', () => {
    expect(() => parseUpArgs([])).toThrow('--control URL is required')
    expect(() => parseUpArgs(['--control', 'ftp://x'])).toThrow('--control "ftp://x" is not an http(s) or ws(s) URL')
    expect(() => parseUpArgs(['--control', 'http://x', '--hostname', 'a', '--hostname', 'b'])).toThrow('--hostname given twice')
    expect(() => parseUpArgs(['--control', 'http://x', '--bogus', '1'])).toThrow('unknown option --bogus')
    expect(() => parseUpArgs(['--control', 'http://x', '--serve'])).toThrow('--serve needs a value')
    expect(() => parseUpArgs(['--control', 'http://x', '--ephemeral=yes'])).toThrow('--ephemeral takes no value')
    expect(() => parseUpArgs(['--control', 'http://x', '--log-level', 'loud'])).toThrow('--log-level must be one of debug, info, warn, error, got "loud"')
    expect(() => parseUpArgs(['--control', 'http://x', 'stray'])).toThrow('unexpected argument "stray"')
    expect(() => parseUpArgs(['--control', 'http://x', '--serve', '80=1.2.3.4:1', '--serve', '80=1.2.3.4:2'])).toThrow('--serve: overlay port 80 is served twice')
    expect(() => parseUpArgs(['--control', 'http://x', '--allow', '10.0.0.0/40'])).toThrow(/--allow "10.0.0.0\/40"/)
    expect(() => parseUpArgs(['--control', 'http://x', '--udp-idle', '0'])).toThrow('--udp-idle must be seconds')
  })
})

describe('parseServeSpec', () => {
  it('accepts host:port, [v6]:port and a bare port', () => {
    expect(parseServeSpec('serve', '8080=3000')).toMatchObject({ port: 8080, target: { host: '127.0.0.1', port: 3000 } })
    expect(parseServeSpec('serve', '80=[fd00::1]:80')).toMatchObject({ target: { host: 'fd00::1', port: 80 } })
  })

  it('names what is wrong', () => {
    expect(() => parseServeSpec('serve', '80')).toThrow('--serve "80": missing "=" (expected PORT=HOST:PORT, e.g. 80=127.0.0.1:8080)')
    expect(() => parseServeSpec('serve', '0=1.2.3.4:5')).toThrow('overlay port "0" is not 1..65535')
    expect(() => parseServeSpec('serve', '80=1.2.3.4:70000')).toThrow('service port "70000" is not 1..65535')
    expect(() => parseServeSpec('serve', '80=::1:80')).toThrow('write an IPv6 host in brackets')
    expect(() => parseServeSpec('serve', '80=[::1]80')).toThrow('an IPv6 host needs the form [ADDRESS]:PORT')
    expect(() => parseServeSpec('serve-udp', '80=[nope]:80')).toThrow('--serve-udp "80=[nope]:80": "nope" is not an IPv6 address')
    expect(() => parseServeSpec('serve', '80=:80')).toThrow('the host is empty')
  })
})
