// One ts2021 control connection, sans-IO: the controlbase Noise handshake, the optional early
// payload, then HTTP/2 with prior knowledge inside the Noise records. The driver moves bytes
// between this object and a byte stream (HTTP Upgrade socket or WebSocket) and nothing else.
// Upstream: tailscale.com/control/controlhttp (dial), control/controlclient/noise.go (HTTP/2 use),
// Headscale hscontrol/noise.go (early payload).
import { concatBytes, toBase64 } from '../../crypto/index.ts'
import { ControlbaseError, ControlbaseInitiator, type ControlbaseStream } from './controlbase.ts'
import { H2Connection, H2Error, type H2Event, type RequestHead } from './h2.ts'

/** controlhttpcommon.UpgradeHeaderValue: the HTTP Upgrade token and the WebSocket subprotocol. */
export const UPGRADE_PROTOCOL = 'tailscale-control-protocol'
/** controlhttpcommon.HandshakeHeaderName: carries the base64 initiation (header or query). */
export const HANDSHAKE_HEADER = 'X-Tailscale-Handshake'
export const TS2021_PATH = '/ts2021'

/**
 * hscontrol/noise.go earlyPayloadMagic: 5 bytes no HTTP/2 frame can start with (a SETTINGS frame
 * would have type 4 in the 4th byte, not 'T'), then u32be length and JSON tailcfg.EarlyNoise.
 */
const EARLY_MAGIC = [0xff, 0xff, 0xff, 0x54, 0x53]
const EARLY_MAX = 64 * 1024

export type Ts2021ErrorCode = ControlbaseError['code'] | 'closed' | 'bad-early-payload'

/** A failed ts2021 connection; `cause` is the ControlbaseError or H2Error underneath. */
export class Ts2021Error extends Error {
  override readonly name = 'Ts2021Error'
  constructor(
    readonly code: Ts2021ErrorCode | 'http2',
    message: string,
    readonly h2Code?: number,
  ) {
    super(message)
  }
}

export type Ts2021Event =
  /** The handshake completed: requests may be sent (they were accepted before, and queued). */
  | { type: 'ready' }
  /** The server's early payload (Upgrade path), e.g. `{"nodeKeyChallenge":"chalpub:…"}`. */
  | { type: 'early'; payload: Record<string, unknown> }
  | Exclude<H2Event, { type: 'closed' }>
  | { type: 'closed'; error: Ts2021Error }

export interface Ts2021Options {
  machinePrivate: Uint8Array
  controlPublic: Uint8Array
  version: number
  /** `:authority` of the HTTP/2 requests: the control host (and port). */
  authority: string
  ephemeralPrivate?: Uint8Array
}

export class Ts2021Connection {
  readonly initiation: Uint8Array
  readonly #initiator: ControlbaseInitiator
  #stream: ControlbaseStream | undefined
  readonly #h2: H2Connection
  #phase: 'handshake' | 'early' | 'h2' | 'closed' = 'handshake'
  #early: Uint8Array = new Uint8Array(0)
  #output: Uint8Array[] = []

  constructor(options: Ts2021Options) {
    this.#initiator = new ControlbaseInitiator(options)
    this.initiation = this.#initiator.initiation
    this.#h2 = new H2Connection({ authority: options.authority, scheme: 'https' })
  }

  /** The initiation as the X-Tailscale-Handshake header / query parameter wants it (std base64). */
  get handshakeParameter(): string {
    return toBase64(this.initiation)
  }

  get closed(): boolean {
    return this.#phase === 'closed'
  }

  get acceptsRequests(): boolean {
    return this.#phase !== 'closed' && this.#h2.acceptsRequests
  }

  /** Opens an HTTP/2 stream; before the handshake completes its frames wait in the queue. */
  request(head: RequestHead, body?: Uint8Array): number {
    const id = this.#h2.request(head, body)
    this.#pump()
    return id
  }

  cancel(stream: number): void {
    this.#h2.cancel(stream)
    this.#pump()
  }

  ping(data?: Uint8Array): void {
    this.#h2.ping(data)
    this.#pump()
  }

  /** Bytes for the transport (Noise records once the handshake is done). */
  takeOutput(): Uint8Array[] {
    const out = this.#output
    this.#output = []
    return out
  }

  /** Feeds transport bytes. Failure ends the list with one 'closed' event; later calls return []. */
  receive(bytes: Uint8Array, now: number): Ts2021Event[] {
    const events: Ts2021Event[] = []
    if (this.#phase === 'closed') return events
    try {
      let plain: Uint8Array[]
      if (this.#phase === 'handshake') {
        const done = this.#initiator.receive(bytes)
        if (!done) return events
        this.#stream = done.stream
        this.#phase = 'early'
        events.push({ type: 'ready' })
        plain = this.#stream.receive(done.rest)
      } else {
        plain = this.#stream!.receive(bytes)
      }
      for (const chunk of plain) this.#onPlaintext(chunk, now, events)
      this.#pump()
    } catch (error) {
      this.#fail(toTs2021Error(error), events)
    }
    return events
  }

  /** The transport ended (or failed): every open stream is reset and the connection is closed. */
  transportClosed(reason: string): Ts2021Event[] {
    const events: Ts2021Event[] = []
    if (this.#phase === 'closed') return events
    const message =
      this.#phase === 'handshake'
        ? `control server closed the connection during the Noise handshake (${reason}): it does not hold the control key we used, or refused our capability version`
        : `control connection closed: ${reason}`
    this.#fail(new Ts2021Error('closed', message), events)
    return events
  }

  /** Graceful close: GOAWAY, then the driver closes the transport. */
  close(): void {
    if (this.#phase === 'closed') return
    this.#h2.goAway()
    this.#pump()
    this.#phase = 'closed'
  }

  #onPlaintext(chunk: Uint8Array, now: number, events: Ts2021Event[]): void {
    if (this.#phase === 'early') {
      this.#early = concatBytes([this.#early, chunk])
      if (this.#early.length < EARLY_MAGIC.length) return
      if (!EARLY_MAGIC.every((b, i) => this.#early[i] === b)) {
        // No early payload: these bytes are already HTTP/2.
        this.#phase = 'h2'
        chunk = this.#early
        this.#early = new Uint8Array(0)
      } else {
        if (this.#early.length < 9) return
        const length = new DataView(this.#early.buffer, this.#early.byteOffset).getUint32(5)
        if (length > EARLY_MAX) throw new Ts2021Error('bad-early-payload', `early payload of ${length} bytes exceeds ${EARLY_MAX}`)
        if (this.#early.length < 9 + length) return
        let payload: unknown
        try {
          payload = JSON.parse(new TextDecoder().decode(this.#early.subarray(9, 9 + length)))
        } catch {
          throw new Ts2021Error('bad-early-payload', 'early payload is not JSON')
        }
        if (typeof payload !== 'object' || payload === null) throw new Ts2021Error('bad-early-payload', 'early payload is not a JSON object')
        events.push({ type: 'early', payload: payload as Record<string, unknown> })
        chunk = this.#early.slice(9 + length)
        this.#early = new Uint8Array(0)
        this.#phase = 'h2'
        if (chunk.length === 0) return
      }
    }
    let failure: H2Error | undefined
    for (const event of this.#h2.receive(chunk, now)) {
      if (event.type === 'closed') failure = event.error
      else events.push(event)
    }
    if (failure) throw new Ts2021Error('http2', `HTTP/2: ${failure.message}`, failure.h2Code)
  }

  /** Moves HTTP/2 output into Noise records (only once the handshake is done). */
  #pump(): void {
    if (!this.#stream) return
    const out = this.#h2.takeOutput()
    if (out.length > 0) this.#output.push(this.#stream.seal(out))
  }

  #fail(error: Ts2021Error, events: Ts2021Event[]): void {
    // Streams are reported reset so every waiting request learns why.
    for (const event of this.#h2.abort(new H2Error(error.h2Code ?? 0, error.message))) {
      if (event.type !== 'closed') events.push(event)
    }
    if (error.code === 'http2') this.#pump() // the GOAWAY H2Connection queued
    this.#phase = 'closed'
    events.push({ type: 'closed', error })
  }
}

function toTs2021Error(error: unknown): Ts2021Error {
  if (error instanceof Ts2021Error) return error
  if (error instanceof ControlbaseError) return new Ts2021Error(error.code, error.message)
  return new Ts2021Error('closed', String(error))
}
