// One DERP client connection as a sans-IO state machine: bytes in (with `now`), coalesced
// messages out (`takeOutput`), events out (`takeEvent`), `poll(now)` for what is due and `nextEvent()` for when.
import { equalBytes, formatNodeKey, publicKeyOf, randomBytes } from '../../crypto/index.ts'
import { FrameReader } from './frame-reader.ts'
import {
  type DerpFrame,
  DerpFrameError,
  FRAME_HEADER_LENGTH,
  FrameType,
  KEY_LENGTH,
  MAX_PACKET_SIZE,
  PROTOCOL_VERSION,
  decodeFrame,
  encodedLength,
  writeFrame,
  writeHeader,
} from './frames.ts'
import { DerpLoginError, type ServerInfo, boxKey, openJson, parseServerInfo, sealJson } from './info.ts'
import { OutputBuffer } from './output-buffer.ts'
import { TokenBucket } from './token-bucket.ts'

export interface DerpClientSessionOptions {
  privateKey: Uint8Array
  /** When the relay's key is known in advance (e.g. from a relay map), a different key is refused. */
  expectedServerKey?: Uint8Array
  canAckPings?: boolean
  /** Send our own Ping after this much silence from the relay. */
  pingIntervalMs?: number
  /** Give up on the connection when nothing arrives this long after our Ping. */
  pingTimeoutMs?: number
  /** Give up when the login has not completed by then. */
  loginTimeoutMs?: number
  /** Largest coalesced message handed to the socket. */
  messageBytes?: number
  /**
   * A relay mesh key (64 hex digits, derper's `--mesh-psk-file` format): this client is another
   * relay of the same region, trusted to watch connections and forward packets.
   */
  meshKey?: string
  /** Ask for PeerPresent/PeerGone about every client of the relay after each login (mesh peers only). */
  watchConnections?: boolean
  /**
   * Take the relay's ServerKey but send no ClientInfo until `login(now)`: the connection is opened
   * early (while the node registers with its coordination service) and logs in once the relay
   * would admit the key (`--verify-clients`). No login deadline runs while held.
   */
  holdLogin?: boolean
}

export type DerpClientState = 'awaiting-server-key' | 'awaiting-server-info' | 'ready' | 'closed'

export type DerpClientEvent =
  | { type: 'connected'; serverKey: Uint8Array; serverInfo: ServerInfo }
  | { type: 'packet'; source: Uint8Array; packet: Uint8Array }
  | { type: 'peer-gone'; key: Uint8Array; reason: number }
  | { type: 'peer-present'; key: Uint8Array }
  | { type: 'health'; problem: string }
  | { type: 'restarting'; reconnectInMs: number; tryForMs: number }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'closed'; reason: string }

export class DerpClientError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DerpClientError'
  }
}

export interface DerpSessionCounters {
  packetsSent: number
  packetsReceived: number
  droppedRateLimited: number
  droppedNotReady: number
  droppedOversize: number
  unknownFrames: number
}

export class DerpClientSession {
  state: DerpClientState = 'awaiting-server-key'
  readonly publicKey: Uint8Array
  serverKey: Uint8Array | undefined
  serverInfo: ServerInfo | undefined
  closeReason: string | undefined
  readonly counters: DerpSessionCounters = {
    packetsSent: 0,
    packetsReceived: 0,
    droppedRateLimited: 0,
    droppedNotReady: 0,
    droppedOversize: 0,
    unknownFrames: 0,
  }

  private readonly reader = new FrameReader()
  private readonly output: OutputBuffer
  private readonly events: DerpClientEvent[] = []
  private eventHead = 0
  private bucket: TokenBucket | undefined
  private lastHeardAt: number
  private pingDeadline: number | undefined
  private loginDeadline: number | undefined
  private held: boolean
  private readonly pingIntervalMs: number
  private readonly pingTimeoutMs: number
  private preferred = false

  constructor(
    private readonly options: DerpClientSessionOptions,
    now: number,
  ) {
    this.publicKey = publicKeyOf(options.privateKey)
    this.output = new OutputBuffer(options.messageBytes)
    this.pingIntervalMs = options.pingIntervalMs ?? 15_000
    this.pingTimeoutMs = options.pingTimeoutMs ?? 10_000
    this.held = options.holdLogin === true
    this.loginDeadline = this.held ? undefined : now + (options.loginTimeoutMs ?? 10_000)
    this.lastHeardAt = now
  }

  /** Whether the login waits for `login()` (see `holdLogin`). */
  get loginHeld(): boolean {
    return this.held
  }

  /** Lets a held login proceed: ClientInfo goes out now (or as soon as the ServerKey arrives); the login deadline starts. */
  login(now: number): void {
    if (!this.held || this.state === 'closed') return
    this.held = false
    this.loginDeadline = now + (this.options.loginTimeoutMs ?? 10_000)
    if (this.serverKey) this.sendClientInfo()
  }

  /** Bytes from the relay. A protocol violation closes the session with a `closed` event. */
  receive(bytes: Uint8Array, now: number): void {
    if (this.state === 'closed') return
    this.reader.push(bytes)
    this.lastHeardAt = now
    this.pingDeadline = undefined
    try {
      for (let raw = this.reader.next(); raw; raw = this.reader.next()) {
        this.handle(decodeFrame(raw.type, raw.payload), now)
        if (this.isClosed()) return
      }
    } catch (error) {
      if (error instanceof DerpFrameError || error instanceof DerpLoginError || error instanceof DerpClientError) this.close(error.message)
      else throw error
    }
  }

  /**
   * Queues a packet for `destination`. Returns false (and counts why) when it was dropped: not
   * logged in yet, over 64 KiB, or over the relay's announced token bucket.
   */
  send(destination: Uint8Array, packet: Uint8Array, now: number): boolean {
    if (!this.admits(packet)) return false
    if (destination.length !== KEY_LENGTH) throw new DerpClientError(`destination key must be ${KEY_LENGTH} bytes, got ${destination.length}`)
    const length = FRAME_HEADER_LENGTH + KEY_LENGTH + packet.length
    if (this.bucket && !this.bucket.take(length, now)) {
      this.counters.droppedRateLimited++
      return false
    }
    const out = this.output.reserve(length)
    writeHeader(out, 0, FrameType.SendPacket, KEY_LENGTH + packet.length)
    out.set(destination, FRAME_HEADER_LENGTH)
    out.set(packet, FRAME_HEADER_LENGTH + KEY_LENGTH)
    this.counters.packetsSent++
    return true
  }

  /** Whether a packet may be sent now: logged in and at most 64 KiB; counts the drop when not. */
  private admits(packet: Uint8Array): boolean {
    if (this.state !== 'ready') {
      this.counters.droppedNotReady++
      return false
    }
    if (packet.length > MAX_PACKET_SIZE) {
      this.counters.droppedOversize++
      return false
    }
    return true
  }

  /** Tells the relay whether it is our home relay; remembered and re-sent after login. */
  notePreferred(preferred: boolean): void {
    this.preferred = preferred
    if (this.state === 'ready') this.write({ type: 'note-preferred', preferred })
  }

  /**
   * A packet from `source` (a client of ours) for `destination` (a client of the relay we are
   * logged in to as a mesh peer): DERP's ForwardPacket. Mesh peers are not rate-limited
   * (derpserver exempts them). False when not logged in or over 64 KiB.
   */
  forwardPacket(source: Uint8Array, destination: Uint8Array, packet: Uint8Array): boolean {
    if (!this.admits(packet)) return false
    this.write({ type: 'forward-packet', source, destination, packet })
    this.counters.packetsSent++
    return true
  }

  /** Sends a Ping; the relay's Pong arrives as a `pong` event. */
  ping(data: Uint8Array): void {
    if (this.state === 'ready') this.write({ type: 'ping', data })
  }

  /** The next coalesced message to write, or undefined. */
  takeOutput(): Uint8Array | undefined {
    return this.output.take()
  }

  get hasOutput(): boolean {
    return !this.output.isEmpty
  }

  takeEvent(): DerpClientEvent | undefined {
    if (this.eventHead >= this.events.length) {
      if (this.eventHead > 0) {
        this.events.length = 0
        this.eventHead = 0
      }
      return undefined
    }
    const event = this.events[this.eventHead]!
    this.events[this.eventHead++] = undefined as unknown as DerpClientEvent
    return event
  }

  poll(now: number): void {
    if (this.state === 'closed') return
    if (this.state !== 'ready') {
      if (this.loginDeadline !== undefined && now >= this.loginDeadline) this.close('login timed out')
      return
    }
    if (this.pingDeadline !== undefined) {
      if (now >= this.pingDeadline) this.close(`relay stopped responding (no reply within ${this.pingTimeoutMs} ms of a ping)`)
      return
    }
    if (now - this.lastHeardAt >= this.pingIntervalMs) {
      this.write({ type: 'ping', data: randomBytes(8) })
      this.pingDeadline = now + this.pingTimeoutMs
    }
  }

  nextEvent(): number | undefined {
    if (this.state === 'closed') return undefined
    if (this.state !== 'ready') return this.loginDeadline
    return this.pingDeadline ?? this.lastHeardAt + this.pingIntervalMs
  }

  /** Ends the session (idempotent); a `closed` event carries the reason. */
  close(reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.closeReason = reason
    this.output.clear()
    this.events.push({ type: 'closed', reason })
  }

  get name(): string {
    return formatNodeKey(this.publicKey)
  }

  /** A method, so that narrowing of `state` does not survive calls that may close the session. */
  isClosed(): boolean {
    return this.state === 'closed'
  }

  private write(frame: DerpFrame): void {
    writeFrame(frame, this.output.reserve(encodedLength(frame)))
  }

  private handle(frame: DerpFrame, now: number): void {
    switch (this.state) {
      case 'awaiting-server-key':
        if (frame.type !== 'server-key') throw new DerpLoginError(`expected ServerKey from the relay, got ${frame.type}`)
        this.onServerKey(frame.key)
        return
      case 'awaiting-server-info':
        if (frame.type !== 'server-info') throw new DerpLoginError(`expected ServerInfo from the relay, got ${frame.type}`)
        this.onServerInfo(frame.sealed, now)
        return
      case 'ready':
        this.handleReady(frame)
        return
      case 'closed':
        return
    }
  }

  private sharedKey: Uint8Array | undefined

  private onServerKey(key: Uint8Array): void {
    if (this.options.expectedServerKey && !equalBytes(key, this.options.expectedServerKey)) {
      throw new DerpLoginError(`relay key ${formatNodeKey(key)} is not the expected ${formatNodeKey(this.options.expectedServerKey)}`)
    }
    this.serverKey = key.slice()
    try {
      this.sharedKey = boxKey(this.options.privateKey, this.serverKey)
    } catch (error) {
      throw new DerpLoginError(`relay key is unusable: ${(error as Error).message}`)
    }
    this.state = 'awaiting-server-info'
    if (!this.held) this.sendClientInfo()
  }

  /** derp/derp_client.go sendClientKey: our key, then the sealed ClientInfo JSON. */
  private sendClientInfo(): void {
    const info: Record<string, unknown> = { version: PROTOCOL_VERSION, CanAckPings: this.options.canAckPings ?? true }
    if (this.options.meshKey !== undefined) info.meshKey = this.options.meshKey
    const sealed = sealJson(this.sharedKey!, info)
    this.write({ type: 'client-info', clientKey: this.publicKey, sealed })
  }

  private onServerInfo(sealed: Uint8Array, now: number): void {
    const info = parseServerInfo(openJson(this.sharedKey!, sealed, 'ServerInfo'))
    if (info.version !== PROTOCOL_VERSION) {
      throw new DerpLoginError(`relay speaks DERP protocol version ${info.version ?? 'unknown'}, this client speaks ${PROTOCOL_VERSION}`)
    }
    if (info.TokenBucketBytesPerSecond) {
      this.bucket = new TokenBucket(info.TokenBucketBytesPerSecond, info.TokenBucketBytesBurst || info.TokenBucketBytesPerSecond, now)
    }
    this.serverInfo = info
    this.state = 'ready'
    if (this.preferred) this.write({ type: 'note-preferred', preferred: true })
    if (this.options.watchConnections) this.write({ type: 'watch-conns' })
    this.events.push({ type: 'connected', serverKey: this.serverKey!, serverInfo: info })
  }

  private handleReady(frame: DerpFrame): void {
    switch (frame.type) {
      case 'recv-packet':
        this.counters.packetsReceived++
        // Views into the received chunk; the chunk is never reused, so handing them out is safe.
        this.events.push({ type: 'packet', source: frame.source, packet: frame.packet })
        return
      case 'keep-alive':
        return
      case 'ping':
        this.write({ type: 'pong', data: frame.data })
        return
      case 'pong':
        this.events.push({ type: 'pong', data: frame.data })
        return
      case 'peer-gone':
        this.events.push({ type: 'peer-gone', key: frame.key, reason: frame.reason ?? 0 })
        return
      case 'peer-present':
        this.events.push({ type: 'peer-present', key: frame.key })
        return
      case 'health':
        this.events.push({ type: 'health', problem: frame.problem })
        return
      case 'restarting':
        this.events.push({ type: 'restarting', reconnectInMs: frame.reconnectInMs, tryForMs: frame.tryForMs })
        return
      default:
        this.counters.unknownFrames++
        return
    }
  }
}
