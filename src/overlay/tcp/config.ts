export interface KeepAliveConfig {
  /** Idle time before the first probe. */
  idleMs: number
  intervalMs: number
  /** Unanswered probes before the connection is declared dead. */
  count: number
}

export interface TcpConfig {
  /** Bytes the application may queue ahead of the peer's acknowledgements. */
  sendBufferSize: number
  /** Bytes held for the application, in order or not: the window we start with. */
  receiveBufferSize: number
  /**
   * Receive-window autotuning cap: the window grows from `receiveBufferSize` with the measured
   * bandwidth-delay product (twice the bytes the application read in one RTT) up to this many
   * bytes. Equal to `receiveBufferSize` turns autotuning off.
   */
  maxReceiveWindow: number
  /** The send buffer grows from `sendBufferSize` to twice the congestion window, up to this. */
  maxSendBuffer: number
  noDelay: boolean
  keepAlive: KeepAliveConfig | undefined
  /** Longest a lone full segment waits for its ACK (RFC 9293 requires < 500 ms, we keep ≤ 200). */
  delayedAckMs: number
  /** 2 × MSL. */
  timeWaitMs: number
  synRetries: number
  /** Retransmission timeouts of one segment before the connection is given up. */
  maxRetransmissions: number
  minRtoMs: number
  windowScaling: boolean
  timestamps: boolean
  sack: boolean
}

export const DEFAULT_TCP_CONFIG: TcpConfig = {
  sendBufferSize: 1 << 20,
  receiveBufferSize: 1 << 20,
  // The largest window that window scale 5 can express, the scale a 1 MiB buffer negotiates:
  // the default SYN stays what it was. Long fat paths want more (e.g. 16 MiB, scale 8).
  maxReceiveWindow: 0xffff * 32,
  maxSendBuffer: 4 << 20,
  noDelay: false,
  keepAlive: undefined,
  delayedAckMs: 40,
  timeWaitMs: 60_000,
  synRetries: 6,
  maxRetransmissions: 15,
  minRtoMs: 200,
  windowScaling: true,
  timestamps: true,
  sack: true,
}

export const DEFAULT_KEEPALIVE: KeepAliveConfig = { idleMs: 7_200_000, intervalMs: 75_000, count: 9 }
