// The page-side API of the dataplane worker. Code that runs inside the worker (transports, path
// selection) constructs a WorkerHost (`./host.ts`) with its underlay kinds and extensions.
export { BurrowWorker, OverlayPort, WorkerErrorEvent, type WorkerLike } from './client.ts'
export { createDataplaneWorker } from './launch.ts'
export {
  sharedNow,
  transferable,
  transferables,
  WorkerOperationError,
  type KeyInput,
  type StartConfig,
  type WorkerPeerConfig,
  type UnderlaySpec,
  type WorkerStatus,
  type PeerStatus,
  type Request,
  type Responses,
  type WorkerMessage,
  type OverlayPortMessage,
  type UnderlayPortMessage,
} from './protocol.ts'
