// One transport session (a "keypair" in wireguard-go terms): send key and counter, receive key
// and replay window (whitepaper §5.4.6). This is the hot path: one allocation per packet, the
// payload is padded and encrypted in place inside the outgoing message.

import { aead, TAG_LENGTH } from '../crypto/index.ts'
import { MESSAGE_TRANSPORT, readU32, TRANSPORT_COUNTER, TRANSPORT_HEADER_LENGTH, TRANSPORT_RECEIVER, writeU32 } from './messages.ts'
import { atOrBeyondReject, ReplayWindow } from './replay.ts'
import { REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME } from './timers.ts'
import type { TransportKeys } from './handshake.ts'

const PADDING = 16
const REKEY_HIGH = Number(REKEY_AFTER_MESSAGES >> 32n)
/** Scratch nonce: 4 zero bytes then the LE u64 counter. Safe to share because sealing is synchronous. */
const nonce = new Uint8Array(12)

export type OpenOutcome = 'replayed' | 'decrypt-failed'

export class Session {
  private sendHigh = 0
  private sendLow = 0
  private readonly replay = new ReplayWindow()
  private readonly sendKey: Uint8Array
  private readonly receiveKey: Uint8Array
  private zeroed = false

  constructor(
    keys: TransportKeys,
    /** Our index: the receiver field of messages the peer sends on this session. */
    readonly localIndex: number,
    /** The peer's index: the receiver field of messages we send. */
    readonly remoteIndex: number,
    readonly isInitiator: boolean,
    readonly createdAt: number,
  ) {
    this.sendKey = keys.sendKey
    this.receiveKey = keys.receiveKey
  }

  /** Usable for sending: younger than RejectAfterTime and counter below RejectAfterMessages. */
  canSend(now: number): boolean {
    return !this.zeroed && now - this.createdAt < REJECT_AFTER_TIME && !atOrBeyondReject(this.sendHigh, this.sendLow)
  }

  canReceive(now: number): boolean {
    return !this.zeroed && now - this.createdAt < REJECT_AFTER_TIME
  }

  /** Time or message count says a session we initiated should be replaced (§6.2). */
  wantsRekey(now: number): boolean {
    return this.sendHigh >= REKEY_HIGH || (this.isInitiator && now - this.createdAt >= REKEY_AFTER_TIME)
  }

  get expiresAt(): number {
    return this.createdAt + REJECT_AFTER_TIME
  }

  /** Encrypts `packet` (zero-padded to a multiple of 16) into a new transport message. Call canSend first. */
  seal(packet: Uint8Array): Uint8Array {
    const padded = (packet.length + PADDING - 1) & ~(PADDING - 1)
    const message = new Uint8Array(TRANSPORT_HEADER_LENGTH + padded + TAG_LENGTH)
    message[0] = MESSAGE_TRANSPORT
    writeU32(message, TRANSPORT_RECEIVER, this.remoteIndex)
    writeU32(message, TRANSPORT_COUNTER, this.sendLow)
    writeU32(message, TRANSPORT_COUNTER + 4, this.sendHigh)
    message.set(packet, TRANSPORT_HEADER_LENGTH)
    writeU32(nonce, 4, this.sendLow)
    writeU32(nonce, 8, this.sendHigh)
    const body = message.subarray(TRANSPORT_HEADER_LENGTH)
    aead.sealInto(this.sendKey, nonce, body.subarray(0, padded), undefined, body)
    if (++this.sendLow === 0x100000000) {
      this.sendLow = 0
      this.sendHigh++
    }
    return message
  }

  /** Decrypts a transport message addressed to this session; the plaintext still carries its padding. */
  open(message: Uint8Array): Uint8Array | OpenOutcome {
    const low = readU32(message, TRANSPORT_COUNTER)
    const high = readU32(message, TRANSPORT_COUNTER + 4)
    if (!this.replay.check(high, low)) return 'replayed'
    const plaintext = new Uint8Array(message.length - TRANSPORT_HEADER_LENGTH - TAG_LENGTH)
    writeU32(nonce, 4, low)
    writeU32(nonce, 8, high)
    if (!aead.openInto(this.receiveKey, nonce, message.subarray(TRANSPORT_HEADER_LENGTH), undefined, plaintext)) return 'decrypt-failed'
    this.replay.accept(high, low)
    return plaintext
  }

  /** Forgets the keys; the session can neither send nor receive afterwards. */
  zero(): void {
    this.sendKey.fill(0)
    this.receiveKey.fill(0)
    this.zeroed = true
  }

  get isZeroed(): boolean {
    return this.zeroed
  }

  /** Test hook: jump the send counter (REKEY/REJECT_AFTER_MESSAGES cannot be reached by sending). */
  setSendCounterForTesting(counter: bigint): void {
    if (counter < 0n || counter > REJECT_AFTER_MESSAGES) throw new RangeError(`send counter ${counter} out of range`)
    this.sendHigh = Number(counter >> 32n)
    this.sendLow = Number(counter & 0xffffffffn)
  }

  get sendCounter(): bigint {
    return (BigInt(this.sendHigh) << 32n) | BigInt(this.sendLow)
  }
}
