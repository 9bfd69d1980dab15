import { describe, expect, it } from 'vitest'
import type { WebRtcSignal } from '../disco/messages.ts'
import type { PageToWorkerMessage, WorkerToPageMessage } from './control-protocol.ts'
import { bridgeDataChannel } from './port-channel.ts'
import { MemoryChannel } from './testing/memory-channel.ts'
import { WebRtcUnderlay } from './webrtc-underlay.ts'

const settle = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}
const key = (first: number): Uint8Array => new Uint8Array(32).fill(first)
const hex = (k: Uint8Array): string => Buffer.from(k).toString('hex')

function underlay(ourKey: Uint8Array) {
  const { port1: page, port2 } = new MessageChannel()
  const toPage: WorkerToPageMessage[] = []
  page.onmessage = (event) => toPage.push(event.data as WorkerToPageMessage)
  const errors: string[] = []
  const transport = new WebRtcUnderlay(port2, { ourKey, firstSession: 100 }, (error) => errors.push(error.message))
  const signals: WebRtcSignal[] = []
  const events: string[] = []
  transport.on('signal', (_peer, signal) => signals.push(signal))
  transport.on('open', (_peer, how) => events.push(`open:${how}`))
  transport.on('close', (_peer, reason) => events.push(`close:${reason}`))
  const delivered: Uint8Array[] = []
  transport.start((_from, datagrams) => delivered.push(...datagrams))
  const post = (message: PageToWorkerMessage, transfer: Transferable[] = []): void => page.postMessage(message, transfer)
  return {
    transport,
    page,
    toPage,
    signals,
    events,
    errors,
    delivered,
    post,
    close: () => {
      transport.stop()
      page.close()
    },
  }
}

describe('WebRtcUnderlay signalling rules', () => {
  it('the lower node key offers: connect() starts a numbered session in the page', async () => {
    const u = underlay(key(1))
    u.transport.connect(key(2))
    u.transport.connect(key(2))
    await settle()
    expect(u.toPage).toEqual([{ type: 'connect', peer: hex(key(2)), session: 100 }])
    expect(u.signals).toEqual([])
    u.close()
  })

  it('the higher node key asks the peer to offer instead, and answers its offer', async () => {
    const u = underlay(key(9))
    u.transport.connect(key(2))
    expect(u.signals).toEqual([{ session: 0, kind: 'request' }])
    u.transport.handleSignal(key(2), { session: 55, kind: 'offer', sdp: 'v=0' })
    await settle()
    expect(u.toPage).toEqual([{ type: 'signal', peer: hex(key(2)), signal: { session: 55, kind: 'offer', sdp: 'v=0' } }])
    u.close()
  })

  it('the offering side starts a session when asked, once', async () => {
    const u = underlay(key(1))
    u.transport.handleSignal(key(2), { session: 0, kind: 'request' })
    u.transport.handleSignal(key(2), { session: 0, kind: 'request' })
    await settle()
    expect(u.toPage.filter((m) => m.type === 'connect')).toHaveLength(1)
    u.close()
  })

  it('ignores offers it should have made, and signals for other sessions', async () => {
    const u = underlay(key(1))
    u.transport.handleSignal(key(2), { session: 7, kind: 'offer', sdp: 'v=0' })
    u.transport.connect(key(2))
    u.transport.handleSignal(key(2), { session: 99, kind: 'answer', sdp: 'v=0' })
    u.transport.handleSignal(key(2), { session: 100, kind: 'candidate', candidate: 'c', sdpMid: '0', sdpMLineIndex: 0 })
    u.transport.handleSignal(key(2), { session: 99, kind: 'bye' })
    await settle()
    expect(u.toPage).toEqual([
      { type: 'connect', peer: hex(key(2)), session: 100 },
      { type: 'signal', peer: hex(key(2)), signal: { session: 100, kind: 'candidate', candidate: 'c', sdpMid: '0', sdpMLineIndex: 0 } },
    ])
    expect(u.events).toEqual([])
    u.close()
  })

  it('adopts the session channel, moves datagrams, and reports a close; a stale channel is closed at once', async () => {
    const u = underlay(key(1))
    u.transport.connect(key(2))
    const [mine, far] = MemoryChannel.pair()
    const { port1, port2 } = new MessageChannel()
    bridgeDataChannel(mine, port1)
    const [staleMine] = MemoryChannel.pair()
    const stale = new MessageChannel()
    bridgeDataChannel(staleMine, stale.port1)
    u.post({ type: 'bridged', peer: hex(key(2)), session: 42, port: stale.port2 }, [stale.port2])
    u.post({ type: 'bridged', peer: hex(key(2)), session: 100, port: port2 }, [port2])
    mine.open()
    await settle()
    expect(staleMine.readyState).toBe('closed')
    expect(u.events).toEqual(['open:bridged'])
    expect(u.transport.isOpen(key(2))).toBe(true)

    far.binaryType = 'arraybuffer'
    const farGot: ArrayBuffer[] = []
    far.addEventListener('message', (event) => farGot.push((event as MessageEvent).data))
    u.transport.send(key(2), [Uint8Array.of(4, 1, 2, 3)])
    u.transport.send(key(3), [Uint8Array.of(4)])
    far.send(Uint8Array.of(4, 9))
    await settle()
    expect(farGot.map((b) => [...new Uint8Array(b)])).toEqual([[4, 1, 2, 3]])
    expect(u.delivered.map((d) => [...d])).toEqual([[4, 9]])
    expect(u.transport.droppedNoChannel).toBe(1)

    far.close()
    await settle()
    expect(u.events).toEqual(['open:bridged', 'close:the datachannel closed'])
    expect(u.toPage.at(-1)).toEqual({ type: 'close', peer: hex(key(2)), session: 100 })
    u.close()
  })

  it('a bye for the session, or a failure report from the page, ends it', async () => {
    const u = underlay(key(1))
    u.transport.connect(key(2))
    u.transport.handleSignal(key(2), { session: 100, kind: 'bye' })
    u.transport.connect(key(3))
    u.post({ type: 'failed', peer: hex(key(3)), session: 101, reason: 'ICE failed' })
    await settle()
    expect(u.events).toEqual(['close:the peer closed the session', 'close:the WebRTC attempt failed: ICE failed'])
    u.close()
  })

  it('disconnect() tells the peer with a bye', () => {
    const u = underlay(key(1))
    u.transport.connect(key(2))
    u.transport.disconnect(key(2))
    expect(u.signals).toEqual([{ session: 100, kind: 'bye' }])
    expect(u.events).toEqual(['close:disconnected'])
    u.close()
  })

  it('reports malformed control messages and keeps working', async () => {
    const u = underlay(key(1))
    u.page.postMessage({ type: 'channel', peer: 'nope', session: 1 })
    u.page.postMessage(null)
    u.page.postMessage({ type: 'shout', peer: hex(key(2)) })
    await settle()
    expect(u.errors).toHaveLength(3)
    u.transport.connect(key(2))
    await settle()
    expect(u.toPage).toHaveLength(1)
    u.close()
  })

  it('needs a 32-byte node key', () => {
    const { port1, port2 } = new MessageChannel()
    expect(() => new WebRtcUnderlay(port2, { ourKey: new Uint8Array(31) })).toThrow(/32-byte/)
    port1.close()
    port2.close()
  })
})
