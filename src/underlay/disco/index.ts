export { DiscoError, type DiscoErrorCode } from './errors.ts'
export {
  DISCO_VERSION,
  TX_ID_LENGTH,
  NODE_KEY_LENGTH,
  ADDR_PORT_LENGTH,
  DiscoType,
  UNSPECIFIED_ADDR_PORT,
  encodeDiscoMessage,
  decodeDiscoMessage,
  type AddrPort,
  type DiscoPing,
  type DiscoPong,
  type DiscoCallMeMaybe,
  type DiscoWebRtcSignal,
  type WebRtcSignal,
  type DiscoMessage,
} from './messages.ts'
export { DISCO_MAGIC, DISCO_KEY_LENGTH, DISCO_HEADER_LENGTH, looksLikeDisco, discoSender, sealDisco, openDisco, DiscoKeyring } from './envelope.ts'
export { PeerPathSelector, PATH_DEFAULTS, type PathKind, type PathAction, type PathStatus, type PathSelectorOptions } from './path-selector.ts'
