// WireGuard (whitepaper §5–6), sans-IO: see tunnel.ts for the device and docs/ARCHITECTURE.md for the facts it follows.
export { Tunnel } from './tunnel.ts'
export { UnknownPeerError } from './types.ts'
export type { DropReason, PeerId, PeerOptions, PeerStats, ReceiveResult, TunnelOptions } from './types.ts'
export { WeakKeyError } from '../crypto/index.ts'
export {
  COOKIE_REFRESH_TIME,
  KEEPALIVE_TIMEOUT,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME,
  REKEY_ATTEMPT_TIME,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
} from './timers.ts'
export {
  COOKIE_REPLY_LENGTH,
  INITIATION_LENGTH,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  RESPONSE_LENGTH,
  TRANSPORT_HEADER_LENGTH,
  TRANSPORT_MIN_LENGTH,
  messageType,
} from './messages.ts'
