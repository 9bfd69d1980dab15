import { PROTO_TCP, buildIp, buildTcp, formatAddress, parseAddress, parseIp, parseTcp, type TcpSegment } from '../../wire/index.ts'
import { Stack, type StackOptions } from '../stack.ts'
import type { TcpConnection } from '../tcp/connection.ts'
import type { SimLinkOptions } from './sim-link.ts'
import { SimNetwork } from './sim-network.ts'

export const ADDRESS_A = '100.64.0.1'
export const ADDRESS_B = '100.64.0.2'
export const ADDRESS_A6 = 'fd7a:115c:a1e0::1'
export const ADDRESS_B6 = 'fd7a:115c:a1e0::2'

/** Two stacks with fixed secrets (reproducible ISNs and ports) on a simulated link. */
export function makePair(link: SimLinkOptions = {}, a: Partial<StackOptions> = {}, b: Partial<StackOptions> = {}): SimNetwork {
  const stackA = new Stack({ addresses: [ADDRESS_A, ADDRESS_A6], secret: new Uint8Array(32).fill(1), ...a })
  const stackB = new Stack({ addresses: [ADDRESS_B, ADDRESS_B6], secret: new Uint8Array(32).fill(2), ...b })
  return new SimNetwork(stackA, stackB, link)
}

/** Reads everything currently readable into `sink`. */
export function drain(connection: TcpConnection, sink: (chunk: Uint8Array) => void): void {
  for (let chunk = connection.read(); chunk; chunk = connection.read()) sink(chunk)
}

/** Deterministic pseudo-random bytes for payloads. */
export function patternBytes(length: number, seed = 7): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x
    out[i + 1] = x >>> 8
    out[i + 2] = x >>> 16
    out[i + 3] = x >>> 24
  }
  return out
}

export interface WireSegment extends TcpSegment {
  src: string
  dst: string
}

/** Decodes a TCP/IP packet from the wire (tests watch what stacks send). */
export function decodeTcp(packet: Uint8Array): WireSegment | undefined {
  const ip = parseIp(packet)
  if (ip.protocol !== PROTO_TCP) return undefined
  return { ...parseTcp(ip.payload, ip.src, ip.dst), src: formatAddress(ip.src), dst: formatAddress(ip.dst) }
}

/** Encodes a crafted TCP segment as an IP packet. */
export function encodeTcp(src: string, dst: string, seg: Partial<TcpSegment> & Pick<TcpSegment, 'srcPort' | 'dstPort'>): Uint8Array {
  const s = parseAddress(src)
  const d = parseAddress(dst)
  const full: TcpSegment = { seq: 0, ack: 0, flags: 0, window: 65535, urgent: 0, options: {}, payload: new Uint8Array(0), ...seg }
  return buildIp({ src: s, dst: d, protocol: PROTO_TCP, payload: buildTcp(full, s, d) })
}
