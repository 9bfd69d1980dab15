// The page⇄worker protocol end to end in Node: BurrowWorker (page side) talking to WorkerHost over
// real MessageChannels with transferred buffers — the same classes the browser runs.
import { afterEach, describe, expect, it } from 'vitest'
import { formatKey, generateKeyPair } from '../crypto/index.ts'
import { PROTO_UDP, buildIp, parseAddress } from '../wire/index.ts'
import { BurrowWorker, type WorkerErrorEvent, type WorkerLike } from './client.ts'
import { WorkerHost } from './host.ts'
import { sharedNow, transferable, WorkerOperationError } from './protocol.ts'

const open: MessagePort[] = []
afterEach(() => {
  for (const port of open.splice(0)) port.close()
})

/** A worker stand-in: the host on one end of a MessageChannel, exactly as worker.ts binds it. */
function hostedWorker(): BurrowWorker {
  const channel = new MessageChannel()
  open.push(channel.port1, channel.port2)
  const host = new WorkerHost((message) => channel.port2.postMessage(message))
  channel.port2.onmessage = (event) => host.handle(event.data)
  const worker = channel.port1 as unknown as WorkerLike & { start(): void }
  const client = new BurrowWorker(worker)
  worker.start()
  return client
}

function packet(seq: number, src: string, dst: string): Uint8Array {
  const payload = new Uint8Array(100 + (seq % 900)).fill(seq & 0xff)
  new DataView(payload.buffer).setUint32(0, seq)
  return buildIp({ src: parseAddress(src), dst: parseAddress(dst), protocol: PROTO_UDP, payload })
}

async function pair() {
  const keysA = generateKeyPair()
  const keysB = generateKeyPair()
  const a = hostedWorker()
  const b = hostedWorker()
  await a.start({ privateKey: keysA.privateKey, peers: [{ publicKey: formatKey(keysB.publicKey), allowedIps: ['10.0.0.2/32'] }] })
  await b.start({ privateKey: formatKey(keysB.privateKey), peers: [{ publicKey: keysA.publicKey, allowedIps: ['10.0.0.1'] }] })
  const link = new MessageChannel()
  open.push(link.port1, link.port2)
  const underlayA = await a.addPortUnderlay(link.port1)
  const underlayB = await b.addPortUnderlay(link.port2)
  await a.setPeerRoute(keysB.publicKey, underlayA)
  await b.setPeerRoute(formatKey(keysA.publicKey), underlayB)
  const overlayA = await a.attachOverlay(['10.0.0.1/32'])
  const overlayB = await b.attachOverlay(['10.0.0.2/32'])
  return { a, b, overlayA, overlayB, keysA, keysB, underlayA }
}

describe('worker protocol', () => {
  it('carries packets page → worker → worker → page byte-exact, transferring the page buffers', async () => {
    const { a, b, overlayA, overlayB } = await pair()
    const received: Uint8Array[] = []
    let arrived!: () => void
    const all = new Promise<void>((resolve) => (arrived = resolve))
    const count = 500
    overlayB.onpackets = (packets) => {
      received.push(...packets)
      if (received.length === count) arrived()
    }
    const sent: Uint8Array[] = []
    const first = packet(0, '10.0.0.1', '10.0.0.2')
    const firstCopy = first.slice()
    overlayA.send([first])
    expect(first.byteLength).toBe(0)
    await new Promise<void>((resolve) => {
      overlayB.onpackets = (packets) => {
        received.push(...packets)
        resolve()
      }
    })
    expect(received).toEqual([firstCopy])
    received.length = 0
    overlayB.onpackets = (packets) => {
      received.push(...packets)
      if (received.length === count) arrived()
    }
    for (let start = 1; start <= count; start += 64) {
      const batch: Uint8Array[] = []
      for (let seq = start; seq < Math.min(count + 1, start + 64); seq++) batch.push(packet(seq, '10.0.0.1', '10.0.0.2'))
      sent.push(...batch.map((x) => x.slice()))
      overlayA.send(batch)
      for (const x of batch) expect(x.buffer.byteLength).toBe(0)
    }
    await all
    expect(received).toEqual(sent)
    const status = await a.status()
    expect(status.started).toBe(true)
    expect(status.peers[0]).toMatchObject({ allowedIps: ['10.0.0.2/32'], txPackets: count + 1, route: { underlay: 1 } })
    expect(status.driver?.errors).toBe(0)
    expect(Math.abs(status.peers[0]!.lastHandshake! - Date.now())).toBeLessThan(60_000)
    expect((await b.status()).peers[0]!.rxPackets).toBe(count + 1)
    await a.stop()
    await b.stop()
  })

  it('rejects bad operations with a typed, named reason and changes nothing', async () => {
    const { a, keysB, underlayA } = await pair()
    await expect(a.setPeerRoute(generateKeyPair().publicKey, underlayA)).rejects.toMatchObject({ name: 'DataplaneError', code: 'unknown-peer' })
    await expect(a.attachOverlay(['10.0.0.300/32'])).rejects.toMatchObject({ name: 'WireError', code: 'bad-address' })
    await expect(a.setPeerRoute(keysB.publicKey, 42)).rejects.toThrow(/set-peer-route: no underlay 42/)
    await expect(a.addPeer({ publicKey: 'not a key', allowedIps: [] })).rejects.toMatchObject({ name: 'KeyFormatError' })
    await expect(a.addPeer({ publicKey: generateKeyPair().publicKey, allowedIps: ['10.0.0.9/32'], persistentKeepalive: -1 })).rejects.toThrow(/persistentKeepalive/)
    await expect(a.start({ privateKey: generateKeyPair().privateKey })).rejects.toThrow(/already started/)
    await expect(a.addUnderlay({ kind: 'carrier-pigeon' })).rejects.toThrow(/unknown underlay kind "carrier-pigeon"/)
    await expect(a.removeUnderlay(99)).rejects.toBeInstanceOf(WorkerOperationError)
    const status = await a.status()
    expect(status.peers).toHaveLength(1)
    expect(status.underlays).toEqual([underlayA])
  })

  it('rejects everything before start, and a bad start leaves the worker unstarted', async () => {
    const worker = hostedWorker()
    await expect(worker.attachOverlay(['10.0.0.1/32'])).rejects.toMatchObject({ code: 'stopped' })
    await expect(worker.start({ privateKey: generateKeyPair().privateKey, peers: [{ publicKey: generateKeyPair().publicKey, allowedIps: ['nope'] }] })).rejects.toMatchObject({
      name: 'WireError',
    })
    expect((await worker.status()).started).toBe(false)
    await expect(worker.start({ privateKey: new Uint8Array(31) })).rejects.toThrow(/privateKey must be 32 bytes/)
  })

  it('reports a malformed message from the page as an error event, and keeps serving', async () => {
    const { a, overlayA } = await pair()
    const event = new Promise<WorkerErrorEvent>((resolve) => a.addEventListener('error', (e) => resolve(e as WorkerErrorEvent), { once: true }))
    ;(overlayA as unknown as { port: MessagePort }).port.postMessage({ type: 'packets', buffers: [1, 2] })
    expect((await event).message).toMatch(/"packets" message without an array of ArrayBuffers/)
    expect((await a.status()).started).toBe(true)
  })

  it('wakes the page at the deadline it asks for, and a new request replaces the old one', async () => {
    const { overlayA } = await pair()
    const wakes: number[] = []
    const woke = new Promise<void>((resolve) => {
      overlayA.onwake = (now) => {
        wakes.push(now)
        resolve()
      }
    })
    overlayA.wakeAt(sharedNow() + 10_000)
    const at = sharedNow() + 30
    overlayA.wakeAt(at)
    await woke
    expect(wakes).toHaveLength(1)
    expect(wakes[0]!).toBeGreaterThanOrEqual(at)
    overlayA.wakeAt(null)
  })

  it('copies views that do not own their whole buffer instead of detaching someone else’s bytes', () => {
    const shared = new Uint8Array(100)
    const view = shared.subarray(10, 20)
    const buffer = transferable(view)
    expect(buffer).not.toBe(shared.buffer)
    expect(buffer.byteLength).toBe(10)
    const whole = new Uint8Array(8)
    expect(transferable(whole)).toBe(whole.buffer)
  })

  it('rejects operations after terminate without announcing an error', async () => {
    const worker = hostedWorker()
    const events: unknown[] = []
    worker.addEventListener('error', (event) => events.push(event))
    worker.terminate()
    await expect(worker.status()).rejects.toThrow(/terminated/)
    expect(events).toEqual([])
  })
})
