// An HTTP/2 client connection with prior knowledge (RFC 9113 §3.3), sans-IO: bytes in, events
// and bytes out. ts2021 runs it over the controlbase stream; the map long-poll lives for hours
// on one stream, so receive windows are kept open with WINDOW_UPDATE as data is delivered.
import { concatBytes } from '../../crypto/index.ts'
import { HpackDecoder, HpackEncoder, HpackError, type HeaderList } from './hpack.ts'

/** RFC 9113 §3.4: the client connection preface. */
export const PREFACE = new TextEncoder().encode('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

// RFC 9113 §6 frame types and §7 error codes.
const DATA = 0x0
const HEADERS = 0x1
const PRIORITY = 0x2
const RST_STREAM = 0x3
const SETTINGS = 0x4
const PUSH_PROMISE = 0x5
const PING = 0x6
const GOAWAY = 0x7
const WINDOW_UPDATE = 0x8
const CONTINUATION = 0x9
const END_STREAM = 0x1
const ACK = 0x1
const END_HEADERS = 0x4
const PADDED = 0x8
const PRIORITY_FLAG = 0x20

// RFC 9113 §7 error codes, as module constants so the minifier inlines them.
const NO_ERROR = 0x0
const PROTOCOL_ERROR = 0x1
const INTERNAL_ERROR = 0x2
const FLOW_CONTROL_ERROR = 0x3
const SETTINGS_TIMEOUT = 0x4
const STREAM_CLOSED = 0x5
const FRAME_SIZE_ERROR = 0x6
const REFUSED_STREAM = 0x7
const CANCEL = 0x8
const COMPRESSION_ERROR = 0x9

export const H2_ERROR = {
  NO_ERROR,
  PROTOCOL_ERROR,
  INTERNAL_ERROR,
  FLOW_CONTROL_ERROR,
  SETTINGS_TIMEOUT,
  STREAM_CLOSED,
  FRAME_SIZE_ERROR,
  REFUSED_STREAM,
  CANCEL,
  COMPRESSION_ERROR,
} as const

const SETTINGS_HEADER_TABLE_SIZE = 0x1
const SETTINGS_ENABLE_PUSH = 0x2
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4
const SETTINGS_MAX_FRAME_SIZE = 0x5
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

const FRAME_HEADER = 9
const DEFAULT_WINDOW = 65_535
const MAX_WINDOW = 0x7fff_ffff
const MIN_FRAME_SIZE = 16_384
const MAX_FRAME_SIZE_LIMIT = 0xff_ffff

/** What we advertise: a roomy per-stream window, 16 KiB frames (the default), no push. */
const OUR_STREAM_WINDOW = 4 * 1024 * 1024
const OUR_CONNECTION_WINDOW = 16 * 1024 * 1024
const OUR_MAX_FRAME = MIN_FRAME_SIZE
const OUR_MAX_HEADER_LIST = 256 * 1024

/** A connection error (RFC 9113 §5.4.1): the connection is over; a GOAWAY with `h2Code` was queued. */
export class H2Error extends Error {
  override readonly name = 'H2Error'
  constructor(
    /** The RFC 9113 §7 error code. */
    readonly h2Code: number,
    message: string,
  ) {
    super(message)
  }
}

export type H2Event =
  /** The final (non-1xx) response header block of a stream. */
  | { type: 'response'; stream: number; status: number; headers: HeaderList }
  | { type: 'data'; stream: number; data: Uint8Array }
  /** The peer ended the stream (END_STREAM); `trailers` if a trailing header block carried it. */
  | { type: 'end'; stream: number; trailers?: HeaderList }
  /** The stream was reset by the peer (RST_STREAM) or refused by a GOAWAY; it is closed. */
  | { type: 'reset'; stream: number; code: number; reason: string }
  | { type: 'pong'; data: Uint8Array }
  /** The peer is shutting down: streams above `lastStream` were not processed (they get 'reset'). */
  | { type: 'goaway'; lastStream: number; code: number; debug: string }
  /** The connection failed; nothing more will be delivered. */
  | { type: 'closed'; error: H2Error }

interface Stream {
  id: number
  sendWindow: number
  receiveWindow: number
  /** Octets received and delivered but not yet returned with WINDOW_UPDATE. */
  unacknowledged: number
  queue: Uint8Array[]
  endAfterQueue: boolean
  localClosed: boolean
  remoteClosed: boolean
  responded: boolean
}

export interface RequestHead {
  method: string
  path: string
  headers?: HeaderList
}

export interface H2ConnectionOptions {
  /** The `:authority` of every request (the control host). */
  authority: string
  /** `:scheme`; ts2021 says https although the transport is Noise (controlclient/noise.go). */
  scheme?: string
}

export class H2Connection {
  readonly #encoder = new HpackEncoder()
  readonly #decoder = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: OUR_MAX_HEADER_LIST })
  readonly #streams = new Map<number, Stream>()
  #output: Uint8Array[] = []
  #input: Uint8Array = new Uint8Array(0)
  #nextStreamId = 1
  #peerInitialWindow = DEFAULT_WINDOW
  #peerMaxFrame = MIN_FRAME_SIZE
  #peerMaxStreams = Infinity
  #sendWindow = DEFAULT_WINDOW
  #receiveWindow = OUR_CONNECTION_WINDOW
  #unacknowledged = 0
  #sawSettings = false
  /** A header block in progress: HEADERS without END_HEADERS, waiting for CONTINUATION. */
  #headerBlock: { stream: number; endStream: boolean; parts: Uint8Array[]; size: number } | undefined
  #goneAway: { lastStream: number } | undefined
  #failure: H2Error | undefined
  /** When a frame last arrived (the `now` given to `receive`). */
  lastReceived = 0

  readonly #options: H2ConnectionOptions

  constructor(options: H2ConnectionOptions) {
    this.#options = options
    // §3.4: the preface, then our SETTINGS; then grow the connection window past the fixed 65535.
    this.#output.push(PREFACE)
    this.#frame(
      SETTINGS,
      0,
      0,
      settingsPayload([
        [SETTINGS_ENABLE_PUSH, 0],
        [SETTINGS_INITIAL_WINDOW_SIZE, OUR_STREAM_WINDOW],
        [SETTINGS_MAX_FRAME_SIZE, OUR_MAX_FRAME],
        [SETTINGS_MAX_HEADER_LIST_SIZE, OUR_MAX_HEADER_LIST],
      ]),
    )
    this.#windowUpdate(0, OUR_CONNECTION_WINDOW - DEFAULT_WINDOW)
  }

  get closed(): boolean {
    return this.#failure !== undefined
  }

  /** False once a GOAWAY arrived or the connection failed: open a new connection for new requests. */
  get acceptsRequests(): boolean {
    return !this.#failure && !this.#goneAway && this.#openStreams() < this.#peerMaxStreams
  }

  /** Bytes to write to the transport (and forget). */
  takeOutput(): Uint8Array {
    const out = this.#output.length === 1 ? this.#output[0]! : concatBytes(this.#output)
    this.#output = []
    return out
  }

  /** Opens a stream and sends its request; `body` (if any) follows under flow control. */
  request(head: RequestHead, body?: Uint8Array, endStream = true): number {
    if (this.#failure) throw this.#failure
    if (this.#goneAway) throw new H2Error(REFUSED_STREAM, 'the server sent GOAWAY; open a new connection')
    const id = this.#nextStreamId
    this.#nextStreamId += 2
    const stream: Stream = {
      id,
      sendWindow: this.#peerInitialWindow,
      receiveWindow: OUR_STREAM_WINDOW,
      unacknowledged: 0,
      queue: [],
      endAfterQueue: false,
      localClosed: false,
      remoteClosed: false,
      responded: false,
    }
    this.#streams.set(id, stream)
    const headers: HeaderList = [
      [':method', head.method],
      [':scheme', this.#options.scheme ?? 'https'],
      [':authority', this.#options.authority],
      [':path', head.path],
      ...(head.headers ?? []).map(([n, v]) => [n.toLowerCase(), v] as [string, string]),
    ]
    const hasBody = body !== undefined && body.length > 0
    this.#sendHeaderBlock(id, this.#encoder.encode(headers), endStream && !hasBody)
    if (endStream && !hasBody) stream.localClosed = true
    if (hasBody) this.write(id, body, endStream)
    return id
  }

  /** Queues request body bytes on an open stream (sent as the peer's windows allow). */
  write(id: number, data: Uint8Array, end = false): void {
    const stream = this.#streams.get(id)
    if (!stream || stream.localClosed || stream.endAfterQueue) throw new RangeError(`stream ${id} is not open for writing`)
    if (data.length > 0) stream.queue.push(data)
    stream.endAfterQueue = end
    this.#flush()
  }

  /** Abandons a stream (RST_STREAM CANCEL); later frames for it are ignored. */
  cancel(id: number, code: number = CANCEL): void {
    if (!this.#streams.has(id) || this.#failure) return
    this.#streams.delete(id)
    this.#frame(RST_STREAM, 0, id, u32(code))
  }

  /** Sends a PING; its ACK comes back as a 'pong' event with the same 8 bytes. */
  ping(data: Uint8Array = new Uint8Array(8)): void {
    if (this.#failure) return
    this.#frame(PING, 0, 0, data.subarray(0, 8))
  }

  /** Graceful close: GOAWAY(NO_ERROR). */
  goAway(code: number = NO_ERROR): void {
    if (this.#failure) return
    this.#frame(GOAWAY, 0, 0, concatBytes([u32(0), u32(code)]))
    this.#failure = new H2Error(code, 'connection closed by us')
  }

  /** Feeds transport bytes. A connection error ends the list with a 'closed' event (and queues GOAWAY). */
  receive(bytes: Uint8Array, now: number): H2Event[] {
    const events: H2Event[] = []
    if (this.#failure) return events
    this.lastReceived = now
    this.#input = this.#input.length === 0 ? bytes : concatBytes([this.#input, bytes])
    let offset = 0
    try {
      while (this.#input.length - offset >= FRAME_HEADER) {
        const b = this.#input
        const length = (b[offset]! << 16) | (b[offset + 1]! << 8) | b[offset + 2]!
        // §4.2: a frame over our SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR.
        if (length > OUR_MAX_FRAME) throw new H2Error(FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds our ${OUR_MAX_FRAME}-byte limit`)
        if (b.length - offset < FRAME_HEADER + length) break
        const type = b[offset + 3]!
        const flags = b[offset + 4]!
        const stream = ((b[offset + 5]! & 0x7f) << 24) | (b[offset + 6]! << 16) | (b[offset + 7]! << 8) | b[offset + 8]!
        const payload = b.subarray(offset + FRAME_HEADER, offset + FRAME_HEADER + length)
        offset += FRAME_HEADER + length
        this.#handleFrame(type, flags, stream >>> 0, payload, events)
      }
      this.#input = offset === this.#input.length ? new Uint8Array(0) : this.#input.slice(offset)
      this.#flush()
    } catch (error) {
      const failure =
        error instanceof H2Error
          ? error
          : error instanceof HpackError
            ? new H2Error(COMPRESSION_ERROR, `header block: ${error.message}`)
            : new H2Error(INTERNAL_ERROR, String(error))
      this.#fail(failure, events)
    }
    return events
  }

  /** Fails the connection with a local reason (e.g. the transport closed): every open stream is reset. */
  abort(error: H2Error): H2Event[] {
    const events: H2Event[] = []
    if (!this.#failure) this.#fail(error, events, false)
    return events
  }

  #fail(error: H2Error, events: H2Event[], sendGoAway = true): void {
    if (sendGoAway) {
      const lastStream = 0 // we never accept server-initiated streams
      this.#frame(GOAWAY, 0, 0, concatBytes([u32(lastStream), u32(error.h2Code), new TextEncoder().encode(error.message.slice(0, 200))]))
    }
    this.#failure = error
    for (const id of this.#streams.keys()) events.push({ type: 'reset', stream: id, code: error.h2Code, reason: error.message })
    this.#streams.clear()
    events.push({ type: 'closed', error })
  }

  #openStreams(): number {
    return this.#streams.size
  }

  #handleFrame(type: number, flags: number, id: number, payload: Uint8Array, events: H2Event[]): void {
    // §3.4: the server's preface is a SETTINGS frame; anything else first is a PROTOCOL_ERROR.
    if (!this.#sawSettings) {
      if (type !== SETTINGS || flags & ACK) throw new H2Error(PROTOCOL_ERROR, 'server preface must be a SETTINGS frame')
      this.#sawSettings = true
    }
    // §6.10: a header block must be continued by CONTINUATION frames of the same stream, nothing else.
    if (this.#headerBlock && (type !== CONTINUATION || id !== this.#headerBlock.stream)) {
      throw new H2Error(PROTOCOL_ERROR, `expected CONTINUATION for stream ${this.#headerBlock.stream}, got frame type ${type} on stream ${id}`)
    }
    switch (type) {
      case DATA:
        return this.#onData(flags, id, payload, events)
      case HEADERS:
        return this.#onHeaders(flags, id, payload, events)
      case CONTINUATION: {
        if (!this.#headerBlock) throw new H2Error(PROTOCOL_ERROR, 'CONTINUATION without a header block in progress')
        const block = this.#headerBlock
        block.parts.push(payload.slice())
        block.size += payload.length
        if (block.size > OUR_MAX_HEADER_LIST) throw new H2Error(PROTOCOL_ERROR, 'header block too large')
        if (flags & END_HEADERS) {
          this.#headerBlock = undefined
          this.#onHeaderBlock(block.stream, concatBytes(block.parts), block.endStream, events)
        }
        return
      }
      case PRIORITY:
        // §6.3: deprecated; only its size is checked.
        if (id === 0) throw new H2Error(PROTOCOL_ERROR, 'PRIORITY on stream 0')
        if (payload.length !== 5) this.#resetStream(id, FRAME_SIZE_ERROR, 'PRIORITY frame of wrong size', events)
        return
      case RST_STREAM: {
        if (id === 0) throw new H2Error(PROTOCOL_ERROR, 'RST_STREAM on stream 0')
        if (payload.length !== 4) throw new H2Error(FRAME_SIZE_ERROR, 'RST_STREAM frame must be 4 bytes')
        this.#checkNotIdle(id, 'RST_STREAM')
        if (this.#streams.delete(id)) events.push({ type: 'reset', stream: id, code: readU32(payload, 0), reason: `server reset the stream (code ${readU32(payload, 0)})` })
        return
      }
      case SETTINGS:
        return this.#onSettings(flags, id, payload)
      case PUSH_PROMISE:
        // §8.4: we sent ENABLE_PUSH 0, so a push is a PROTOCOL_ERROR.
        throw new H2Error(PROTOCOL_ERROR, 'PUSH_PROMISE although push is disabled')
      case PING:
        if (id !== 0) throw new H2Error(PROTOCOL_ERROR, 'PING on a stream')
        if (payload.length !== 8) throw new H2Error(FRAME_SIZE_ERROR, 'PING frame must be 8 bytes')
        if (flags & ACK) events.push({ type: 'pong', data: payload.slice() })
        else this.#frame(PING, ACK, 0, payload)
        return
      case GOAWAY: {
        if (id !== 0) throw new H2Error(PROTOCOL_ERROR, 'GOAWAY on a stream')
        if (payload.length < 8) throw new H2Error(FRAME_SIZE_ERROR, 'GOAWAY frame shorter than 8 bytes')
        const lastStream = readU32(payload, 0) & 0x7fff_ffff
        const code = readU32(payload, 4)
        const debug = new TextDecoder().decode(payload.subarray(8))
        this.#goneAway = { lastStream }
        events.push({ type: 'goaway', lastStream, code, debug })
        // §6.8: streams above lastStream were never processed and may be retried elsewhere.
        for (const sid of [...this.#streams.keys()]) {
          if (sid > lastStream) {
            this.#streams.delete(sid)
            events.push({ type: 'reset', stream: sid, code: REFUSED_STREAM, reason: `server sent GOAWAY (code ${code}${debug ? `: ${debug}` : ''})` })
          }
        }
        return
      }
      case WINDOW_UPDATE: {
        if (payload.length !== 4) throw new H2Error(FRAME_SIZE_ERROR, 'WINDOW_UPDATE frame must be 4 bytes')
        const increment = readU32(payload, 0) & 0x7fff_ffff
        if (id === 0) {
          if (increment === 0) throw new H2Error(PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection')
          this.#sendWindow += increment
          if (this.#sendWindow > MAX_WINDOW) throw new H2Error(FLOW_CONTROL_ERROR, 'connection send window exceeds 2^31-1')
          return
        }
        this.#checkNotIdle(id, 'WINDOW_UPDATE')
        const stream = this.#streams.get(id)
        if (!stream) return // closed: §6.9 says ignore
        if (increment === 0) return this.#resetStream(id, PROTOCOL_ERROR, 'WINDOW_UPDATE of 0', events)
        stream.sendWindow += increment
        if (stream.sendWindow > MAX_WINDOW) return this.#resetStream(id, FLOW_CONTROL_ERROR, 'stream send window exceeds 2^31-1', events)
        return
      }
      default:
        // §4.1/§5.5: unknown frame types are ignored.
        return
    }
  }

  /** §5.1: frames other than PRIORITY on an idle stream (one we never opened) are a PROTOCOL_ERROR. */
  #checkNotIdle(id: number, what: string): void {
    if (id % 2 === 0 || id >= this.#nextStreamId) throw new H2Error(PROTOCOL_ERROR, `${what} on idle stream ${id}`)
  }

  #resetStream(id: number, code: number, reason: string, events: H2Event[]): void {
    this.#frame(RST_STREAM, 0, id, u32(code))
    if (this.#streams.delete(id)) events.push({ type: 'reset', stream: id, code, reason })
  }

  #unpad(flags: number, payload: Uint8Array, what: string): Uint8Array {
    if (!(flags & PADDED)) return payload
    if (payload.length < 1) throw new H2Error(FRAME_SIZE_ERROR, `padded ${what} frame without a pad length`)
    const pad = payload[0]!
    // §6.1/§6.2: padding that fills or exceeds the payload is a PROTOCOL_ERROR.
    if (pad >= payload.length) throw new H2Error(PROTOCOL_ERROR, `${what} padding of ${pad} exceeds the frame`)
    return payload.subarray(1, payload.length - pad)
  }

  #onData(flags: number, id: number, payload: Uint8Array, events: H2Event[]): void {
    if (id === 0) throw new H2Error(PROTOCOL_ERROR, 'DATA on stream 0')
    this.#checkNotIdle(id, 'DATA')
    // §6.9.1: the whole frame (padding included) counts against both windows.
    this.#receiveWindow -= payload.length
    if (this.#receiveWindow < 0) throw new H2Error(FLOW_CONTROL_ERROR, 'server overran the connection receive window')
    this.#unacknowledged += payload.length
    const data = this.#unpad(flags, payload, 'DATA')
    const stream = this.#streams.get(id)
    if (!stream || stream.remoteClosed) {
      // Closed (e.g. cancelled by us): the data is dropped, but the connection window is still returned.
      if (stream) this.#resetStream(id, STREAM_CLOSED, 'DATA after END_STREAM', events)
      this.#maybeReturnConnectionWindow()
      return
    }
    if (!stream.responded) return this.#resetStream(id, PROTOCOL_ERROR, 'DATA before response headers', events)
    stream.receiveWindow -= payload.length
    if (stream.receiveWindow < 0) return this.#resetStream(id, FLOW_CONTROL_ERROR, 'server overran the stream receive window', events)
    stream.unacknowledged += payload.length
    if (data.length > 0) events.push({ type: 'data', stream: id, data: data.slice() })
    if (flags & END_STREAM) this.#remoteEnd(stream, events)
    else if (stream.unacknowledged >= OUR_STREAM_WINDOW / 2) {
      // Data is handed over as it arrives, so it counts as consumed: give the window back early
      // enough that a long-lived stream never stalls.
      this.#windowUpdate(id, stream.unacknowledged)
      stream.receiveWindow += stream.unacknowledged
      stream.unacknowledged = 0
    }
    this.#maybeReturnConnectionWindow()
  }

  #maybeReturnConnectionWindow(): void {
    if (this.#unacknowledged >= OUR_CONNECTION_WINDOW / 2) {
      this.#windowUpdate(0, this.#unacknowledged)
      this.#receiveWindow += this.#unacknowledged
      this.#unacknowledged = 0
    }
  }

  #onHeaders(flags: number, id: number, payload: Uint8Array, events: H2Event[]): void {
    if (id === 0) throw new H2Error(PROTOCOL_ERROR, 'HEADERS on stream 0')
    // A server may not open streams (§8.4: push is off), so HEADERS must be on a stream we opened.
    this.#checkNotIdle(id, 'HEADERS')
    let block = this.#unpad(flags, payload, 'HEADERS')
    if (flags & PRIORITY_FLAG) {
      if (block.length < 5) throw new H2Error(FRAME_SIZE_ERROR, 'HEADERS priority fields truncated')
      block = block.subarray(5)
    }
    const endStream = (flags & END_STREAM) !== 0
    if (flags & END_HEADERS) this.#onHeaderBlock(id, block, endStream, events)
    else this.#headerBlock = { stream: id, endStream, parts: [block.slice()], size: block.length }
  }

  #onHeaderBlock(id: number, block: Uint8Array, endStream: boolean, events: H2Event[]): void {
    // Decoded even for a stream we dropped: the HPACK table is shared by the whole connection (§4.3).
    const headers = this.#decoder.decode(block)
    const stream = this.#streams.get(id)
    if (!stream) return
    if (stream.remoteClosed) return this.#resetStream(id, STREAM_CLOSED, 'HEADERS after END_STREAM', events)
    if (!stream.responded) {
      const statusText = headers.find(([n]) => n === ':status')?.[1]
      const status = statusText !== undefined && /^[1-5][0-9][0-9]$/.test(statusText) ? Number(statusText) : NaN
      // §8.3.2: a response without a valid :status is malformed (a stream error).
      if (!Number.isFinite(status)) return this.#resetStream(id, PROTOCOL_ERROR, 'response without a valid :status', events)
      if (status < 200) {
        if (endStream) return this.#resetStream(id, PROTOCOL_ERROR, 'informational response with END_STREAM', events)
        return // §8.1: 1xx responses precede the final one
      }
      stream.responded = true
      events.push({ type: 'response', stream: id, status, headers })
      if (endStream) this.#remoteEnd(stream, events)
      return
    }
    // §8.1: a second header block is trailers and must end the stream.
    if (!endStream) return this.#resetStream(id, PROTOCOL_ERROR, 'trailers without END_STREAM', events)
    this.#remoteEnd(stream, events, headers)
  }

  #remoteEnd(stream: Stream, events: H2Event[], trailers?: HeaderList): void {
    stream.remoteClosed = true
    events.push(trailers ? { type: 'end', stream: stream.id, trailers } : { type: 'end', stream: stream.id })
    if (stream.localClosed) this.#streams.delete(stream.id)
  }

  #onSettings(flags: number, id: number, payload: Uint8Array): void {
    if (id !== 0) throw new H2Error(PROTOCOL_ERROR, 'SETTINGS on a stream')
    if (flags & ACK) {
      if (payload.length !== 0) throw new H2Error(FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload')
      return
    }
    if (payload.length % 6 !== 0) throw new H2Error(FRAME_SIZE_ERROR, 'SETTINGS payload not a multiple of 6')
    for (let i = 0; i < payload.length; i += 6) {
      const key = (payload[i]! << 8) | payload[i + 1]!
      const value = readU32(payload, i + 2)
      switch (key) {
        case SETTINGS_HEADER_TABLE_SIZE:
          this.#encoder.setMaxTableSize(value)
          break
        case SETTINGS_ENABLE_PUSH:
          if (value > 1) throw new H2Error(PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH of ${value}`)
          break
        case SETTINGS_MAX_CONCURRENT_STREAMS:
          this.#peerMaxStreams = value
          break
        case SETTINGS_INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new H2Error(FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE of ${value} exceeds 2^31-1`)
          // §6.9.2: the change applies to every open stream's send window.
          const delta = value - this.#peerInitialWindow
          this.#peerInitialWindow = value
          for (const stream of this.#streams.values()) {
            stream.sendWindow += delta
            if (stream.sendWindow > MAX_WINDOW) throw new H2Error(FLOW_CONTROL_ERROR, 'stream send window exceeds 2^31-1')
          }
          break
        }
        case SETTINGS_MAX_FRAME_SIZE:
          if (value < MIN_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) throw new H2Error(PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE of ${value} out of range`)
          this.#peerMaxFrame = value
          break
        default:
          // SETTINGS_MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored (§6.5.2).
          break
      }
    }
    this.#frame(SETTINGS, ACK, 0, new Uint8Array(0))
  }

  #sendHeaderBlock(id: number, block: Uint8Array, endStream: boolean): void {
    // §6.10: a block larger than one frame continues in CONTINUATION frames, back to back.
    const max = this.#peerMaxFrame
    const first = block.subarray(0, max)
    this.#frame(HEADERS, (endStream ? END_STREAM : 0) | (block.length <= max ? END_HEADERS : 0), id, first)
    for (let offset = max; offset < block.length; offset += max) {
      this.#frame(CONTINUATION, offset + max >= block.length ? END_HEADERS : 0, id, block.subarray(offset, offset + max))
    }
  }

  /** Sends queued body bytes as far as the connection and stream windows and frame size allow. */
  #flush(): void {
    if (this.#failure) return
    for (const stream of this.#streams.values()) {
      while (stream.queue.length > 0 && this.#sendWindow > 0 && stream.sendWindow > 0) {
        const head = stream.queue[0]!
        const n = Math.min(head.length, this.#sendWindow, stream.sendWindow, this.#peerMaxFrame)
        const chunk = head.subarray(0, n)
        if (n === head.length) stream.queue.shift()
        else stream.queue[0] = head.subarray(n)
        this.#sendWindow -= n
        stream.sendWindow -= n
        const last = stream.queue.length === 0 && stream.endAfterQueue
        this.#frame(DATA, last ? END_STREAM : 0, stream.id, chunk)
        if (last) this.#localEnd(stream)
      }
      if (stream.queue.length === 0 && stream.endAfterQueue && !stream.localClosed) {
        this.#frame(DATA, END_STREAM, stream.id, new Uint8Array(0))
        this.#localEnd(stream)
      }
    }
  }

  #localEnd(stream: Stream): void {
    stream.localClosed = true
    stream.endAfterQueue = false
    if (stream.remoteClosed) this.#streams.delete(stream.id)
  }

  #windowUpdate(id: number, increment: number): void {
    this.#frame(WINDOW_UPDATE, 0, id, u32(increment))
  }

  #frame(type: number, flags: number, id: number, payload: Uint8Array): void {
    const f = new Uint8Array(FRAME_HEADER + payload.length)
    f[0] = payload.length >>> 16
    f[1] = (payload.length >>> 8) & 0xff
    f[2] = payload.length & 0xff
    f[3] = type
    f[4] = flags
    f[5] = (id >>> 24) & 0x7f
    f[6] = (id >>> 16) & 0xff
    f[7] = (id >>> 8) & 0xff
    f[8] = id & 0xff
    f.set(payload, FRAME_HEADER)
    this.#output.push(f)
  }
}

function u32(value: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, value >>> 0)
  return b
}

function readU32(b: Uint8Array, offset: number): number {
  return ((b[offset]! << 24) | (b[offset + 1]! << 16) | (b[offset + 2]! << 8) | b[offset + 3]!) >>> 0
}

function settingsPayload(entries: Array<[number, number]>): Uint8Array {
  const out = new Uint8Array(entries.length * 6)
  entries.forEach(([key, value], i) => {
    out[i * 6] = key >> 8
    out[i * 6 + 1] = key & 0xff
    out.set(u32(value), i * 6 + 2)
  })
  return out
}
