import { describe, expect, it } from 'vitest'
import { nobleAead } from '../crypto/aead-noble.ts'
import { nodeAead } from '../crypto/aead-node.ts'
import { aead, open } from '../crypto/index.ts'
import { readU32 } from './messages.ts'
import { Session } from './session.ts'
import { ipv4Packet } from './testing.ts'
import { REJECT_AFTER_TIME, REKEY_AFTER_TIME } from './timers.ts'

const keyA = new Uint8Array(32).fill(1)
const keyB = new Uint8Array(32).fill(2)
const pair = (sender = nodeAead, receiver = nodeAead) => ({
  initiator: new Session({ sendKey: keyA.slice(), receiveKey: keyB.slice() }, 11, 22, true, 0, sender),
  responder: new Session({ sendKey: keyB.slice(), receiveKey: keyA.slice() }, 22, 11, false, 0, receiver),
})

describe('transport session', () => {
  it.each([
    [nodeAead, nobleAead],
    [nobleAead, nodeAead],
    [nobleAead, nobleAead],
  ])('seals in place with %s and opens with %s (browser and Node agree)', (sender, receiver) => {
    const { initiator, responder } = pair(sender, receiver)
    for (const length of [0, 1, 15, 16, 17, 1420]) {
      const packet = length === 0 ? new Uint8Array(0) : ipv4Packet(Math.max(length, 20)).subarray(0, length)
      const message = initiator.seal(packet)
      const padded = Math.ceil(length / 16) * 16
      expect(message.length).toBe(16 + padded + 16)
      const opened = responder.open(message)
      expect(opened).toBeInstanceOf(Uint8Array)
      expect((opened as Uint8Array).subarray(0, length)).toEqual(packet)
      expect((opened as Uint8Array).subarray(length).every((b) => b === 0)).toBe(true) // zero padding
    }
  })

  it('gives every sealed message its own bytes: messages kept across many slabs still open to their packets, padding zero', () => {
    const { initiator, responder } = pair()
    const kept: Array<{ packet: Uint8Array; message: Uint8Array }> = []
    for (let i = 0; i < 400; i++) {
      const length = 20 + ((i * 397) % 5000) // both sides of the slab limit
      const packet = ipv4Packet(length).map((b, j) => (j < 20 ? b : (i + j) & 0xff))
      kept.push({ packet, message: initiator.seal(packet) })
    }
    for (const { packet, message } of kept) {
      const opened = responder.open(message) as Uint8Array
      expect(opened).toBeInstanceOf(Uint8Array)
      expect(Buffer.compare(opened.subarray(0, packet.length), packet)).toBe(0)
      expect(opened.subarray(packet.length).every((b) => b === 0)).toBe(true)
    }
  })

  it('uses nonce = 4 zero bytes ‖ LE u64 counter, and the counter field matches', () => {
    const { initiator } = pair()
    initiator.setSendCounterForTesting(0x0102030405060708n)
    const message = initiator.seal(new Uint8Array(0))
    expect([...message.subarray(0, 16)]).toEqual([4, 0, 0, 0, 22, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
    const nonce = new Uint8Array([0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
    expect(open(aead, keyA, nonce, message.subarray(16))).toEqual(new Uint8Array(0))
    expect(initiator.sendCounter).toBe(0x0102030405060709n)
  })

  it('carries the counter from the low into the high word', () => {
    const { initiator, responder } = pair()
    initiator.setSendCounterForTesting(0xffffffffn)
    const first = initiator.seal(new Uint8Array(0))
    const second = initiator.seal(new Uint8Array(0))
    expect([readU32(second, 8), readU32(second, 12)]).toEqual([0, 1])
    expect(responder.open(second)).toBeInstanceOf(Uint8Array)
    expect(responder.open(first)).toBeInstanceOf(Uint8Array)
  })

  it('does not change the replay window when a message fails to authenticate', () => {
    const { initiator, responder } = pair()
    const message = initiator.seal(ipv4Packet(20))
    const forged = message.slice()
    forged[20]! ^= 1
    expect(responder.open(forged)).toBe('decrypt-failed')
    expect(responder.open(message)).toBeInstanceOf(Uint8Array)
    expect(responder.open(message)).toBe('replayed')
  })

  it('knows its lifetime, rekey rules, and forgets its keys when zeroed', () => {
    const { initiator, responder } = pair()
    expect(initiator.wantsRekey(REKEY_AFTER_TIME - 1)).toBe(false)
    expect(initiator.wantsRekey(REKEY_AFTER_TIME)).toBe(true)
    expect(responder.wantsRekey(REKEY_AFTER_TIME)).toBe(false)
    expect(initiator.canSend(REJECT_AFTER_TIME - 1)).toBe(true)
    expect(initiator.canSend(REJECT_AFTER_TIME)).toBe(false)
    expect(responder.canReceive(REJECT_AFTER_TIME)).toBe(false)
    const message = initiator.seal(ipv4Packet(20))
    responder.zero()
    expect(responder.canReceive(1)).toBe(false)
    expect(responder.open(message)).toBe('decrypt-failed')
  })
})
