// One transport session (a "keypair" in wireguard-go terms): send key and counter, receive key
// and replay window (whitepaper §5.4.6). This is the hot path: one allocation per packet, the
// payload is padded and encrypted in place inside the outgoing message (a view into a shared slab).

import { aead as sharedAead, TAG_LENGTH, type Aead } from '../crypto/index.ts'
import { allocateBytes as importedAllocateBytes } from '../wire/index.ts'
import { MESSAGE_TRANSPORT, TRANSPORT_COUNTER, TRANSPORT_HEADER_LENGTH, TRANSPORT_RECEIVER } from './messages.ts'
import { REJECT_HIGH, REJECT_LOW, ReplayWindow } from './replay.ts'
import { REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME } from './timers.ts'
import type { TransportKeys } from './handshake.ts'

// Module-local copies of everything the per-packet path touches: under Node's ESM→CJS interop
// (tsx, vitest) each imported binding is a getter call, which showed up in profiles.
const HEADER = TRANSPORT_HEADER_LENGTH
const TAG = TAG_LENGTH
const TYPE = MESSAGE_TRANSPORT
const RECEIVER = TRANSPORT_RECEIVER
const COUNTER = TRANSPORT_COUNTER
const REJECT_AFTER = REJECT_AFTER_TIME
const REKEY_AFTER = REKEY_AFTER_TIME
const COUNTER_REJECT_HIGH = REJECT_HIGH
const COUNTER_REJECT_LOW = REJECT_LOW
const PADDING = 16
const allocateBytes = importedAllocateBytes
const REKEY_HIGH = Number(REKEY_AFTER_MESSAGES >> 32n)

function readU32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0
}

function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value
  bytes[offset + 1] = value >>> 8
  bytes[offset + 2] = value >>> 16
  bytes[offset + 3] = value >>> 24
}
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
    /** The runtime's AEAD unless a test pins a backend (browsers use @noble, Node OpenSSL). */
    private readonly aead: Aead = sharedAead,
  ) {
    this.sendKey = keys.sendKey
    this.receiveKey = keys.receiveKey
  }

  /** Usable for sending: younger than RejectAfterTime and counter below RejectAfterMessages. */
  canSend(now: number): boolean {
    return !this.zeroed && now - this.createdAt < REJECT_AFTER && !(this.sendHigh === COUNTER_REJECT_HIGH && this.sendLow >= COUNTER_REJECT_LOW)
  }

  canReceive(now: number): boolean {
    return !this.zeroed && now - this.createdAt < REJECT_AFTER
  }

  /** Time or message count says a session we initiated should be replaced (§6.2). */
  wantsRekey(now: number): boolean {
    return this.sendHigh >= REKEY_HIGH || (this.isInitiator && now - this.createdAt >= REKEY_AFTER)
  }

  get expiresAt(): number {
    return this.createdAt + REJECT_AFTER
  }

  /** Encrypts `packet` (zero-padded to a multiple of 16) into a new transport message. Call canSend first. */
  seal(packet: Uint8Array): Uint8Array {
    const padded = (packet.length + PADDING - 1) & ~(PADDING - 1)
    // Small messages are views into a shared zeroed slab (src/wire/slab.ts): no per-packet
    // off-heap allocation, and the padding is already zero.
    const message = allocateBytes(HEADER + padded + TAG)
    message[0] = TYPE
    writeU32(message, RECEIVER, this.remoteIndex)
    writeU32(message, COUNTER, this.sendLow)
    writeU32(message, COUNTER + 4, this.sendHigh)
    message.set(packet, HEADER)
    writeU32(nonce, 4, this.sendLow)
    writeU32(nonce, 8, this.sendHigh)
    const body = message.subarray(HEADER)
    this.aead.sealInto(this.sendKey, nonce, body.subarray(0, padded), undefined, body)
    if (++this.sendLow === 0x100000000) {
      this.sendLow = 0
      this.sendHigh++
    }
    return message
  }

  /** Decrypts a transport message addressed to this session; the plaintext still carries its padding. */
  open(message: Uint8Array): Uint8Array | OpenOutcome {
    const low = readU32(message, COUNTER)
    const high = readU32(message, COUNTER + 4)
    if (!this.replay.check(high, low)) return 'replayed'
    writeU32(nonce, 4, low)
    writeU32(nonce, 8, high)
    const plaintext = this.aead.openOwned(this.receiveKey, nonce, message.subarray(HEADER), undefined)
    if (!plaintext) return 'decrypt-failed'
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
