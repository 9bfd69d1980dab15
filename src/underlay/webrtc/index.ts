// Page side: WebRtcPageAgent. Worker side: WebRtcUnderlay and DirectPaths (the node agent,
// src/agent, adds them to its dataplane).
export { WebRtcPageAgent, type WebRtcPageAgentOptions } from './page-agent.ts'
export { WebRtcUnderlay, WebRtcUnderlayError, type WebRtcUnderlayEvents, type WebRtcUnderlayOptions } from './webrtc-underlay.ts'
export { DirectPaths, type DirectPathsOptions, type DirectPathCounters } from './direct-paths.ts'
export { ChannelLink, CHANNEL_LINK_DEFAULTS, type ChannelLinkOptions, type ChannelLinkStats, type DatagramChannel } from './channel-link.ts'
export { DatagramQueue, type DatagramQueueLimits } from './datagram-queue.ts'
export { PortDatagramChannel, bridgeDataChannel, type BridgePortMessage } from './port-channel.ts'
export { DATACHANNEL_INIT, DATACHANNEL_LABEL, type PageToWorkerMessage, type WorkerToPageMessage } from './control-protocol.ts'
