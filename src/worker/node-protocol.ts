// The messages between the page's `Burrow` object and the node runtime in the dataplane worker.
//
// They travel on their own MessagePort (the "node control port"), handed to the worker once with
// `{ type: NODE_CONTROL_MESSAGE, port }`, so the dataplane protocol (protocol.ts) stays as it is.
// The page calls (`join`, `leave`), the runtime answers each call once and pushes the peer map,
// its state and errors on its own. Private keys never appear in any of these messages.
import type { NetworkInfo } from '../control/protocol.ts'
import type { SerializedError } from './protocol.ts'

export const NODE_CONTROL_MESSAGE = 'burrow-node-control'

export type KeyStorage = 'indexeddb' | 'memory' | 'file'

export interface JoinOptions {
  /** The relay's base URL (`http://127.0.0.1:8080`); coordination at /control, DERP at /derp. */
  controlURL: string
  /** Needed the first time this node key registers. */
  authKey?: string
  hostname: string
  storage: KeyStorage
  /** Which stored identity to use, so one origin (or one state directory) can hold several nodes. */
  keyName: string
  /** Only for `file` storage (Node). */
  stateDir?: string
}

export interface JoinResult {
  nodeKey: string
  hostname: string
  /** [IPv4, IPv6]. */
  addresses: [string, string]
  network: NetworkInfo
  /** The DERP URL of our home relay. */
  relayURL: string
}

export type NodeState = 'connecting' | 'online' | 'reconnecting' | 'failed' | 'closed'

/** One peer as the worker sees it; the page adds the round-trip time it measures itself. */
export interface WorkerPeerInfo {
  nodeKey: string
  hostname: string
  addresses: [string, string]
  online: boolean
  path: 'relay' | 'direct'
  /** The relay this peer receives on (its home relay, or ours when it reported none). */
  relayURL: string
  rxBytes: number
  txBytes: number
  /** Epoch-like ms on the `sharedNow()` clock, or null before the first handshake. */
  lastHandshake: number | null
}

export type NodeCall = { op: 'join'; options: JoinOptions } | { op: 'leave' }

export interface NodeCallEnvelope {
  type: 'call'
  id: number
  call: NodeCall
}

export type NodeWorkerMessage =
  | { type: 'result'; id: number; ok: true; value: unknown }
  | { type: 'result'; id: number; ok: false; error: SerializedError & { status?: number } }
  | { type: 'peers'; peers: WorkerPeerInfo[] }
  | { type: 'state'; state: NodeState; reason?: string }
  | { type: 'error'; error: SerializedError & { status?: number } }
