// The outer disco packet: magic "TS💬" (6) + sender disco public key (32) + nonce (24) + NaCl box
// of the message plaintext. A WireGuard message starts with 1..4, so both share one path.
import { BOX_NONCE_LENGTH, boxKey, boxOpen, boxSeal, equalBytes, publicKeyOf, randomBytes, toHex } from '../../crypto/index.ts'
import { DISCO_MAGIC } from '../../dataplane/core.ts'
import { DiscoError } from './errors.ts'
import { decodeDiscoMessage, encodeDiscoMessage, type DiscoMessage } from './messages.ts'

export { DISCO_MAGIC }
export const DISCO_KEY_LENGTH = 32
const MAX_CACHED_PEERS = 4096
/** Magic + sender key + nonce: everything before the box. */
export const DISCO_HEADER_LENGTH = DISCO_MAGIC.length + DISCO_KEY_LENGTH + BOX_NONCE_LENGTH

/** True when `packet` is long enough and starts with the disco magic (says nothing about the box). */
export function looksLikeDisco(packet: Uint8Array): boolean {
  if (packet.length < DISCO_HEADER_LENGTH) return false
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (packet[i] !== DISCO_MAGIC[i]) return false
  return true
}

/** The sender's disco public key (a view into `packet`). */
export function discoSender(packet: Uint8Array): Uint8Array {
  if (!looksLikeDisco(packet)) throw new DiscoError('not-disco', `not a disco packet (need the magic and at least ${DISCO_HEADER_LENGTH} bytes, got ${packet.length})`)
  return packet.subarray(DISCO_MAGIC.length, DISCO_MAGIC.length + DISCO_KEY_LENGTH)
}

/** Seals a message with a precomputed `boxKey(ourPrivate, theirPublic)`. */
export function sealDisco(sharedKey: Uint8Array, senderPublic: Uint8Array, message: DiscoMessage, nonce: Uint8Array = randomBytes(BOX_NONCE_LENGTH)): Uint8Array {
  if (senderPublic.length !== DISCO_KEY_LENGTH) throw new DiscoError('bad-argument', `a disco public key must be ${DISCO_KEY_LENGTH} bytes`)
  if (nonce.length !== BOX_NONCE_LENGTH) throw new DiscoError('bad-argument', `a disco nonce must be ${BOX_NONCE_LENGTH} bytes`)
  const sealed = boxSeal(sharedKey, nonce, encodeDiscoMessage(message))
  const packet = new Uint8Array(DISCO_HEADER_LENGTH + sealed.length)
  packet.set(DISCO_MAGIC, 0)
  packet.set(senderPublic, DISCO_MAGIC.length)
  packet.set(nonce, DISCO_MAGIC.length + DISCO_KEY_LENGTH)
  packet.set(sealed, DISCO_HEADER_LENGTH)
  return packet
}

/** Opens a packet with the shared key for its sender. Throws only `DiscoError`. */
export function openDisco(sharedKey: Uint8Array, packet: Uint8Array): DiscoMessage {
  discoSender(packet)
  const nonce = packet.subarray(DISCO_MAGIC.length + DISCO_KEY_LENGTH, DISCO_HEADER_LENGTH)
  const plaintext = boxOpen(sharedKey, nonce, packet.subarray(DISCO_HEADER_LENGTH))
  if (!plaintext) throw new DiscoError('undecryptable', 'disco box did not open (wrong key, forged or corrupted)')
  return decodeDiscoMessage(plaintext)
}

/**
 * Our disco key pair and the shared keys with each peer, computed once (an X25519 per peer, not
 * per packet). Disco keys are separate from node keys so that they can rotate independently.
 */
export class DiscoKeyring {
  readonly publicKey: Uint8Array
  private readonly shared = new Map<string, Uint8Array>()

  constructor(private readonly privateKey: Uint8Array) {
    if (privateKey.length !== DISCO_KEY_LENGTH) throw new DiscoError('bad-argument', `a disco private key must be ${DISCO_KEY_LENGTH} bytes`)
    this.publicKey = publicKeyOf(privateKey)
  }

  seal(peerDiscoKey: Uint8Array, message: DiscoMessage, nonce?: Uint8Array): Uint8Array {
    return sealDisco(this.sharedWith(peerDiscoKey), this.publicKey, message, nonce)
  }

  /** Opens a packet from anyone; returns who sent it (a copy of their disco key) and what. */
  open(packet: Uint8Array): { sender: Uint8Array; message: DiscoMessage } {
    const sender = discoSender(packet).slice()
    if (equalBytes(sender, this.publicKey)) throw new DiscoError('undecryptable', 'disco packet claims to come from our own disco key')
    return { sender, message: openDisco(this.sharedWith(sender), packet) }
  }

  /** Drops a peer's cached shared key (it left, or rotated its disco key). */
  forget(peerDiscoKey: Uint8Array): void {
    this.shared.delete(toHex(peerDiscoKey))
  }

  private sharedWith(peer: Uint8Array): Uint8Array {
    if (peer.length !== DISCO_KEY_LENGTH) throw new DiscoError('bad-argument', `a disco public key must be ${DISCO_KEY_LENGTH} bytes`)
    const id = toHex(peer)
    let key = this.shared.get(id)
    if (!key) {
      try {
        key = boxKey(this.privateKey, peer)
      } catch {
        // A low-order point gives an all-zero shared secret; X25519 rejects it.
        throw new DiscoError('undecryptable', 'disco sender key is not a usable X25519 public key')
      }
      // Bounded: a stream of forged packets with fresh sender keys must not grow memory.
      if (this.shared.size >= MAX_CACHED_PEERS) this.shared.delete(this.shared.keys().next().value!)
      this.shared.set(id, key)
    }
    return key
  }
}
