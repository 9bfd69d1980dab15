// The messages between the page and the dataplane worker.
//
// Control: the page posts `RequestEnvelope`s to the worker; the worker answers each with exactly
// one `ResultMessage` carrying the same id (a rejected operation answers `ok: false` with the
// error's name, code and message). Failures not tied to a request arrive as `WorkerErrorMessage`.
//
// Packets never travel on the control channel. Each overlay gets its own MessagePort
// (`OverlayPortMessage`) and each port underlay its own (`UnderlayPortMessage`); packets cross
// as transferred ArrayBuffers, one per packet, so nothing on the hot path is copied by
// structured clone.
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
 * MessagePort (another worker, a bridged RTCDataChannel). Other kinds are registered in the
 * worker by the transports that provide them (`registerUnderlayKind`).
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

export type ResultMessage =
  | { type: 'result'; id: number; ok: true; value: unknown }
  | { type: 'result'; id: number; ok: false; error: SerializedError }

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
}

/**
 * On an overlay port, both directions. `wake-at` (page → worker) asks for one `wake` at instant
 * `at` on the shared clock (`sharedNow()`), replacing any earlier request; `null` cancels. The
 * worker's timers are not throttled in hidden tabs, so it clocks the page's TCP/IP stack.
 */
export type OverlayPortMessage =
  | { type: 'packets'; buffers: ArrayBuffer[] }
  | { type: 'wake-at'; at: number | null }
  | { type: 'wake'; now: number }

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
  constructor(serialized: SerializedError, readonly op?: Op) {
    super(op ? `${op}: ${serialized.message}` : serialized.message)
    this.name = serialized.name
    this.code = serialized.code
  }
}
