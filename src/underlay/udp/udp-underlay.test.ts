import { afterEach, describe, expect, it } from 'vitest'
import { endpointBytes, formatEndpoint, type UdpEndpoint, UdpUnderlay } from './udp-underlay.ts'

const opened: UdpUnderlay[] = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((u) => u.close()))
})

async function open(ipv6 = true): Promise<UdpUnderlay> {
  const underlay = await UdpUnderlay.open({ ipv6 })
  opened.push(underlay)
  return underlay
}

function nextDatagram(underlay: UdpUnderlay): Promise<{ datagram: Uint8Array; from: UdpEndpoint }> {
  return new Promise((resolve) => underlay.onDatagram((datagram, from) => resolve({ datagram, from })))
}

describe('UdpUnderlay', () => {
  it('carries datagrams over IPv4 with the sender as endpoint', async () => {
    const a = await open()
    const b = await open()
    expect(a.port).toBeGreaterThan(0)
    const received = nextDatagram(b)
    a.send(new Uint8Array([1, 2, 3]), { address: '127.0.0.1', port: b.port })
    const { datagram, from } = await received
    expect([...datagram]).toEqual([1, 2, 3])
    expect(from).toEqual({ address: '127.0.0.1', port: a.port })
  })

  it('carries datagrams over IPv6 on the same port', async () => {
    const a = await open()
    const b = await open()
    if (!a.hasIpv6) return expect.fail('this host has no IPv6 loopback')
    const received = nextDatagram(b)
    a.send(new Uint8Array([4, 5]), { address: '::1', port: b.port })
    const { datagram, from } = await received
    expect([...datagram]).toEqual([4, 5])
    expect(from).toEqual({ address: '::1', port: a.port })
  })

  it('counts an IPv6 send on an IPv4-only underlay instead of throwing', async () => {
    const a = await open(false)
    expect(a.hasIpv6).toBe(false)
    a.send(new Uint8Array([1]), { address: '::1', port: 9 })
    expect(a.counters.wrongFamily).toBe(1)
  })

  it('asks for large socket buffers so bursts are not dropped', async () => {
    const a = await UdpUnderlay.open({ ipv6: false, socketBufferBytes: 1 << 20 })
    opened.push(a)
    const b = await open(false)
    const received: number[] = []
    const all = new Promise<void>((resolve) =>
      b.onDatagram((datagram) => {
        received.push(datagram[0]!)
        if (received.length === 200) resolve()
      }),
    )
    // 200 × 1400 bytes at once is more than the kernel's default receive buffer holds.
    for (let i = 0; i < 200; i++) a.send(new Uint8Array(1400).fill(i), { address: '127.0.0.1', port: b.port })
    await all
    expect(received).toHaveLength(200)
  })

  it('refuses a port that is already taken', async () => {
    const a = await open()
    await expect(UdpUnderlay.open({ port: a.port })).rejects.toMatchObject({ code: 'EADDRINUSE' })
  })
})

describe('endpoint helpers', () => {
  it('formats IPv6 endpoints with brackets', () => {
    expect(formatEndpoint({ address: '10.0.0.1', port: 51820 })).toBe('10.0.0.1:51820')
    expect(formatEndpoint({ address: 'fd00::1', port: 51820 })).toBe('[fd00::1]:51820')
  })

  it('encodes address bytes then the big-endian port', () => {
    expect([...endpointBytes({ address: '10.1.2.3', port: 0x1234 })]).toEqual([10, 1, 2, 3, 0x12, 0x34])
    const v6 = endpointBytes({ address: 'fd00::1', port: 51820 })
    expect(v6).toHaveLength(18)
    expect([v6[0], v6[15], v6[16], v6[17]]).toEqual([0xfd, 1, 51820 >> 8, 51820 & 0xff])
  })
})
