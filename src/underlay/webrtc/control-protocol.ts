// Messages between the worker's WebRtcUnderlay and the page's WebRtcPageAgent, over the
// MessagePort given to `add-underlay { kind: 'webrtc', port }`. Peers are named by their node
// key in hex. RTCPeerConnection exists only in windows, so the page does ICE and SDP while the
// worker decides when, and carries the signals (sealed disco messages over the relay).
import type { WebRtcSignal } from '../disco/messages.ts'

export type WorkerToPageMessage =
  /** Start a session as the offering side: create the connection and the datachannel. */
  | { type: 'connect'; peer: string; session: number }
  /** A signal from the peer (arrived as a disco message). An offer starts an answering session. */
  | { type: 'signal'; peer: string; signal: WebRtcSignal }
  /** Tear down the session's RTCPeerConnection. */
  | { type: 'close'; peer: string; session: number }
  /** The ICE servers the coordination service named (the relay's STUN, TURN); used unless the page set its own. */
  | { type: 'ice-servers'; servers: RTCIceServer[] }

export type PageToWorkerMessage =
  /** A signal for the peer: the worker seals it and sends it over the relay. */
  | { type: 'signal'; peer: string; signal: WebRtcSignal }
  /** The session's datachannel, transferred (created in the same task, as transfer requires). */
  | { type: 'channel'; peer: string; session: number; channel: RTCDataChannel }
  /** The session's datachannel, kept by the page and bridged over `port` (BridgePortMessage). */
  | { type: 'bridged'; peer: string; session: number; port: MessagePort }
  /** The session could not connect (ICE failed, SDP rejected). */
  | { type: 'failed'; peer: string; session: number; reason: string }
  /** The candidate types of the ICE pair the session uses now (from the selected candidate pair's stats). */
  | { type: 'candidates'; peer: string; session: number; local: CandidateType; remote: CandidateType }
  /** ICE gathering of the session finished (diagnostics only: candidates are trickled as they come). */
  | { type: 'gathered'; peer: string; session: number }

/** RTCIceCandidate.type (RFC 8445 §5.1.1): on this machine, behind a NAT (STUN), learnt from the peer, or through TURN. */
export type CandidateType = 'host' | 'srflx' | 'prflx' | 'relay' | 'unknown'

export const DATACHANNEL_LABEL = 'burrow-wg'
/**
 * The datagram channel is negotiated out of band (both ends create it with this id) on the
 * RTCPeerConnection simple-peer holds: simple-peer's own channel cannot be transferred to a worker
 * once it is in use, and a negotiated one can be handed over in the task that created it.
 * In-band channel ids start at 0/1, so this one never collides with simple-peer's.
 */
export const DATACHANNEL_ID = 100
/** One WireGuard datagram per message, unordered, never retransmitted: a datagram path, like UDP. */
export const DATACHANNEL_INIT: RTCDataChannelInit = { ordered: false, maxRetransmits: 0 }
