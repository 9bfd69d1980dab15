// The typed errors of the public `Burrow` API.

export type BurrowErrorCode =
  /** The auth key was refused (coordination status 401). */
  | 'unauthorized'
  /** The node could not prove its key, or the key is not acceptable (403). */
  | 'forbidden'
  /** Another connection of this node replaced ours (409): the same identity is running elsewhere. */
  | 'replaced'
  /** The coordination service could not be reached or did not answer in time. */
  | 'unreachable'
  /** The coordination service refused the request for another reason (its status is in `status`). */
  | 'coordination'
  /** An option passed to `Burrow.start` (or a call) is invalid. */
  | 'bad-options'
  /** The key store failed (IndexedDB unavailable, unreadable key file, …). */
  | 'key-store'
  /** The dataplane worker failed or reported an error. */
  | 'worker'
  /** The node is closed. */
  | 'closed'
  /** A name given to connect/fetch/ping is neither an IP address nor a peer's hostname. */
  | 'unknown-host'
  /** `node.proxy()` could not start (no Service Worker support, or the worker script or bridge failed to load). */
  | 'proxy'
  /** The tailnet control server does not hold the control key (`mkey:`) we used: the Noise handshake failed. */
  | 'control-key'
  /** The tailnet control server does not support our capability version. */
  | 'unsupported-version'
  /** The control server sent something that does not parse (a garbled map message, bad HTTP/2, …). */
  | 'protocol'

export class BurrowError extends Error {
  override readonly name = 'BurrowError'
  constructor(
    readonly code: BurrowErrorCode,
    message: string,
    /** The coordination service's HTTP-like status, when the error came from it. */
    readonly status?: number,
  ) {
    super(message)
  }
}

/** Maps a coordination status to an error code (the same mapping every control plane uses). */
export { controlErrorCode as codeForStatus } from './control/control-plane.ts'
