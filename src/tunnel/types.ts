// The public types of the tunnel API (see the agreed contract); kept apart so every file can share them.

export type PeerId = number

export interface TunnelOptions {
  privateKey: Uint8Array
  /** Randomness source; tests pass a seeded one. Defaults to crypto randomBytes. */
  random?: (length: number) => Uint8Array
  /** Max packets queued per peer while a handshake is pending (drop-oldest). Default 128. */
  queueLimit?: number
  /**
   * Milliseconds added to `now` to get Unix wall time for the TAI64N handshake timestamp.
   * Default: `Date.now() - now` taken at the first initiation (equal to `Date.now() -
   * performance.now()` when `now` is performance.now(), and still right when it is not).
   */
  wallClockOffset?: number
}

export interface PeerOptions {
  publicKey: Uint8Array
  presharedKey?: Uint8Array
  /** Seconds; 0/undefined = off. */
  persistentKeepalive?: number
}

export type DropReason =
  | 'malformed'
  | 'unknown-type'
  | 'bad-mac1'
  | 'bad-mac2'
  | 'unknown-peer'
  | 'stale-timestamp'
  | 'decrypt-failed'
  | 'replayed'
  | 'unknown-index'
  | 'expired-session'
  | 'handshake-failed'
  | 'queue-overflow'
  | 'weak-key'
  /** Under load, a handshake message from a source over its rate (see ratelimiter.ts). */
  | 'rate-limited'

export interface ReceiveResult {
  /** The authenticated peer this datagram came from (undefined when none was authenticated). */
  peer?: PeerId
  /** Decrypted IP packets for the overlay (keepalives are not included). */
  packets: Uint8Array[]
  /** WireGuard messages to send back to where the datagram came from (handshake response, cookie reply, queued data flushed after a handshake completes, keepalive). */
  replies: Uint8Array[]
  /** Set when the datagram was dropped; no state changed. */
  dropped?: DropReason
}

/**
 * Per-peer counters. Bytes are whole WireGuard datagrams (handshake and transport) sent to or
 * authenticated from the peer; packets are overlay IP packets, keepalives excluded. Drops count
 * datagrams attributed to this peer, except 'queue-overflow' and 'handshake-failed', which count
 * queued packets discarded (oldest first when the queue is full; all of them when a handshake
 * gives up after RekeyAttemptTime).
 */
export interface PeerStats {
  txBytes: number
  rxBytes: number
  txPackets: number
  rxPackets: number
  lastHandshake?: number
  drops: Partial<Record<DropReason, number>>
}

export type DropCounts = Partial<Record<DropReason, number>>

export function countDrop(drops: DropCounts, reason: DropReason, count = 1): void {
  drops[reason] = (drops[reason] ?? 0) + count
}

/** Thrown inside the handshake path to abandon a message; carries the reason it is counted under. */
export class MessageDropped extends Error {
  constructor(
    readonly reason: DropReason,
    detail: string,
  ) {
    super(`${reason}: ${detail}`)
    this.name = 'MessageDropped'
  }
}

export class UnknownPeerError extends Error {
  constructor(readonly peer: PeerId) {
    super(`no peer with id ${peer} in this tunnel`)
    this.name = 'UnknownPeerError'
  }
}
