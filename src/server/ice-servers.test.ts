import { describe, expect, it } from 'vitest'
import { fromBase64, hmacSha1, toHex } from '../crypto/index.ts'
import { parseServerMessage } from '../control/protocol.ts'
import { hostOfHostHeader, iceServersFor, turnRestCredential } from './ice-servers.ts'

describe('ICE servers for the welcome', () => {
  it('HMAC-SHA1 matches RFC 2202 test case 2', () => {
    const enc = new TextEncoder()
    expect(toHex(hmacSha1(enc.encode('Jefe'), enc.encode('what do ya want for nothing?')))).toBe('effcdf6ae5eb2fa2d27416d5f184df9c259a7c79')
  })

  it('makes TURN REST credentials: username "expiry:user", credential base64(HMAC-SHA1(secret, username))', () => {
    const { username, credential } = turnRestCredential('s3cret', 1_800_000_000, 'ab12')
    expect(username).toBe('1800000000:ab12')
    expect(toHex(fromBase64(credential))).toBe(toHex(hmacSha1(new TextEncoder().encode('s3cret'), new TextEncoder().encode(username))))
    expect(turnRestCredential('s3cret', 5).username).toBe('5')
  })

  it('names the STUN server by the host the node reached the relay at, on the STUN port', () => {
    expect(iceServersFor({ stunPort: 3478 }, 'relay.example', 0, 'n')).toEqual([{ urls: 'stun:relay.example:3478' }])
    expect(iceServersFor({ stunPort: 3478, stunHost: 'stun.example' }, 'relay.example', 0, 'n')).toEqual([{ urls: 'stun:stun.example:3478' }])
    expect(iceServersFor({}, 'relay.example', 0, 'n')).toEqual([])
    expect(hostOfHostHeader('relay.example:8080')).toBe('relay.example')
    expect(hostOfHostHeader('[2001:db8::1]:443')).toBe('[2001:db8::1]')
    expect(hostOfHostHeader('bad header/x')).toBeUndefined()
  })

  it('hands out TURN with credentials that expire ttl seconds from now, and without a secret hands the URLs bare', () => {
    const [, turn] = iceServersFor({ stunPort: 3478, turn: { urls: ['turn:t.example:3478'], secret: 'k', ttlSeconds: 600 } }, 'r', 1_000_000, 'node:ab')
    expect(turn).toMatchObject({ urls: 'turn:t.example:3478', username: '1600:nodeab' })
    expect(iceServersFor({ turn: { urls: ['turn:a', 'turns:b'] } }, undefined, 0, 'n')).toEqual([{ urls: ['turn:a', 'turns:b'] }])
  })

  it('a welcome carrying iceServers parses; a bad URL in them is refused by name', () => {
    const peer = {
      id: 1,
      nodeKey: `nodekey:${'a'.repeat(64)}`,
      discoKey: `discokey:${'b'.repeat(64)}`,
      hostname: 'h',
      addresses: ['100.64.0.1', 'fd00::1'],
      online: true,
      homeRelay: null,
      lastSeen: null,
      ephemeral: false,
    }
    const welcome = { type: 'welcome', self: peer, network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' }, peers: [] }
    const ice = [{ urls: 'stun:r:3478' }, { urls: ['turn:t:3478'], username: '1:x', credential: 'c' }]
    expect(parseServerMessage(JSON.stringify({ ...welcome, iceServers: ice }))).toMatchObject({ iceServers: ice })
    expect(parseServerMessage(JSON.stringify(welcome))).not.toHaveProperty('iceServers')
    expect(() => parseServerMessage(JSON.stringify({ ...welcome, iceServers: [{ urls: 'http://x' }] }))).toThrow(
      'iceServers[0].urls[0] must be a stun:, stuns:, turn: or turns: URL',
    )
  })
})
