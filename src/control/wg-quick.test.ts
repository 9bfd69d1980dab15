import { describe, expect, it } from 'vitest'
import { formatKey } from '../crypto/index.ts'
import { formatAddress, formatPrefix } from '../wire/address.ts'
import { ConfigError, parseWgQuick } from './wg-quick.ts'

// Keys made with `wg genkey` / `wg pubkey` / `wg genpsk`.
const PRIVATE = 'sGARi2x9k5IjoYfxhvGZ09NdQ8hkPhl1+E9GLgONP3Y='
const PEER_A = 'pqO2pue4OHqPHXCIh8Fl44eHavlYNjKmXrjepcFIMm4='
const PEER_B = 'Z1lgaawIE1t16aVKmnEyd01avJMxc8VJSU64woDBnwY='
const PSK = 'SHu7YvwixyW6ba+DqPwL+SYHcFApqUj0OxI9RaY1VOc='

const FULL = `# laptop
[Interface]
PrivateKey = ${PRIVATE}
Address = 10.7.0.2/24, fd07::2/64
Address = 10.8.0.2
ListenPort = 51820
MTU = 1380
DNS = 1.1.1.1
PostUp = iptables -A FORWARD -i %i -j ACCEPT
SaveConfig = false

[Peer]   
PublicKey = ${PEER_A}
PresharedKey = ${PSK}
AllowedIPs = 10.7.0.0/24, fd07::/64  # overlay
AllowedIPs = 192.168.5.77/16
Endpoint = vpn.example.com:51820
PersistentKeepalive = 25

[peer]
publickey=${PEER_B}
allowedips=0.0.0.0/0,::/0
endpoint=[2001:db8::1]:4500
persistentkeepalive=off
`

function errorOf(text: string): ConfigError {
  try {
    parseWgQuick(text)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error('expected a ConfigError')
}

const withInterface = (rest: string) => `[Interface]\nPrivateKey = ${PRIVATE}\n${rest}`
const withPeer = (rest: string) => withInterface(`[Peer]\nPublicKey = ${PEER_A}\n${rest}`)

describe('parseWgQuick', () => {
  it('parses a full configuration', () => {
    const config = parseWgQuick(FULL)
    expect(formatKey(config.interface.privateKey)).toBe(PRIVATE)
    expect(config.interface.addresses.map((a) => `${formatAddress(a.address)}/${a.bits}`)).toEqual(['10.7.0.2/24', 'fd07::2/64', '10.8.0.2/32'])
    expect(config.interface.listenPort).toBe(51820)
    expect(config.interface.mtu).toBe(1380)
    expect(config.peers).toHaveLength(2)

    const [a, b] = config.peers
    expect(formatKey(a!.publicKey)).toBe(PEER_A)
    expect(formatKey(a!.presharedKey!)).toBe(PSK)
    expect(a!.allowedIps.map(formatPrefix)).toEqual(['10.7.0.0/24', 'fd07::/64', '192.168.0.0/16'])
    expect(a!.endpoint).toEqual({ host: 'vpn.example.com', port: 51820 })
    expect(a!.persistentKeepalive).toBe(25)

    expect(formatKey(b!.publicKey)).toBe(PEER_B)
    expect(b!.presharedKey).toBeUndefined()
    expect(b!.allowedIps.map(formatPrefix)).toEqual(['0.0.0.0/0', '::/0'])
    expect(b!.endpoint).toEqual({ host: '2001:db8::1', port: 4500 })
    expect(b!.persistentKeepalive).toBeUndefined()
  })

  it('accepts a minimal interface with no peers and CRLF line ends', () => {
    const config = parseWgQuick(`[Interface]\r\nPrivateKey = ${PRIVATE}\r\n`)
    expect(config.interface.addresses).toEqual([])
    expect(config.interface.listenPort).toBeUndefined()
    expect(config.peers).toEqual([])
  })

  it('accepts Tailscale-style hex keys and an IPv4 endpoint', () => {
    const hex = 'nodekey:' + '11'.repeat(32)
    const config = parseWgQuick(withInterface(`[Peer]\nPublicKey = ${hex}\nEndpoint = 192.0.2.1:51820\n`))
    expect(config.peers[0]!.publicKey).toEqual(new Uint8Array(32).fill(0x11))
    expect(config.peers[0]!.endpoint).toEqual({ host: '192.0.2.1', port: 51820 })
  })

  it('treats PersistentKeepalive = 0 as off', () => {
    expect(parseWgQuick(withPeer('PersistentKeepalive = 0\n')).peers[0]!.persistentKeepalive).toBeUndefined()
  })

  const cases: Array<[name: string, text: string, line: number, message: RegExp]> = [
    ['no [Interface]', `[Peer]\nPublicKey = ${PEER_A}\n`, 0, /missing \[Interface\]/],
    ['empty file', '', 0, /missing \[Interface\]/],
    ['no PrivateKey', '\n[Interface]\nListenPort = 1\n', 2, /line 2: \[Interface\] has no PrivateKey/],
    ['second [Interface]', withInterface('[Interface]\n'), 3, /line 3: second \[Interface\] section \(the first is on line 1\)/],
    ['unknown section', withInterface('[Router]\n'), 3, /line 3: unknown section \[Router\]/],
    ['key before section', `PrivateKey = ${PRIVATE}\n`, 1, /line 1: PrivateKey appears before any/],
    ['line without =', withInterface('ListenPort 51820\n'), 3, /line 3: expected "Key = Value"/],
    ['missing key', withInterface('= 5\n'), 3, /line 3: missing key/],
    ['empty value', withInterface('MTU =\n'), 3, /line 3: MTU has no value/],
    ['bad private key', '[Interface]\nPrivateKey = abc\n', 2, /line 2: PrivateKey is not a valid 32-byte key/],
    ['short private key', '[Interface]\nPrivateKey = AAAA\n', 2, /line 2: PrivateKey is not a valid 32-byte key/],
    ['unknown interface key', withInterface('Foo = bar\n'), 3, /line 3: unknown key Foo in \[Interface\]/],
    ['peer key in interface', withInterface(`PublicKey = ${PEER_A}\n`), 3, /line 3: unknown key PublicKey in \[Interface\]/],
    ['duplicate ListenPort', withInterface('ListenPort = 1\nListenPort = 2\n'), 4, /line 4: ListenPort is set twice in this section \(first on line 3\)/],
    ['ListenPort not a number', withInterface('ListenPort = http\n'), 3, /line 3: ListenPort must be a whole number/],
    ['ListenPort too big', withInterface('ListenPort = 65536\n'), 3, /line 3: ListenPort must be between 0 and 65535/],
    ['MTU too small', withInterface('MTU = 100\n'), 3, /line 3: MTU must be between 576 and 65535/],
    ['bad Address', withInterface('Address = 10.0.0.300/24\n'), 3, /line 3: Address "10.0.0.300" is not an IPv4 or IPv6 address/],
    ['bad Address prefix', withInterface('Address = 10.0.0.3/33\n'), 3, /line 3: Address 10.0.0.3\/33 has prefix length "33"; expected 0 to 32/],
    ['empty Address item', withInterface('Address = 10.0.0.3/24,,fd00::1\n'), 3, /line 3: Address has an empty item/],
    ['no PublicKey', withInterface('\n[Peer]\nAllowedIPs = 10.0.0.0/8\n'), 4, /line 4: \[Peer\] has no PublicKey/],
    ['bad PublicKey', withInterface('\n\n\n\n[Peer]\nPublicKey = not-a-key\n'), 8, /^line 8: PublicKey is not a valid 32-byte key$/],
    ['bad PresharedKey', withPeer('PresharedKey = AAAA\n'), 5, /line 5: PresharedKey is not a valid 32-byte key/],
    ['duplicate peers', withPeer(`[Peer]\nPublicKey = ${PEER_A}\n`), 5, /line 5: this \[Peer\] has the same PublicKey as the \[Peer\] on line 3/],
    ['unknown peer key', withPeer('Weight = 3\n'), 5, /line 5: unknown key Weight in \[Peer\]/],
    ['host-only key in peer', withPeer('DNS = 1.1.1.1\n'), 5, /line 5: unknown key DNS in \[Peer\]/],
    ['bad AllowedIPs address', withPeer('AllowedIPs = 10.0.0/8\n'), 5, /line 5: AllowedIPs entry "10.0.0" is not an IPv4 or IPv6 address/],
    ['bad AllowedIPs prefix', withPeer('AllowedIPs = fd00::/129\n'), 5, /line 5: AllowedIPs entry fd00::\/129 has prefix length "129"; expected 0 to 128/],
    ['endpoint without port', withPeer('Endpoint = example.com\n'), 5, /line 5: Endpoint "example.com" must be host:port/],
    ['endpoint bad port', withPeer('Endpoint = example.com:0\n'), 5, /line 5: Endpoint port "0" must be between 1 and 65535/],
    ['endpoint port too big', withPeer('Endpoint = [fd00::1]:70000\n'), 5, /line 5: Endpoint port "70000"/],
    ['endpoint bare IPv6', withPeer('Endpoint = fd00::1:51820\n'), 5, /line 5: .*write IPv6 addresses as \[address\]:port/],
    ['endpoint bad IPv6', withPeer('Endpoint = [fd00::zz]:51820\n'), 5, /line 5: Endpoint "fd00::zz" is not an IPv4 or IPv6 address/],
    ['endpoint bad IPv4', withPeer('Endpoint = 10.0.0.256:51820\n'), 5, /line 5: Endpoint "10.0.0.256" is not an IPv4 or IPv6 address/],
    ['endpoint bad host', withPeer('Endpoint = ex_ample.com:51820\n'), 5, /line 5: Endpoint host "ex_ample.com"/],
    ['keepalive not a number', withPeer('PersistentKeepalive = often\n'), 5, /line 5: PersistentKeepalive must be a whole number/],
    ['keepalive too big', withPeer('PersistentKeepalive = 65536\n'), 5, /line 5: PersistentKeepalive must be between 0 and 65535/],
    ['duplicate Endpoint', withPeer('Endpoint = a:1\nendpoint = b:2\n'), 6, /line 6: endpoint is set twice in this section \(first on line 5\)/],
  ]

  for (const [name, text, line, message] of cases) {
    it(`rejects ${name}`, () => {
      const error = errorOf(text)
      expect(error.line).toBe(line)
      expect(error.message).toMatch(message)
    })
  }
})
