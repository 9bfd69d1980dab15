import { describe, expect, it } from 'vitest'
import { aead, open, publicKeyOf } from '../../crypto/index.ts'
import { acceptInitiation, ControlbaseError, ControlbaseInitiator, errorFrame, MAX_MESSAGE_SIZE, prologue } from './controlbase.ts'

const filled = (start: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => start + i)
const controlPrivate = filled(0x11)
const machinePrivate = filled(0x21)

function pair(version = 130) {
  const initiator = new ControlbaseInitiator({ machinePrivate, controlPublic: publicKeyOf(controlPrivate), version, ephemeralPrivate: filled(0x31) })
  const server = acceptInitiation(controlPrivate, initiator.initiation, filled(0x41))
  const done = initiator.receive(server.response)!
  return { initiator, server, client: done.stream }
}

function codeOf(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(ControlbaseError)
    return (error as ControlbaseError).code
  }
  throw new Error('expected a ControlbaseError')
}

describe('controlbase', () => {
  it('the prologue is "Tailscale Control Protocol v" and the decimal version', () => {
    expect(new TextDecoder().decode(prologue(130))).toBe('Tailscale Control Protocol v130')
  })

  it('an initiation is u16be version | 0x01 | u16be 96 | ephemeral | sealed machine key | tag', () => {
    const { initiator, server } = pair(130)
    const m = initiator.initiation
    expect(Array.from(m.subarray(0, 5))).toEqual([0, 130, 1, 0, 96])
    expect(m.subarray(5, 37)).toEqual(publicKeyOf(filled(0x31)))
    expect(server.machinePublic).toEqual(publicKeyOf(machinePrivate))
    expect(server.version).toBe(130)
    expect(Array.from(server.response.subarray(0, 3))).toEqual([2, 0, 48])
  })

  it('both sides agree on the handshake hash and exchange records in both directions', () => {
    const { server, client } = pair()
    expect(client.handshakeHash).toEqual(server.stream.handshakeHash)
    const hello = new TextEncoder().encode('hello')
    expect(server.stream.receive(client.seal(hello))).toEqual([hello])
    expect(client.receive(server.stream.seal(hello))).toEqual([hello])
  })

  it('records use a big-endian counter in the last 8 nonce bytes (WireGuard uses little-endian)', () => {
    const { client } = pair()
    client.seal(Uint8Array.of(1)) // nonce 0
    const second = client.seal(Uint8Array.of(2)) // nonce 1
    // Fixed ephemerals make the handshake repeatable: the responder of a second run holds the same key.
    const { server } = pair()
    const sealed = second.subarray(3)
    const bigEndianOne = new Uint8Array(12)
    bigEndianOne[11] = 1
    const littleEndianOne = new Uint8Array(12)
    littleEndianOne[4] = 1
    const key = (server.stream as unknown as { rx: { key: Uint8Array } }).rx.key
    expect(open(aead, key, bigEndianOne, sealed)).toEqual(Uint8Array.of(2))
    expect(open(aead, key, littleEndianOne, sealed)).toBeUndefined()
  })

  it('a large write is split into frames of at most 4096 bytes, reassembled byte for byte when fed one byte at a time', () => {
    const { server, client } = pair()
    const big = Uint8Array.from({ length: 20_000 }, (_, i) => i & 0xff)
    const wire = client.seal(big)
    let offset = 0
    const frames: number[] = []
    while (offset < wire.length) {
      const length = 3 + ((wire[offset + 1]! << 8) | wire[offset + 2]!)
      expect(wire[offset]).toBe(4)
      frames.push(length)
      offset += length
    }
    expect(Math.max(...frames)).toBeLessThanOrEqual(MAX_MESSAGE_SIZE)
    expect(frames.length).toBe(5)
    const out: Uint8Array[] = []
    for (const byte of wire) out.push(...server.stream.receive(Uint8Array.of(byte)))
    expect(Buffer.concat(out).equals(Buffer.from(big))).toBe(true)
  })

  it('an error frame in place of the response rejects with the server text', () => {
    const initiator = new ControlbaseInitiator({ machinePrivate, controlPublic: publicKeyOf(controlPrivate), version: 130 })
    const frame = errorFrame('unsupported version')
    expect(initiator.receive(frame.subarray(0, 4))).toBeUndefined()
    try {
      initiator.receive(frame.subarray(4))
      throw new Error('expected a throw')
    } catch (error) {
      expect((error as ControlbaseError).code).toBe('server-error')
      expect((error as Error).message).toContain('unsupported version')
    }
  })

  it('a response from a server without the control key fails to authenticate', () => {
    const initiator = new ControlbaseInitiator({ machinePrivate, controlPublic: publicKeyOf(filled(0x51)), version: 130 })
    // The impostor cannot even open our initiation.
    expect(codeOf(() => acceptInitiation(controlPrivate, initiator.initiation))).toBe('decrypt-failed')
    // And a response made for another handshake does not authenticate for ours.
    const other = pair().server.response
    expect(codeOf(() => initiator.receive(other))).toBe('decrypt-failed')
  })

  it('a tampered record, an oversize frame and a non-record frame each end the stream with a typed error', () => {
    const { server, client } = pair()
    const record = client.seal(Uint8Array.of(1, 2, 3))
    record[5]! ^= 1
    expect(codeOf(() => server.stream.receive(record))).toBe('decrypt-failed')
    // Sticky: the stream is unusable after a failure, since the nonces have diverged.
    expect(codeOf(() => server.stream.receive(client.seal(Uint8Array.of(1))))).toBe('decrypt-failed')
    const b = pair()
    expect(codeOf(() => b.server.stream.receive(Uint8Array.of(4, 0x10, 0)))).toBe('bad-frame')
    const c = pair()
    expect(codeOf(() => c.server.stream.receive(Uint8Array.of(2, 0, 48)))).toBe('bad-frame')
  })
})
