// The messages between the page and the dataplane worker.
//
// Control: the page posts `RequestEnvelope`s to the worker; the worker answers each with exactly
// one `ResultMessage` carrying the same id (a rejected operation answers `ok: false` with the
// error's name, code and message). Failures not tied to a request arrive as `WorkerErrorMessage`.
//
// Packets never travel on the control channel. Each overlay gets its own MessagePort
// (`OverlayPortMessage`) and each port underlay its own (`UnderlayPortMessage`); packets cross
// as transferred ArrayBuffers, so nothing on the hot path is copied by structured clone; a batch
// of several packets travels packed back to back in one buffer (see `packPackets`), because each
// transferred buffer costs the sender, the receiver and both garbage collectors far more than
// copying its bytes once.
import type { DriverCounters } from '../dataplane/driver.ts'
import type { DropCounts } from '../dataplane/core.ts'

/** A key as raw bytes, base64 (wg style) or `nodekey:` + hex. */
export type KeyInput = Uint8Array | string

export interface WorkerPeerConfig {
  publicKey: KeyInput
  /** Prefixes like `10.0.0.2/32`, `fd00::/64` or bare addresses. */
  allowedIps: string[]
  presharedKey?: KeyInput
  /** Seconds; 0/undefined = off. */
  persistentKeepalive?: number
  /** Underlay (id from `add-underlay`) and endpoint to reach the peer on. */
  route?: { underlay: number; endpoint?: unknown }
}

export interface StartConfig {
  privateKey: KeyInput
  peers?: WorkerPeerConfig[]
}

/**
 * An underlay for the worker to create. `port` is built in: a point-to-point link over a
 * MessagePort (another worker, a bridged RTCDataChannel). Other kinds are the ones the worker's
 * WorkerHost was constructed with (`underlayKinds`).
 */
export interface UnderlaySpec {
  kind: string
  port?: MessagePort
  options?: unknown
}

export type Request =
  | { op: 'start'; config: StartConfig }
  | { op: 'add-peer'; peer: WorkerPeerConfig }
  | { op: 'remove-peer'; publicKey: KeyInput }
  | { op: 'add-underlay'; spec: UnderlaySpec }
  | { op: 'remove-underlay'; underlay: number }
  | { op: 'set-peer-route'; publicKey: KeyInput; underlay: number; endpoint?: unknown }
  /** `port` carries `OverlayPortMessage`s; `addresses` are the overlay addresses it serves. */
  | { op: 'attach-overlay'; port: MessagePort; addresses: string[] }
  | { op: 'detach-overlay'; overlay: number }
  | { op: 'status' }
  | { op: 'stop' }

export type Op = Request['op']

export interface Responses {
  start: { publicKey: string }
  'add-peer': { peer: number }
  'remove-peer': null
  'add-underlay': { underlay: number }
  'remove-underlay': null
  'set-peer-route': null
  'attach-overlay': { overlay: number }
  'detach-overlay': null
  status: WorkerStatus
  stop: null
}

export interface RequestEnvelope {
  id: number
  request: Request
}

export interface SerializedError {
  name: string
  /** The typed error's code, when it has one (`DataplaneError`, `WireError`, …). */
  code?: string
  message: string
}

export type ResultMessage = { type: 'result'; id: number; ok: true; value: unknown } | { type: 'result'; id: number; ok: false; error: SerializedError }

export interface WorkerErrorMessage {
  type: 'error'
  error: SerializedError
}

export type WorkerMessage = ResultMessage | WorkerErrorMessage

export interface PeerStatus {
  publicKey: string
  allowedIps: string[]
  txPackets: number
  txBytes: number
  rxPackets: number
  rxBytes: number
  /** When the last handshake completed, on the `sharedNow()` clock. */
  lastHandshake?: number
  drops: DropCounts
  route?: { underlay: number }
}

export interface WorkerStatus {
  started: boolean
  publicKey?: string
  peers: PeerStatus[]
  drops: DropCounts
  driver?: DriverCounters
  underlays: number[]
  overlays: number[]
  /** Counters the worker's extensions keep (the node agent: disco over DERP, packet-filter drops), by name. */
  counters?: Record<string, number>
}

/**
 * On an overlay port, both directions. `wake-at` (page → worker) asks for one `wake` at instant
 * `at` on the shared clock (`sharedNow()`), replacing any earlier request; `null` cancels. The
 * worker's timers are not throttled in hidden tabs, so it clocks the page's TCP/IP stack.
 */
export type OverlayPortMessage = PacketsMessage | { type: 'wake-at'; at: number | null } | { type: 'wake'; now: number }

/**
 * IP packets. Without `lengths`, one packet per buffer. With `lengths`, `buffers` holds exactly
 * one buffer with the packets back to back, `lengths[i]` bytes each, filling it exactly.
 */
export interface PacketsMessage {
  type: 'packets'
  buffers: ArrayBuffer[]
  lengths?: number[]
}

/** On a port underlay, both directions: WireGuard (or disco) datagrams. */
export interface UnderlayPortMessage {
  type: 'datagrams'
  buffers: ArrayBuffer[]
}

/** Milliseconds on a clock shared by the page and its workers (their `performance.now()` origins differ). */
export function sharedNow(): number {
  return performance.timeOrigin + performance.now()
}

/**
 * The buffer to transfer for `packet`: its own buffer when the view covers all of it, otherwise
 * a copy (transferring a partial view's buffer would detach bytes that belong to someone else).
 */
export function transferable(packet: Uint8Array): ArrayBuffer {
  const buffer = packet.buffer
  if (buffer instanceof ArrayBuffer && packet.byteOffset === 0 && packet.byteLength === buffer.byteLength) return buffer
  return packet.slice().buffer
}

export function transferables(packets: Uint8Array[]): ArrayBuffer[] {
  const buffers = new Array<ArrayBuffer>(packets.length)
  for (let i = 0; i < packets.length; i++) buffers[i] = transferable(packets[i]!)
  return buffers
}

/** The `packets` message for a batch, and the buffers to transfer with it: one packet as is, several packed into one buffer. */
export function packPackets(packets: Uint8Array[]): PacketsMessage {
  if (packets.length <= 1) return { type: 'packets', buffers: transferables(packets) }
  let total = 0
  const lengths = new Array<number>(packets.length)
  for (let i = 0; i < packets.length; i++) total += lengths[i] = packets[i]!.length
  const packed = new Uint8Array(total)
  let offset = 0
  for (const packet of packets) {
    packed.set(packet, offset)
    offset += packet.length
  }
  return { type: 'packets', buffers: [packed.buffer], lengths }
}

/**
 * The packets a `packets` message carries (views into its transferred buffers), or a description
 * of what is wrong with it.
 */
export function unpackPackets(message: { buffers?: unknown; lengths?: unknown }): Uint8Array[] | string {
  const { buffers, lengths } = message
  if (!Array.isArray(buffers)) return '"packets" message without an array of ArrayBuffers'
  for (const buffer of buffers) if (!(buffer instanceof ArrayBuffer)) return '"packets" message without an array of ArrayBuffers'
  if (lengths === undefined) {
    const packets = new Array<Uint8Array>(buffers.length)
    for (let i = 0; i < buffers.length; i++) packets[i] = new Uint8Array(buffers[i] as ArrayBuffer)
    return packets
  }
  if (!Array.isArray(lengths) || buffers.length !== 1) return 'a packed "packets" message needs one buffer and an array of `lengths`'
  const buffer = buffers[0] as ArrayBuffer
  const packets = new Array<Uint8Array>(lengths.length)
  let offset = 0
  for (let i = 0; i < lengths.length; i++) {
    const length: unknown = lengths[i]
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || offset + length > buffer.byteLength) {
      return `a packed "packets" message has a bad length at ${i} (lengths must be integers that fill its ${buffer.byteLength}-byte buffer)`
    }
    packets[i] = new Uint8Array(buffer, offset, length)
    offset += length
  }
  if (offset !== buffer.byteLength) return `a packed "packets" message's lengths add up to ${offset} bytes, its buffer holds ${buffer.byteLength}`
  return packets
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return typeof code === 'string' ? { name: error.name, code, message: error.message } : { name: error.name, message: error.message }
  }
  return { name: 'Error', message: String(error) }
}

/** An error reported by the worker, rebuilt on the page side. */
export class WorkerOperationError extends Error {
  override readonly name: string
  readonly code: string | undefined
  constructor(
    serialized: SerializedError,
    readonly op?: Op,
  ) {
    super(op ? `${op}: ${serialized.message}` : serialized.message)
    this.name = serialized.name
    this.code = serialized.code
  }
}
