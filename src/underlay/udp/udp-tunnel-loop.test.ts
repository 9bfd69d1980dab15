import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair, type KeyPair } from '../../crypto/index.ts'
import { type IpAddress, parseAddress, parsePrefix } from '../../wire/address.ts'
import { buildEcho, parseEcho } from '../../wire/icmp.ts'
import { buildIp, parseIp, PROTO_ICMP, PROTO_UDP } from '../../wire/ip.ts'
import { MAX_IDLE_SLEEP_MS, nextWakeupDelay, UdpTunnelLoop } from './udp-tunnel-loop.ts'
import { UdpUnderlay } from './udp-underlay.ts'

describe('nextWakeupDelay', () => {
  it('sleeps exactly until the deadline, never shorter', () => {
    expect(nextWakeupDelay(1_025_000, 1_000_000)).toBe(25_000)
    expect(nextWakeupDelay(1_000_001, 1_000_000)).toBe(1)
  })
  it('wakes at once for a passed deadline', () => {
    expect(nextWakeupDelay(999, 1000)).toBe(0)
  })
  it('sleeps the idle cap when nothing is scheduled', () => {
    expect(nextWakeupDelay(undefined, 1000)).toBe(MAX_IDLE_SLEEP_MS)
    expect(MAX_IDLE_SLEEP_MS).toBe(5000)
  })
  it('stays within what setTimeout can wait', () => {
    expect(nextWakeupDelay(1e15, 0)).toBe(2 ** 31 - 1)
  })
})

interface Node {
  keys: KeyPair
  underlay: UdpUnderlay
  loop: UdpTunnelLoop
  packets: Uint8Array[]
  arrived: () => Promise<Uint8Array>
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

const A = parseAddress('10.0.0.1')
const B = parseAddress('10.0.0.2')

async function node(keys: KeyPair, local: IpAddress, peer: { publicKey: Uint8Array; allowed: string; port?: number }): Promise<Node> {
  const underlay = await UdpUnderlay.open({ ipv6: false })
  const packets: Uint8Array[] = []
  let wake: (() => void) | undefined
  const loop = new UdpTunnelLoop({
    privateKey: keys.privateKey,
    underlay,
    localAddresses: [local],
    peers: [
      {
        publicKey: peer.publicKey,
        allowedIps: [parsePrefix(peer.allowed)],
        ...(peer.port !== undefined && { endpoint: { address: '127.0.0.1', port: peer.port } }),
      },
    ],
    onPacket: (packet) => {
      packets.push(packet)
      wake?.()
    },
  })
  cleanups.push(async () => {
    await loop.close()
    await underlay.close()
  })
  const arrived = async (): Promise<Uint8Array> => {
    while (packets.length === 0) await new Promise<void>((resolve) => (wake = resolve))
    return packets.shift()!
  }
  return { keys, underlay, loop, packets, arrived }
}

/** Two nodes on loopback: `a` knows where `b` listens, `b` must learn `a`'s endpoint. */
async function pair(): Promise<{ a: Node; b: Node }> {
  const aKeys = generateKeyPair()
  const bKeys = generateKeyPair()
  const b = await node(bKeys, B, { publicKey: aKeys.publicKey, allowed: '10.0.0.1/32' })
  const a = await node(aKeys, A, { publicKey: bKeys.publicKey, allowed: '10.0.0.0/24', port: b.underlay.port })
  return { a, b }
}

const udpPacket = (src: IpAddress, dst: IpAddress, byte: number) => buildIp({ src, dst, protocol: PROTO_UDP, payload: new Uint8Array([0, 1, 0, 2, 0, 9, 0, 0, byte]) })

describe('UdpTunnelLoop', () => {
  it('carries the first packet through the handshake it triggers, and lets the responder answer the learned endpoint', async () => {
    const { a, b } = await pair()
    expect(b.loop.send(udpPacket(B, A, 1))).toBe('no-endpoint')
    expect(a.loop.send(udpPacket(A, B, 7))).toBe('sent')
    expect((await b.arrived()).at(-1)).toBe(7)
    expect(b.loop.endpointOf(b.loop.peers[0]!)).toEqual({ address: '127.0.0.1', port: a.underlay.port })
    expect(b.loop.send(udpPacket(B, A, 8))).toBe('sent')
    expect((await a.arrived()).at(-1)).toBe(8)
  })

  it('answers echo requests to its own address through the tunnel', async () => {
    const { a } = await pair()
    const data = new Uint8Array([9, 8, 7])
    const request = buildIp({ src: A, dst: B, protocol: PROTO_ICMP, payload: buildEcho({ kind: 'request', id: 5, seq: 1, data }, 4, A, B) })
    a.loop.send(request)
    const reply = parseIp(await a.arrived())
    expect(parseEcho(reply.payload, 4, reply.src, reply.dst)).toMatchObject({ kind: 'reply', id: 5, seq: 1 })
  })

  it('drops inbound packets whose inner source is outside the peer’s AllowedIPs', async () => {
    const { a, b } = await pair()
    a.loop.send(udpPacket(parseAddress('10.0.0.99'), B, 1))
    a.loop.send(udpPacket(A, B, 2))
    expect((await b.arrived()).at(-1)).toBe(2)
    expect(b.packets).toHaveLength(0)
    expect(b.loop.counters.sourceNotAllowed).toBe(1)
  })

  it('reports packets with no matching AllowedIPs and non-IP input', async () => {
    const { a } = await pair()
    expect(a.loop.send(udpPacket(A, parseAddress('192.168.1.1'), 1))).toBe('no-route')
    expect(a.loop.send(new Uint8Array([0x00, 1, 2]))).toBe('not-ip')
    expect(a.loop.counters.noRoute).toBe(1)
    await a.loop.close()
    expect(a.loop.send(udpPacket(A, B, 1))).toBe('closed')
  })

  it('roams to the new endpoint of a peer that comes back from another port', async () => {
    const { a, b } = await pair()
    a.loop.send(udpPacket(A, B, 1))
    await b.arrived()
    const moved = await node(a.keys, A, { publicKey: b.keys.publicKey, allowed: '10.0.0.0/24', port: b.underlay.port })
    moved.loop.send(udpPacket(A, B, 2))
    expect((await b.arrived()).at(-1)).toBe(2)
    expect(b.loop.endpointOf(b.loop.peers[0]!)).toEqual({ address: '127.0.0.1', port: moved.underlay.port })
    expect(b.loop.counters.roamed).toBe(1)
    b.loop.send(udpPacket(B, A, 3))
    expect((await moved.arrived()).at(-1)).toBe(3)
  })
})
