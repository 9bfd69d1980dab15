import { describe, expect, it } from 'vitest'
import { packPackets, unpackPackets } from './protocol.ts'

describe('packets messages', () => {
  it('sends a lone whole-buffer packet as its own buffer', () => {
    const packet = new Uint8Array([1, 2, 3])
    const message = packPackets([packet])
    expect(message.lengths).toBeUndefined()
    expect(message.buffers).toEqual([packet.buffer])
  })

  it('packs several packets (views into larger buffers too) into one buffer and unpacks them in order', () => {
    const backing = new Uint8Array(64).map((_, i) => i)
    const packets = [backing.subarray(4, 10), new Uint8Array([200, 201]), new Uint8Array(0), backing.subarray(60)]
    const message = packPackets(packets)
    expect(message.buffers).toHaveLength(1)
    expect(message.lengths).toEqual([6, 2, 0, 4])
    const unpacked = unpackPackets(message)
    expect(Array.isArray(unpacked)).toBe(true)
    expect((unpacked as Uint8Array[]).map((p) => [...p])).toEqual(packets.map((p) => [...p]))
    // The originals stay usable: packing copies, it does not detach someone else's buffer.
    expect(backing.byteLength).toBe(64)
  })

  it('unpacks unpacked messages one packet per buffer', () => {
    const unpacked = unpackPackets({ buffers: [new Uint8Array([1]).buffer, new Uint8Array([2, 3]).buffer] }) as Uint8Array[]
    expect(unpacked.map((p) => [...p])).toEqual([[1], [2, 3]])
  })

  it('names what is wrong with a malformed message instead of throwing', () => {
    expect(unpackPackets({ buffers: 'nope' })).toMatch(/without an array of ArrayBuffers/)
    expect(unpackPackets({ buffers: [new ArrayBuffer(4), new ArrayBuffer(4)], lengths: [4, 4] })).toMatch(/needs one buffer/)
    expect(unpackPackets({ buffers: [new ArrayBuffer(4)], lengths: [2, 3] })).toMatch(/bad length at 1/)
    expect(unpackPackets({ buffers: [new ArrayBuffer(4)], lengths: [1.5] })).toMatch(/bad length at 0/)
    expect(unpackPackets({ buffers: [new ArrayBuffer(4)], lengths: [1, 2] })).toMatch(/add up to 3 bytes, its buffer holds 4/)
  })
})

describe('PortOverlay batching', () => {
  it('sends the packets handed over within one task as one packed message, in order', async () => {
    const { PortOverlay } = await import('./port-transports.ts')
    const channel = new MessageChannel()
    const overlay = new PortOverlay(channel.port1)
    const messages: unknown[] = []
    const got = new Promise<void>((resolve) => {
      channel.port2.onmessage = (event) => {
        messages.push(event.data)
        resolve()
      }
    })
    const backing = new Uint8Array([9, 8, 7, 6, 5])
    overlay.send([backing.subarray(0, 2)])
    overlay.send([backing.subarray(2), new Uint8Array([1])])
    await got
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(messages).toHaveLength(1)
    const packets = unpackPackets(messages[0] as { buffers: ArrayBuffer[]; lengths?: number[] }) as Uint8Array[]
    expect(packets.map((p) => [...p])).toEqual([[9, 8], [7, 6, 5], [1]])
    overlay.stop()
    channel.port2.close()
  })
})
