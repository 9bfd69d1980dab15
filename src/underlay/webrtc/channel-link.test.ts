import { describe, expect, it, vi } from 'vitest'
import { BUFFERED_AMOUNT_POLL_MS, ChannelLink } from './channel-link.ts'
import { bridgeDataChannel, PortDatagramChannel } from './port-channel.ts'
import { MemoryChannel } from './testing/memory-channel.ts'

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const datagram = (n: number, size = 100): Uint8Array => {
  const d = new Uint8Array(size)
  new DataView(d.buffer).setUint32(0, n)
  return d
}
const numbers = (datagrams: Uint8Array[]): number[] => datagrams.map((d) => new DataView(d.buffer, d.byteOffset).getUint32(0))

function linkPair(options = {}, autoDeliver = true) {
  const [a, b] = MemoryChannel.pair(autoDeliver)
  const got = { a: [] as Uint8Array[], b: [] as Uint8Array[], closedA: [] as string[], closedB: [] as string[], batchesB: 0 }
  const linkA = new ChannelLink(a, { onDatagrams: (d) => got.a.push(...d), onClose: (r) => got.closedA.push(r) }, options)
  const linkB = new ChannelLink(
    b,
    {
      onDatagrams: (d) => {
        got.b.push(...d)
        got.batchesB++
      },
      onClose: (r) => got.closedB.push(r),
    },
    options,
  )
  return { a, b, linkA, linkB, got }
}

describe('ChannelLink', () => {
  it('queues while connecting, sends once open, one message per datagram, delivered in batches', async () => {
    const { a, linkA, got } = linkPair()
    linkA.send([datagram(1), datagram(2)])
    expect(a.sends).toBe(0)
    a.open()
    linkA.send([datagram(3)])
    await settle()
    expect(a.sends).toBe(3)
    expect(numbers(got.b)).toEqual([1, 2, 3])
    expect(got.batchesB).toBeLessThan(3)
    expect(linkA.stats).toMatchObject({ sent: 3, dropped: 0, queued: 0 })
  })

  it('stops at the high-water mark, drains on bufferedamountlow, and drops beyond the bounded queue', async () => {
    const { a, linkA, got } = linkPair({ highWaterMark: 1000, lowWaterMark: 200, maxQueuedPackets: 5, maxQueuedBytes: 1e6 }, false)
    a.open()
    linkA.send(Array.from({ length: 20 }, (_, i) => datagram(i, 100)))
    // 10 fit under the mark (the 10th reaches it), 5 wait, 5 are dropped.
    expect(a.sends).toBe(10)
    expect(linkA.stats).toMatchObject({ sent: 10, queued: 5, dropped: 5 })
    a.deliver(8) // buffered 200: crosses the low-water mark
    expect(a.sends).toBe(15)
    a.deliver()
    await settle()
    expect(numbers(got.b)).toEqual(Array.from({ length: 15 }, (_, i) => i))
    expect(linkA.stats.queued).toBe(0)
  })

  it('counts a send the channel refuses as a drop and never throws', () => {
    const { a, linkA } = linkPair()
    a.open()
    a.refuseSends = true
    expect(() => linkA.send([datagram(1)])).not.toThrow()
    expect(linkA.stats.dropped).toBe(1)
  })

  it('reports a close from the far end once, drops what was queued, and refuses later sends', async () => {
    const { a, b, linkA, got } = linkPair({ highWaterMark: 100, lowWaterMark: 10 }, false)
    a.open()
    linkA.send([datagram(1), datagram(2), datagram(3)])
    b.close()
    expect(got.closedA).toEqual(['the datachannel closed'])
    expect(linkA.isOpen).toBe(false)
    linkA.send([datagram(4)])
    expect(linkA.stats.dropped).toBe(3)
    linkA.close()
    expect(got.closedA).toHaveLength(1)
    expect(got.closedB).toHaveLength(1)
  })

  it('ignores text messages', async () => {
    const { a, b, got } = linkPair()
    a.open()
    b.dispatchEvent(new MessageEvent('message', { data: 'hello' }))
    await settle()
    expect(got.b).toEqual([])
  })
})

describe('bridged channel (page keeps the channel, worker gets a port)', () => {
  it('carries datagrams both ways, reports buffered bytes as credit, and closes both ends', async () => {
    const [pageEnd, far] = MemoryChannel.pair(false)
    const { port1, port2 } = new MessageChannel()
    const farGot: Uint8Array[] = []
    const farLink = new ChannelLink(far, { onDatagrams: (d) => farGot.push(...d) })
    bridgeDataChannel(pageEnd, port1, { highWaterMark: 300, lowWaterMark: 100, maxQueuedPackets: 100 })
    const workerEnd = new PortDatagramChannel(port2)
    const workerGot: Uint8Array[] = []
    const closes: string[] = []
    const workerLink = new ChannelLink(workerEnd, { onDatagrams: (d) => workerGot.push(...d), onClose: (r) => closes.push(r) })
    pageEnd.open()
    await settle()
    expect(workerEnd.readyState).toBe('open')

    workerLink.send(Array.from({ length: 6 }, (_, i) => datagram(i, 100)))
    expect(workerEnd.bufferedAmount).toBe(600)
    await settle()
    await settle()
    // The page sent 3 (high-water 300) and queues 3: that is what the worker now sees as buffered.
    expect(pageEnd.sends).toBe(3)
    expect(workerEnd.bufferedAmount).toBe(300)
    pageEnd.deliver()
    await settle()
    await settle()
    pageEnd.deliver()
    await settle()
    await settle()
    expect(numbers(farGot)).toEqual([0, 1, 2, 3, 4, 5])
    expect(workerEnd.bufferedAmount).toBe(0)

    farLink.send([datagram(42)])
    far.deliver()
    await settle()
    await settle()
    expect(numbers(workerGot)).toEqual([42])

    far.close()
    await settle()
    await settle()
    expect(closes).toEqual(['the datachannel closed'])
    port1.close()
    port2.close()
  })
})

describe('ChannelLink with a channel that never fires bufferedamountlow (node-webrtc)', () => {
  it('looks at bufferedAmount again on its own and drains the queue', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const [a, b] = MemoryChannel.pair(false)
      // @roamhq/wrtc's channels keep bufferedAmount current but never dispatch this event.
      const dispatch = a.dispatchEvent.bind(a)
      a.dispatchEvent = (event: Event) => (event.type === 'bufferedamountlow' ? true : dispatch(event))
      const got: Uint8Array[] = []
      const link = new ChannelLink(a, { onDatagrams: () => {} }, { highWaterMark: 1000, lowWaterMark: 200, maxQueuedPackets: 100, maxQueuedBytes: 1e6 })
      new ChannelLink(b, { onDatagrams: (d) => got.push(...d) })
      a.open()
      link.send(Array.from({ length: 30 }, (_, i) => datagram(i, 100)))
      expect(link.stats).toMatchObject({ sent: 10, queued: 20 })
      a.deliver()
      // No event: nothing moves until the poll.
      expect(link.stats.sent).toBe(10)
      vi.advanceTimersByTime(BUFFERED_AMOUNT_POLL_MS)
      expect(link.stats.sent).toBe(20)
      a.deliver()
      vi.advanceTimersByTime(BUFFERED_AMOUNT_POLL_MS)
      a.deliver()
      await settle()
      expect(link.stats).toMatchObject({ sent: 30, queued: 0, dropped: 0 })
      expect(numbers(got)).toEqual(Array.from({ length: 30 }, (_, i) => i))
    } finally {
      vi.useRealTimers()
    }
  })
})
