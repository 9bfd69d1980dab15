import { afterEach, describe, expect, it } from 'vitest'
import { endpointBytes, formatEndpoint, type UdpEndpoint, UdpUnderlay, UdpUnderlayClosedError } from './udp-underlay.ts'

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
  return new Promise((resolve) => underlay.start((from, [datagram]) => resolve({ datagram: datagram!, from })))
}

describe('UdpUnderlay', () => {
  it('carries datagrams over IPv4 with the sender as endpoint', async () => {
    const a = await open()
    const b = await open()
    expect(a.port).toBeGreaterThan(0)
    const received = nextDatagram(b)
    a.send({ address: '127.0.0.1', port: b.port }, [new Uint8Array([1, 2, 3])])
    const { datagram, from } = await received
    expect([...datagram]).toEqual([1, 2, 3])
    expect(from).toEqual({ address: '127.0.0.1', port: a.port })
  })

  it('carries datagrams over IPv6 on the same port', async () => {
    const a = await open()
    const b = await open()
    if (!a.hasIpv6) return expect.fail('this host has no IPv6 loopback')
    const received = nextDatagram(b)
    a.send({ address: '::1', port: b.port }, [new Uint8Array([4, 5])])
    const { datagram, from } = await received
    expect([...datagram]).toEqual([4, 5])
    expect(from).toEqual({ address: '::1', port: a.port })
  })

  it('counts an IPv6 send on an IPv4-only underlay instead of throwing', async () => {
    const a = await open(false)
    expect(a.hasIpv6).toBe(false)
    a.send({ address: '::1', port: 9 }, [new Uint8Array([1])])
    expect(a.counters.wrongFamily).toBe(1)
  })

  it('asks for large socket buffers so bursts are not dropped', async () => {
    const a = await UdpUnderlay.open({ ipv6: false, socketBufferBytes: 1 << 20 })
    opened.push(a)
    const b = await open(false)
    const received: number[] = []
    const all = new Promise<void>((resolve) =>
      b.start((_from, datagrams) => {
        for (const datagram of datagrams) received.push(datagram[0]!)
        if (received.length === 200) resolve()
      }),
    )
    // 200 × 1400 bytes at once is more than the kernel's default receive buffer holds.
    a.send(
      { address: '127.0.0.1', port: b.port },
      Array.from({ length: 200 }, (_, i) => new Uint8Array(1400).fill(i)),
    )
    await all
    expect(received).toHaveLength(200)
  })

  it('delivers a burst from one sender as one batch', async () => {
    const a = await open(false)
    const b = await open(false)
    const batches: number[][] = []
    const all = new Promise<void>((resolve) =>
      b.start((_from, datagrams) => {
        batches.push(datagrams.map((d) => d[0]!))
        if (batches.flat().length === 20) resolve()
      }),
    )
    a.send(
      { address: '127.0.0.1', port: b.port },
      Array.from({ length: 20 }, (_, i) => new Uint8Array([i])),
    )
    await all
    expect(batches.flat()).toEqual(Array.from({ length: 20 }, (_, i) => i))
    expect(batches.length).toBeLessThan(20)
  })

  it('gives later datagrams from the same sender the same endpoint object, and caches its MAC2 bytes', async () => {
    const a = await open(false)
    const b = await open(false)
    const to = { address: '127.0.0.1', port: b.port }
    const first = nextDatagram(b)
    a.send(to, [new Uint8Array([1])])
    const { from } = await first
    const second = nextDatagram(b)
    a.send(to, [new Uint8Array([2])])
    expect((await second).from).toBe(from)
    expect(b.endpointBytes(from)).toBe(b.endpointBytes(from))
    expect([...b.endpointBytes(from)]).toEqual([127, 0, 0, 1, a.port >> 8, a.port & 0xff])
  })

  it('counts a send Node rejects (bad port) instead of throwing, and ignores sends after close', async () => {
    const a = await open(false)
    a.send({ address: '127.0.0.1', port: 70000 }, [new Uint8Array([1])])
    expect(a.counters.sendErrors).toBe(1)
    await a.close()
    a.send({ address: '127.0.0.1', port: 9 }, [new Uint8Array([1])])
    expect(a.counters).toMatchObject({ sent: 0, sendErrors: 1 })
  })

  it('stops delivering once stopped and cannot be started again', async () => {
    const a = await open(false)
    const b = await open(false)
    let received = 0
    b.start(() => received++)
    b.stop()
    a.send({ address: '127.0.0.1', port: b.port }, [new Uint8Array([1])])
    await new Promise((resolve) => setImmediate(resolve))
    expect(received).toBe(0)
    expect(() => b.start(() => {})).toThrow(UdpUnderlayClosedError)
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
