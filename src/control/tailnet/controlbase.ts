// Tailscale's control transport ("controlbase", used by ts2021): Noise_IK_25519_ChaChaPoly_BLAKE2s
// with a version prologue, then length-prefixed ChaCha20-Poly1305 records. Sans-IO: bytes in,
// bytes/plaintext out. Upstream: tailscale.com/control/controlbase/{handshake,messages,conn}.go.
//
// The primitives (BLAKE2s hash, HMAC-BLAKE2s HKDF, X25519, ChaCha20-Poly1305) are WireGuard's and
// come from src/crypto, shared with src/tunnel/handshake.ts; only the framing and the nonce layout
// differ from WireGuard.
import { aead, concatBytes, dh, generateKeyPair, hash, kdf, open, publicKeyOf, seal, WeakKeyError } from '../../crypto/index.ts'

const utf8 = new TextEncoder()

/** handshake.go protocolName: fixed by the Noise spec for this instantiation. */
const PROTOCOL_NAME = utf8.encode('Noise_IK_25519_ChaChaPoly_BLAKE2s')
/** handshake.go protocolVersionPrefix: the prologue binds the cleartext version to the handshake. */
const PROLOGUE_PREFIX = 'Tailscale Control Protocol v'

// messages.go
export const MSG_INITIATION = 1
export const MSG_RESPONSE = 2
export const MSG_ERROR = 3
export const MSG_RECORD = 4
const HEADER_LENGTH = 3
const INITIATION_HEADER_LENGTH = 5
export const INITIATION_LENGTH = 101
export const RESPONSE_LENGTH = 51
/** conn.go maxMessageSize: no frame (header included) may exceed 4096 bytes. */
export const MAX_MESSAGE_SIZE = 4096
const MAX_CIPHERTEXT = MAX_MESSAGE_SIZE - HEADER_LENGTH
export const MAX_PLAINTEXT = MAX_CIPHERTEXT - 16

const ZERO_NONCE = new Uint8Array(12)
const EMPTY = new Uint8Array(0)

export type ControlbaseErrorCode =
  /** The server answered the initiation with an error frame (its text is the message). */
  | 'server-error'
  /** A frame was malformed: wrong type, wrong length, oversize. */
  | 'bad-frame'
  /** A handshake message or a record did not authenticate (wrong key, or tampering). */
  | 'decrypt-failed'
  /** A key is a low-order point. */
  | 'weak-key'
  /** The counter ran out (2^64-1 messages); the connection must be replaced. */
  | 'nonce-exhausted'

export class ControlbaseError extends Error {
  override readonly name = 'ControlbaseError'
  constructor(
    readonly code: ControlbaseErrorCode,
    message: string,
  ) {
    super(message)
  }
}

export function prologue(version: number): Uint8Array {
  return utf8.encode(PROLOGUE_PREFIX + String(version))
}

/** Noise SymmetricState (handshake.go symmetricState): h and ck, MixHash, MixDH, Split. */
class SymmetricState {
  h: Uint8Array
  ck: Uint8Array
  constructor() {
    this.h = hash(PROTOCOL_NAME)
    this.ck = this.h
  }
  mixHash(data: Uint8Array): void {
    this.h = hash(this.h, data)
  }
  /** MixKey(X25519(priv, pub)): HKDF(salt=ck, ikm=dh) → (ck, k), the same KDF2 WireGuard uses. */
  mixDh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
    let shared: Uint8Array
    try {
      shared = dh(privateKey, publicKey)
    } catch (error) {
      if (error instanceof WeakKeyError) throw new ControlbaseError('weak-key', 'handshake key is a low-order point')
      throw error
    }
    const [ck, k] = kdf(2, this.ck, shared) as [Uint8Array, Uint8Array]
    this.ck = ck
    return k
  }
  /** Handshake AEADs use each key once, so the nonce is always zero; the AAD is h. */
  encryptAndHash(key: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const sealed = seal(aead, key, ZERO_NONCE, plaintext, this.h)
    this.mixHash(sealed)
    return sealed
  }
  decryptAndHash(key: Uint8Array, sealed: Uint8Array, what: string): Uint8Array {
    const plain = open(aead, key, ZERO_NONCE, sealed, this.h)
    if (!plain) throw new ControlbaseError('decrypt-failed', `${what} does not authenticate`)
    this.mixHash(sealed)
    return plain
  }
  /** HKDF(salt=ck, ikm=empty) → (k1, k2); k1 carries client→server, k2 server→client. */
  split(): [Uint8Array, Uint8Array] {
    return kdf(2, this.ck, EMPTY) as [Uint8Array, Uint8Array]
  }
}

/**
 * One direction of the record layer. The nonce is 4 zero bytes ‖ u64 big-endian counter
 * (conn.go `nonce`), unlike WireGuard's little-endian counter.
 */
class CipherState {
  #counter = 0n
  readonly #nonce = new Uint8Array(12)
  constructor(private readonly key: Uint8Array) {}
  #next(): Uint8Array {
    // conn.go invalidNonce: 2^64-1 is never used.
    if (this.#counter >= 0xffff_ffff_ffff_ffffn) throw new ControlbaseError('nonce-exhausted', 'controlbase cipher exhausted its nonces')
    new DataView(this.#nonce.buffer).setBigUint64(4, this.#counter, false)
    this.#counter++
    return this.#nonce
  }
  seal(plaintext: Uint8Array): Uint8Array {
    return seal(aead, this.key, this.#next(), plaintext)
  }
  open(sealed: Uint8Array): Uint8Array {
    const plain = open(aead, this.key, this.#next(), sealed)
    if (!plain) throw new ControlbaseError('decrypt-failed', 'controlbase record does not authenticate')
    return plain
  }
}

/** An established controlbase connection: frames plaintext into records and back. */
export class ControlbaseStream {
  readonly #tx: CipherState
  private readonly rx: CipherState
  #buffer: Uint8Array = EMPTY
  #failed: ControlbaseError | undefined

  constructor(
    sendKey: Uint8Array,
    receiveKey: Uint8Array,
    /** The Noise handshake hash (conn.go HandshakeHash): both sides agree on it. */
    readonly handshakeHash: Uint8Array,
    /** The peer's static public key (the control key on the client, the machine key on the server). */
    readonly peer: Uint8Array,
    readonly version: number,
  ) {
    this.#tx = new CipherState(sendKey)
    this.rx = new CipherState(receiveKey)
  }

  /** Record frames carrying `plaintext`, split so no frame exceeds 4096 bytes (conn.go Write). */
  seal(plaintext: Uint8Array): Uint8Array {
    const frames: Uint8Array[] = []
    for (let offset = 0; offset < plaintext.length; offset += MAX_PLAINTEXT) {
      const sealed = this.#tx.seal(plaintext.subarray(offset, offset + MAX_PLAINTEXT))
      const frame = new Uint8Array(HEADER_LENGTH + sealed.length)
      frame[0] = MSG_RECORD
      frame[1] = sealed.length >> 8
      frame[2] = sealed.length & 0xff
      frame.set(sealed, HEADER_LENGTH)
      frames.push(frame)
    }
    return frames.length === 1 ? frames[0]! : concatBytes(frames)
  }

  /**
   * Feeds received bytes; returns the plaintext of every complete record. Throws ControlbaseError
   * on the first bad frame, and keeps throwing it: conn.go ends the connection on any failure,
   * since a skipped record would desynchronise the nonces.
   */
  receive(bytes: Uint8Array): Uint8Array[] {
    if (this.#failed) throw this.#failed
    this.#buffer = this.#buffer.length === 0 ? bytes : concatBytes([this.#buffer, bytes])
    const out: Uint8Array[] = []
    try {
      let offset = 0
      while (this.#buffer.length - offset >= HEADER_LENGTH) {
        const type = this.#buffer[offset]!
        const length = (this.#buffer[offset + 1]! << 8) | this.#buffer[offset + 2]!
        if (type !== MSG_RECORD) throw new ControlbaseError('bad-frame', `expected a record frame (type 4), got type ${type}`)
        if (length > MAX_CIPHERTEXT) throw new ControlbaseError('bad-frame', `record of ${length} bytes exceeds the ${MAX_CIPHERTEXT}-byte limit`)
        if (length < 16) throw new ControlbaseError('bad-frame', `record of ${length} bytes is shorter than its tag`)
        if (this.#buffer.length - offset < HEADER_LENGTH + length) break
        const plain = this.rx.open(this.#buffer.subarray(offset + HEADER_LENGTH, offset + HEADER_LENGTH + length))
        if (plain.length > 0) out.push(plain)
        offset += HEADER_LENGTH + length
      }
      this.#buffer = offset === this.#buffer.length ? EMPTY : this.#buffer.slice(offset)
    } catch (error) {
      if (error instanceof ControlbaseError) this.#failed = error
      throw error
    }
    return out
  }
}

export interface InitiatorOptions {
  /** The machine key (our Noise static key). */
  machinePrivate: Uint8Array
  /** The control server's public key (`mkey:` from /key, or pinned). */
  controlPublic: Uint8Array
  /** The capability version sent in cleartext and bound by the prologue. */
  version: number
  /** A fixed ephemeral private key, for tests; a fresh one otherwise. */
  ephemeralPrivate?: Uint8Array
}

/**
 * The client side of the handshake (handshake.go ClientDeferred): `initiation` is sent first
 * (embedded in the HTTP upgrade request), then `receive` is fed the server's bytes until it
 * returns the established stream and any record bytes that followed the response.
 */
export class ControlbaseInitiator {
  readonly initiation: Uint8Array
  readonly #state = new SymmetricState()
  readonly #ephemeralPrivate: Uint8Array
  #buffer: Uint8Array = EMPTY
  #done = false

  readonly #options: InitiatorOptions

  constructor(options: InitiatorOptions) {
    this.#options = options
    const { machinePrivate, controlPublic, version } = options
    if (!Number.isInteger(version) || version < 0 || version > 0xffff) throw new RangeError(`controlbase version must be a u16, got ${version}`)
    if (controlPublic.length !== 32) throw new RangeError(`control key must be 32 bytes, got ${controlPublic.length}`)
    const s = this.#state
    this.#ephemeralPrivate = options.ephemeralPrivate?.slice() ?? generateKeyPair().privateKey
    const ephemeralPublic = publicKeyOf(this.#ephemeralPrivate)
    s.mixHash(prologue(version))
    // <- s (pre-message: the server's static key)
    s.mixHash(controlPublic)
    // -> e, es, s, ss
    s.mixHash(ephemeralPublic)
    const encryptedMachine = s.encryptAndHash(s.mixDh(this.#ephemeralPrivate, controlPublic), publicKeyOf(machinePrivate))
    const tag = s.encryptAndHash(s.mixDh(machinePrivate, controlPublic), EMPTY)
    const message = new Uint8Array(INITIATION_LENGTH)
    message[0] = version >> 8
    message[1] = version & 0xff
    message[2] = MSG_INITIATION
    message[3] = 0
    message[4] = INITIATION_LENGTH - INITIATION_HEADER_LENGTH
    message.set(ephemeralPublic, 5)
    message.set(encryptedMachine, 37)
    message.set(tag, 85)
    this.initiation = message
  }

  /**
   * Undefined until the whole response (51 bytes) has arrived. Throws ControlbaseError for an
   * error frame ('server-error', with the server's text), any other frame type, or a response
   * that does not authenticate (the server does not hold the control key we used).
   */
  receive(bytes: Uint8Array): { stream: ControlbaseStream; rest: Uint8Array } | undefined {
    if (this.#done) throw new Error('ControlbaseInitiator.receive after the handshake finished')
    this.#buffer = this.#buffer.length === 0 ? bytes : concatBytes([this.#buffer, bytes])
    if (this.#buffer.length < HEADER_LENGTH) return undefined
    const type = this.#buffer[0]!
    const length = (this.#buffer[1]! << 8) | this.#buffer[2]!
    if (type === MSG_ERROR) {
      if (this.#buffer.length < HEADER_LENGTH + length) return undefined
      this.#done = true
      const text = new TextDecoder().decode(this.#buffer.subarray(HEADER_LENGTH, HEADER_LENGTH + length))
      throw new ControlbaseError('server-error', `control server refused the handshake: ${JSON.stringify(text)}`)
    }
    if (type !== MSG_RESPONSE) {
      this.#done = true
      throw new ControlbaseError('bad-frame', `unexpected handshake response message type ${type}`)
    }
    if (length !== RESPONSE_LENGTH - HEADER_LENGTH) {
      this.#done = true
      throw new ControlbaseError('bad-frame', `wrong length ${length} received for handshake response`)
    }
    if (this.#buffer.length < RESPONSE_LENGTH) return undefined
    this.#done = true
    const s = this.#state
    const controlEphemeral = this.#buffer.slice(3, 35)
    // <- e, ee, se
    s.mixHash(controlEphemeral)
    s.mixDh(this.#ephemeralPrivate, controlEphemeral)
    s.decryptAndHash(s.mixDh(this.#options.machinePrivate, controlEphemeral), this.#buffer.subarray(35, 51), 'handshake response')
    const [k1, k2] = s.split()
    this.#ephemeralPrivate.fill(0)
    const stream = new ControlbaseStream(k1, k2, s.h, this.#options.controlPublic.slice(), this.#options.version)
    return { stream, rest: this.#buffer.slice(RESPONSE_LENGTH) }
  }
}

/**
 * The server side (handshake.go Server), used by tests to check our initiator and to stand in
 * for control where a test needs one. Returns the 51-byte response and the stream.
 */
export function acceptInitiation(
  controlPrivate: Uint8Array,
  initiation: Uint8Array,
  ephemeralPrivate: Uint8Array = generateKeyPair().privateKey,
): { response: Uint8Array; stream: ControlbaseStream; machinePublic: Uint8Array; version: number } {
  if (initiation.length !== INITIATION_LENGTH) throw new ControlbaseError('bad-frame', 'wrong handshake initiation size')
  if (initiation[2] !== MSG_INITIATION) throw new ControlbaseError('bad-frame', 'unexpected handshake message type')
  if (((initiation[3]! << 8) | initiation[4]!) !== INITIATION_LENGTH - INITIATION_HEADER_LENGTH) throw new ControlbaseError('bad-frame', 'wrong handshake initiation length')
  const version = (initiation[0]! << 8) | initiation[1]!
  const s = new SymmetricState()
  s.mixHash(prologue(version))
  s.mixHash(publicKeyOf(controlPrivate))
  const machineEphemeral = initiation.slice(5, 37)
  s.mixHash(machineEphemeral)
  const machinePublic = s.decryptAndHash(s.mixDh(controlPrivate, machineEphemeral), initiation.subarray(37, 85), 'machine key')
  s.decryptAndHash(s.mixDh(controlPrivate, machinePublic), initiation.subarray(85, 101), 'initiation tag')
  const ephemeralPublic = publicKeyOf(ephemeralPrivate)
  const response = new Uint8Array(RESPONSE_LENGTH)
  response[0] = MSG_RESPONSE
  response[2] = RESPONSE_LENGTH - HEADER_LENGTH
  response.set(ephemeralPublic, 3)
  s.mixHash(ephemeralPublic)
  s.mixDh(ephemeralPrivate, machineEphemeral)
  response.set(s.encryptAndHash(s.mixDh(ephemeralPrivate, machinePublic), EMPTY), 35)
  const [k1, k2] = s.split()
  return { response, stream: new ControlbaseStream(k2, k1, s.h, machinePublic, version), machinePublic, version }
}

/** An error frame as the server sends it (handshake.go Server sendErr). */
export function errorFrame(text: string): Uint8Array {
  const body = utf8.encode(text).subarray(0, 0xffff)
  const frame = new Uint8Array(HEADER_LENGTH + body.length)
  frame[0] = MSG_ERROR
  frame[1] = body.length >> 8
  frame[2] = body.length & 0xff
  frame.set(body, HEADER_LENGTH)
  return frame
}
