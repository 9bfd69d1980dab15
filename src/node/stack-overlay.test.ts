import { describe, expect, it } from 'vitest'
import { formatPrefix, parseAddress } from '../wire/address.ts'
import { buildEcho, parseEcho } from '../wire/icmp.ts'
import { buildIp, parseIp, PROTO_ICMPV6 } from '../wire/ip.ts'
import { StackOverlay } from './stack-overlay.ts'

const settle = () => new Promise<void>((resolve) => setImmediate(resolve))
const LOCAL6 = parseAddress('fd00::2')
const REMOTE6 = parseAddress('fd00::1')

function echoRequest(): Uint8Array {
  const payload = buildEcho({ kind: 'request', id: 7, seq: 3, data: new Uint8Array([1, 2]) }, 6, REMOTE6, LOCAL6)
  return buildIp({ src: REMOTE6, dst: LOCAL6, protocol: PROTO_ICMPV6, payload })
}

describe('StackOverlay', () => {
  it('claims its addresses as host routes', () => {
    const overlay = new StackOverlay({ addresses: ['10.0.0.2', 'fd00::2'] })
    expect(overlay.prefixes.map(formatPrefix)).toEqual(['10.0.0.2/32', 'fd00::2/128'])
  })

  it('hands packets to the stack and its answers to the dataplane, showing both to the capture', async () => {
    const captured: Array<[string, Uint8Array]> = []
    const overlay = new StackOverlay({ addresses: ['fd00::2'], capture: (packet, direction) => captured.push([direction, packet]) })
    const delivered: Uint8Array[] = []
    overlay.start((packets) => delivered.push(...packets))
    const request = echoRequest()
    overlay.send([request])
    await settle()
    expect(delivered).toHaveLength(1)
    const reply = parseIp(delivered[0]!)
    expect(parseEcho(reply.payload, 6, reply.src, reply.dst)).toMatchObject({ kind: 'reply', id: 7, seq: 3 })
    expect(captured).toEqual([
      ['in', request],
      ['out', delivered[0]],
    ])
  })

  it('injects raw packets, and counts what it produces while no dataplane listens', async () => {
    const overlay = new StackOverlay({ addresses: ['fd00::2'] })
    overlay.inject([echoRequest()])
    expect(overlay.dropped).toBe(1)
    const delivered: Uint8Array[] = []
    overlay.start((packets) => delivered.push(...packets))
    const probe = echoRequest()
    overlay.inject([probe])
    expect(delivered).toEqual([probe])
    overlay.stop()
    overlay.send([echoRequest()])
    await settle()
    expect(delivered).toHaveLength(1)
    expect(overlay.dropped).toBe(2)
  })
})
