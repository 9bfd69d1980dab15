// Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it (whitepaper §5.4.2–5.4.5).
// Pure functions over explicit state: the peer/tunnel layers own indices, timers and replay checks.

import { WeakKeyError, aead, clamp, dh, hash, kdf, open, publicKeyOf, seal } from '../crypto/index.ts'
import { decodeInitiation, decodeResponse, encodeInitiation, encodeResponse, type Initiation } from './messages.ts'
import { MessageDropped } from './types.ts'

const utf8 = new TextEncoder()
export const CONSTRUCTION = utf8.encode('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s')
export const IDENTIFIER = utf8.encode('WireGuard v1 zx2c4 Jason@zx2c4.com')
export const INITIAL_CHAINING_KEY = hash(CONSTRUCTION)
export const INITIAL_HASH = hash(INITIAL_CHAINING_KEY, IDENTIFIER)
/** Handshake AEADs each use a fresh key, so their nonce is always zero. */
const ZERO_NONCE = new Uint8Array(12)
const EMPTY = new Uint8Array(0)
const NO_PRESHARED_KEY = new Uint8Array(32)

export interface LocalIdentity {
  privateKey: Uint8Array
  publicKey: Uint8Array
  /** HASH(InitialHash ‖ our static public key): the responder's starting hash. */
  responderHash: Uint8Array
}

export interface RemoteIdentity {
  publicKey: Uint8Array
  presharedKey: Uint8Array
  /** DH(our static private, their static public), computed once per peer. */
  staticShared: Uint8Array
  /** HASH(InitialHash ‖ their static public key): the initiator's starting hash. */
  initiatorHash: Uint8Array
}

export function localIdentity(privateKey: Uint8Array): LocalIdentity {
  if (privateKey.length !== 32) throw new RangeError(`private key must be 32 bytes, got ${privateKey.length}`)
  const publicKey = publicKeyOf(privateKey)
  return { privateKey: privateKey.slice(), publicKey, responderHash: hash(INITIAL_HASH, publicKey) }
}

/** Throws WeakKeyError when `publicKey` is a low-order point (no usable shared secret). */
export function remoteIdentity(local: LocalIdentity, publicKey: Uint8Array, presharedKey?: Uint8Array): RemoteIdentity {
  if (publicKey.length !== 32) throw new RangeError(`peer public key must be 32 bytes, got ${publicKey.length}`)
  if (presharedKey !== undefined && presharedKey.length !== 32) throw new RangeError(`preshared key must be 32 bytes, got ${presharedKey.length}`)
  return {
    publicKey: publicKey.slice(),
    presharedKey: presharedKey ? presharedKey.slice() : NO_PRESHARED_KEY,
    staticShared: dh(local.privateKey, publicKey),
    initiatorHash: hash(INITIAL_HASH, publicKey),
  }
}

export interface EphemeralKeyPair {
  privateKey: Uint8Array
  publicKey: Uint8Array
}

export function ephemeralKeyPair(random: (length: number) => Uint8Array): EphemeralKeyPair {
  const privateKey = clamp(random(32).slice(0, 32))
  return { privateKey, publicKey: publicKeyOf(privateKey) }
}

/** What an initiator keeps between sending an initiation and receiving its response. */
export interface InitiatorState {
  localIndex: number
  chainingKey: Uint8Array
  hash: Uint8Array
  ephemeral: EphemeralKeyPair
}

export interface TransportKeys {
  sendKey: Uint8Array
  receiveKey: Uint8Array
}

function mixDh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  try {
    return dh(privateKey, publicKey)
  } catch (error) {
    if (error instanceof WeakKeyError) throw new MessageDropped('weak-key', 'ephemeral key is a low-order point')
    throw error
  }
}

function sealHandshake(key: Uint8Array, plaintext: Uint8Array, transcript: Uint8Array): Uint8Array {
  return seal(aead, key, ZERO_NONCE, plaintext, transcript)
}

function openHandshake(key: Uint8Array, sealed: Uint8Array, transcript: Uint8Array, what: string): Uint8Array {
  const plaintext = open(aead, key, ZERO_NONCE, sealed, transcript)
  if (!plaintext) throw new MessageDropped('decrypt-failed', `${what} does not authenticate`)
  return plaintext
}

/** Builds an initiation (MACs still zero) and the state needed to consume its response. */
export function createInitiation(
  local: LocalIdentity,
  remote: RemoteIdentity,
  localIndex: number,
  timestamp: Uint8Array,
  ephemeral: EphemeralKeyPair,
): { message: Uint8Array; state: InitiatorState } {
  let [chainingKey] = kdf(1, INITIAL_CHAINING_KEY, ephemeral.publicKey) as [Uint8Array]
  let transcript = hash(remote.initiatorHash, ephemeral.publicKey)
  let key: Uint8Array
  ;[chainingKey, key] = kdf(2, chainingKey, dh(ephemeral.privateKey, remote.publicKey)) as [Uint8Array, Uint8Array]
  const encryptedStatic = sealHandshake(key, local.publicKey, transcript)
  transcript = hash(transcript, encryptedStatic)
  ;[chainingKey, key] = kdf(2, chainingKey, remote.staticShared) as [Uint8Array, Uint8Array]
  const encryptedTimestamp = sealHandshake(key, timestamp, transcript)
  transcript = hash(transcript, encryptedTimestamp)
  key.fill(0)
  const message = encodeInitiation({ sender: localIndex, ephemeral: ephemeral.publicKey, encryptedStatic, encryptedTimestamp })
  return { message, state: { localIndex, chainingKey, hash: transcript, ephemeral } }
}

/** An initiation whose static key decrypted: the sender claims to be `remoteStatic`. */
export interface InitiationClaim {
  remoteStatic: Uint8Array
  remoteIndex: number
  remoteEphemeral: Uint8Array
  fields: Initiation
  chainingKey: Uint8Array
  hash: Uint8Array
}

/** First half of consuming an initiation: reveals who claims to have sent it. */
export function openInitiation(local: LocalIdentity, datagram: Uint8Array): InitiationClaim {
  const fields = decodeInitiation(datagram)
  let [chainingKey] = kdf(1, INITIAL_CHAINING_KEY, fields.ephemeral) as [Uint8Array]
  let transcript = hash(local.responderHash, fields.ephemeral)
  let key: Uint8Array
  ;[chainingKey, key] = kdf(2, chainingKey, mixDh(local.privateKey, fields.ephemeral)) as [Uint8Array, Uint8Array]
  const remoteStatic = openHandshake(key, fields.encryptedStatic, transcript, 'initiation static key')
  transcript = hash(transcript, fields.encryptedStatic)
  return { remoteStatic, remoteIndex: fields.sender, remoteEphemeral: fields.ephemeral.slice(), fields, chainingKey, hash: transcript }
}

export interface ConsumedInitiation {
  remoteIndex: number
  remoteEphemeral: Uint8Array
  timestamp: Uint8Array
  chainingKey: Uint8Array
  hash: Uint8Array
}

/** Second half: proves the sender holds `remote`'s static key and reveals its timestamp. */
export function authenticateInitiation(claim: InitiationClaim, remote: RemoteIdentity): ConsumedInitiation {
  const [chainingKey, key] = kdf(2, claim.chainingKey, remote.staticShared) as [Uint8Array, Uint8Array]
  const timestamp = openHandshake(key, claim.fields.encryptedTimestamp, claim.hash, 'initiation timestamp')
  key.fill(0)
  return {
    remoteIndex: claim.remoteIndex,
    remoteEphemeral: claim.remoteEphemeral,
    timestamp,
    chainingKey,
    hash: hash(claim.hash, claim.fields.encryptedTimestamp),
  }
}

/** Builds the response (MACs still zero) and the responder's transport keys. */
export function createResponse(
  remote: RemoteIdentity,
  consumed: ConsumedInitiation,
  localIndex: number,
  ephemeral: EphemeralKeyPair,
): { message: Uint8Array; keys: TransportKeys } {
  let [chainingKey] = kdf(1, consumed.chainingKey, ephemeral.publicKey) as [Uint8Array]
  let transcript = hash(consumed.hash, ephemeral.publicKey)
  ;[chainingKey] = kdf(1, chainingKey, mixDh(ephemeral.privateKey, consumed.remoteEphemeral)) as [Uint8Array]
  ;[chainingKey] = kdf(1, chainingKey, mixDh(ephemeral.privateKey, remote.publicKey)) as [Uint8Array]
  const [mixed, tau, key] = kdf(3, chainingKey, remote.presharedKey) as [Uint8Array, Uint8Array, Uint8Array]
  transcript = hash(transcript, tau)
  const encryptedNothing = sealHandshake(key, EMPTY, transcript)
  const [receiveKey, sendKey] = kdf(2, mixed, EMPTY) as [Uint8Array, Uint8Array]
  for (const secret of [chainingKey, mixed, tau, key, ephemeral.privateKey, consumed.chainingKey]) secret.fill(0)
  const message = encodeResponse({ sender: localIndex, receiver: consumed.remoteIndex, ephemeral: ephemeral.publicKey, encryptedNothing })
  return { message, keys: { sendKey, receiveKey } }
}

/** Consumes a response to our initiation; returns the initiator's transport keys and the responder's index. */
export function consumeResponse(local: LocalIdentity, remote: RemoteIdentity, state: InitiatorState, datagram: Uint8Array): { keys: TransportKeys; remoteIndex: number } {
  const fields = decodeResponse(datagram)
  let [chainingKey] = kdf(1, state.chainingKey, fields.ephemeral) as [Uint8Array]
  let transcript = hash(state.hash, fields.ephemeral)
  ;[chainingKey] = kdf(1, chainingKey, mixDh(state.ephemeral.privateKey, fields.ephemeral)) as [Uint8Array]
  ;[chainingKey] = kdf(1, chainingKey, mixDh(local.privateKey, fields.ephemeral)) as [Uint8Array]
  const [mixed, tau, key] = kdf(3, chainingKey, remote.presharedKey) as [Uint8Array, Uint8Array, Uint8Array]
  transcript = hash(transcript, tau)
  openHandshake(key, fields.encryptedNothing, transcript, 'response')
  const [sendKey, receiveKey] = kdf(2, mixed, EMPTY) as [Uint8Array, Uint8Array]
  for (const secret of [chainingKey, mixed, tau, key]) secret.fill(0)
  return { keys: { sendKey, receiveKey }, remoteIndex: fields.sender }
}

/** Forgets an initiator state's secrets once it is answered or abandoned. */
export function zeroInitiatorState(state: InitiatorState): void {
  state.chainingKey.fill(0)
  state.hash.fill(0)
  state.ephemeral.privateKey.fill(0)
}
