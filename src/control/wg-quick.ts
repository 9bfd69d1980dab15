// Parser for the wg-quick(8) configuration format: an [Interface] section and any number of [Peer] sections.
import { KeyFormatError, parseKey } from '../crypto/index.ts'
import { type IpAddress, type Prefix, parseAddress, parsePrefix } from '../wire/address.ts'
import { WireError } from '../wire/errors.ts'

export class ConfigError extends Error {
  /** 1-based line of the offending text; 0 when the problem is the file as a whole. */
  readonly line: number
  constructor(line: number, problem: string) {
    super(line > 0 ? `line ${line}: ${problem}` : problem)
    this.name = 'ConfigError'
    this.line = line
  }
}

/** An interface address keeps its host bits: `10.0.0.2/24` is the address 10.0.0.2 on a /24. */
export interface InterfaceAddress {
  address: IpAddress
  bits: number
}

/** An endpoint as written; `host` may be a name, resolved later by whoever opens sockets. */
export interface ConfigEndpoint {
  host: string
  port: number
}

export interface InterfaceConfig {
  privateKey: Uint8Array
  addresses: InterfaceAddress[]
  listenPort?: number
  mtu?: number
}

export interface PeerConfig {
  publicKey: Uint8Array
  presharedKey?: Uint8Array
  allowedIps: Prefix[]
  endpoint?: ConfigEndpoint
  /** Seconds; undefined when off. */
  persistentKeepalive?: number
}

export interface WgQuickConfig {
  interface: InterfaceConfig
  peers: PeerConfig[]
}

/** wg-quick keys that configure the host (DNS, routing table, hooks) rather than the tunnel; accepted and ignored. */
const HOST_ONLY_INTERFACE_KEYS = new Set(['dns', 'table', 'preup', 'postup', 'predown', 'postdown', 'saveconfig', 'fwmark'])

type SectionKind = 'interface' | 'peer'

interface Section {
  kind: SectionKind
  line: number
  /** Lower-cased key → line it was first set on, for duplicate detection. */
  seen: Map<string, number>
}

interface InterfaceDraft extends Section {
  kind: 'interface'
  privateKey?: Uint8Array
  addresses: InterfaceAddress[]
  listenPort?: number
  mtu?: number
}

interface PeerDraft extends Section {
  kind: 'peer'
  publicKey?: Uint8Array
  presharedKey?: Uint8Array
  allowedIps: Prefix[]
  endpoint?: ConfigEndpoint
  persistentKeepalive?: number
}

/** Keys that may repeat, each occurrence adding to a list (as wg-quick allows). */
const LIST_KEYS = new Set(['address', 'allowedips', 'dns'])

export function parseWgQuick(text: string): WgQuickConfig {
  let iface: InterfaceDraft | undefined
  const peers: PeerDraft[] = []
  let current: InterfaceDraft | PeerDraft | undefined

  const lines = text.split(/\r?\n/)
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1
    const line = stripComment(lines[index]!).trim()
    if (line === '') continue

    const header = /^\[\s*([^\]]*?)\s*\]$/.exec(line)
    if (header) {
      const name = header[1]!.toLowerCase()
      if (name === 'interface') {
        if (iface) throw new ConfigError(lineNumber, `second [Interface] section (the first is on line ${iface.line})`)
        iface = { kind: 'interface', line: lineNumber, seen: new Map(), addresses: [] }
        current = iface
      } else if (name === 'peer') {
        current = { kind: 'peer', line: lineNumber, seen: new Map(), allowedIps: [] }
        peers.push(current)
      } else {
        throw new ConfigError(lineNumber, `unknown section [${header[1]}] (expected [Interface] or [Peer])`)
      }
      continue
    }

    const equals = line.indexOf('=')
    if (equals < 0) throw new ConfigError(lineNumber, `expected "Key = Value" or a [Section] header, got ${JSON.stringify(line)}`)
    const key = line.slice(0, equals).trim()
    const value = line.slice(equals + 1).trim()
    if (key === '') throw new ConfigError(lineNumber, 'missing key before "="')
    if (!current) throw new ConfigError(lineNumber, `${key} appears before any [Interface] or [Peer] section`)
    if (value === '') throw new ConfigError(lineNumber, `${key} has no value`)

    const lower = key.toLowerCase()
    const firstLine = current.seen.get(lower)
    if (firstLine !== undefined && !LIST_KEYS.has(lower)) {
      throw new ConfigError(lineNumber, `${key} is set twice in this section (first on line ${firstLine})`)
    }
    current.seen.set(lower, firstLine ?? lineNumber)

    if (current.kind === 'interface') applyInterfaceKey(current, key, lower, value, lineNumber)
    else applyPeerKey(current, key, lower, value, lineNumber)
  }

  if (!iface) throw new ConfigError(0, 'missing [Interface] section')
  if (!iface.privateKey) throw new ConfigError(iface.line, '[Interface] has no PrivateKey')

  const seenPublicKeys = new Map<string, number>()
  const result: WgQuickConfig = {
    interface: {
      privateKey: iface.privateKey,
      addresses: iface.addresses,
      ...(iface.listenPort !== undefined && { listenPort: iface.listenPort }),
      ...(iface.mtu !== undefined && { mtu: iface.mtu }),
    },
    peers: [],
  }
  for (const peer of peers) {
    if (!peer.publicKey) throw new ConfigError(peer.line, '[Peer] has no PublicKey')
    const keyText = peer.publicKey.join(',')
    const earlier = seenPublicKeys.get(keyText)
    if (earlier !== undefined) throw new ConfigError(peer.line, `this [Peer] has the same PublicKey as the [Peer] on line ${earlier}`)
    seenPublicKeys.set(keyText, peer.line)
    result.peers.push({
      publicKey: peer.publicKey,
      allowedIps: peer.allowedIps,
      ...(peer.presharedKey && { presharedKey: peer.presharedKey }),
      ...(peer.endpoint && { endpoint: peer.endpoint }),
      ...(peer.persistentKeepalive !== undefined && { persistentKeepalive: peer.persistentKeepalive }),
    })
  }
  return result
}

function applyInterfaceKey(section: InterfaceDraft, key: string, lower: string, value: string, line: number): void {
  switch (lower) {
    case 'privatekey':
      section.privateKey = parseConfigKey(key, value, line)
      return
    case 'address':
      for (const item of splitList(key, value, line)) section.addresses.push(parseInterfaceAddress(item, line))
      return
    case 'listenport':
      section.listenPort = parseInteger(key, value, 0, 65535, line)
      return
    case 'mtu':
      // 576 is the smallest datagram every IPv4 host must accept; larger than 65535 cannot be an IP packet.
      section.mtu = parseInteger(key, value, 576, 65535, line)
      return
    default:
      if (HOST_ONLY_INTERFACE_KEYS.has(lower)) return
      throw new ConfigError(line, `unknown key ${key} in [Interface]`)
  }
}

function applyPeerKey(section: PeerDraft, key: string, lower: string, value: string, line: number): void {
  switch (lower) {
    case 'publickey':
      section.publicKey = parseConfigKey(key, value, line)
      return
    case 'presharedkey':
      section.presharedKey = parseConfigKey(key, value, line)
      return
    case 'allowedips':
      for (const item of splitList(key, value, line)) section.allowedIps.push(parseAllowedIp(item, line))
      return
    case 'endpoint':
      section.endpoint = parseEndpoint(value, line)
      return
    case 'persistentkeepalive':
      if (value.toLowerCase() === 'off') return
      {
        const seconds = parseInteger(key, value, 0, 65535, line)
        if (seconds > 0) section.persistentKeepalive = seconds
      }
      return
    default:
      throw new ConfigError(line, `unknown key ${key} in [Peer]`)
  }
}

function stripComment(line: string): string {
  const hash = line.indexOf('#')
  return hash < 0 ? line : line.slice(0, hash)
}

function splitList(key: string, value: string, line: number): string[] {
  const items = value.split(',').map((item) => item.trim())
  if (items.some((item) => item === '')) throw new ConfigError(line, `${key} has an empty item in its comma-separated list`)
  return items
}

function parseConfigKey(key: string, value: string, line: number): Uint8Array {
  try {
    return parseKey(value)
  } catch (error) {
    if (error instanceof KeyFormatError) throw new ConfigError(line, `${key} is not a valid 32-byte key`)
    throw error
  }
}

function parseInteger(key: string, value: string, min: number, max: number, line: number): number {
  if (!/^\d+$/.test(value)) throw new ConfigError(line, `${key} must be a whole number, got ${JSON.stringify(value)}`)
  const n = Number(value)
  if (n < min || n > max) throw new ConfigError(line, `${key} must be between ${min} and ${max}, got ${value}`)
  return n
}

function parseIpAddress(text: string, what: string, line: number): IpAddress {
  try {
    return parseAddress(text)
  } catch (error) {
    if (error instanceof WireError) throw new ConfigError(line, `${what} ${JSON.stringify(text)} is not an IPv4 or IPv6 address`)
    throw error
  }
}

function parsePrefixLength(text: string, address: IpAddress, what: string, line: number): number {
  const maxBits = address.length * 8
  if (!/^\d{1,3}$/.test(text) || Number(text) > maxBits) {
    throw new ConfigError(line, `${what} has prefix length ${JSON.stringify(text)}; expected 0 to ${maxBits}`)
  }
  return Number(text)
}

function parseInterfaceAddress(item: string, line: number): InterfaceAddress {
  const slash = item.indexOf('/')
  const address = parseIpAddress(slash < 0 ? item : item.slice(0, slash), 'Address', line)
  const bits = slash < 0 ? address.length * 8 : parsePrefixLength(item.slice(slash + 1), address, `Address ${item}`, line)
  return { address, bits }
}

function parseAllowedIp(item: string, line: number): Prefix {
  const slash = item.indexOf('/')
  const address = parseIpAddress(slash < 0 ? item : item.slice(0, slash), 'AllowedIPs entry', line)
  if (slash >= 0) parsePrefixLength(item.slice(slash + 1), address, `AllowedIPs entry ${item}`, line)
  try {
    return parsePrefix(item)
  } catch (error) {
    if (error instanceof WireError) throw new ConfigError(line, `AllowedIPs entry ${JSON.stringify(item)} is not a valid prefix`)
    throw error
  }
}

function parseEndpoint(value: string, line: number): ConfigEndpoint {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(value)
  let host: string
  let portText: string
  if (bracketed) {
    host = bracketed[1]!
    portText = bracketed[2]!
    parseIpAddress(host, 'Endpoint', line)
  } else {
    const colon = value.lastIndexOf(':')
    if (colon <= 0) throw new ConfigError(line, `Endpoint ${JSON.stringify(value)} must be host:port or [IPv6]:port`)
    host = value.slice(0, colon)
    portText = value.slice(colon + 1)
    if (host.includes(':')) throw new ConfigError(line, `Endpoint ${JSON.stringify(value)}: write IPv6 addresses as [address]:port`)
    if (!/^[A-Za-z0-9.-]+$/.test(host)) throw new ConfigError(line, `Endpoint host ${JSON.stringify(host)} is not a hostname or IPv4 address`)
    if (/^[\d.]+$/.test(host)) parseIpAddress(host, 'Endpoint', line)
  }
  if (!/^\d+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new ConfigError(line, `Endpoint port ${JSON.stringify(portText)} must be between 1 and 65535`)
  }
  return { host, port: Number(portText) }
}
