// The two kinds of transport the dataplane driver moves packets between.
//
// Both are push-based: the driver calls `start(deliver)` when the transport is added and `stop()`
// when it is removed; the transport calls `deliver` with each batch it receives, and the driver
// calls `send` with each batch it produces. Packets travel in batches (arrays) so that a thread hop
// or a system call is paid once per batch, not once per packet.
//
// Ownership: a `Uint8Array` handed to `send` or `deliver` belongs to the receiver from then on
// (it may be transferred to another thread, which detaches it). Don't touch it after handing it over.

/** Identifies an underlay transport within one driver. */
export type UnderlayId = number
/** Identifies an overlay transport within one driver. */
export type OverlayId = number

/**
 * Where a datagram goes to or came from on one underlay: opaque to the dataplane, meaningful to
 * the transport (`{ address, port }` for UDP, a node key for a DERP relay, nothing for a
 * point-to-point WebRTC channel). The dataplane stores the endpoint an authenticated datagram came
 * from and hands it back unchanged to `send`.
 */
export type Endpoint = unknown

/**
 * A transport that carries WireGuard datagrams (and disco messages) between nodes: a DERP relay,
 * a WebRTC datachannel, a UDP socket.
 */
export interface UnderlayTransport<E = Endpoint> {
  /** Sends datagrams to one endpoint. Must not throw for network trouble: drop (and count) instead. */
  send(endpoint: E, datagrams: Uint8Array[]): void
  /** Begins delivering received datagrams, grouped by the endpoint they came from. Called once. */
  start(deliver: (endpoint: E, datagrams: Uint8Array[]) => void): void
  /** Stops delivering and releases resources. Called once, when the transport is removed. */
  stop(): void
  /**
   * Bytes that identify `endpoint` (e.g. IP address + port), used as the sender's address in
   * WireGuard's cookie MAC2. Transports without a meaningful address may omit it.
   */
  endpointBytes?(endpoint: E): Uint8Array
}

/**
 * A transport that carries plaintext IP packets between the dataplane and the local side: the
 * page's TCP/IP stack (through a MessagePort), a test harness, a TUN device.
 */
export interface OverlayTransport {
  /** Hands IP packets up to the local side. */
  send(packets: Uint8Array[]): void
  /** Begins delivering IP packets that the local side wants sent into the overlay. Called once. */
  start(deliver: (packets: Uint8Array[]) => void): void
  /** Stops delivering and releases resources. Called once, when the transport is removed. */
  stop(): void
}
