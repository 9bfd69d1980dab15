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
