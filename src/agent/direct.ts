// The direct-path manager: the WebRTC underlay (its control port is served by the page's
// WebRtcPageAgent) and DirectPaths, wired into a started dataplane. The node agent owns one of
// these per join when the page handed over a WebRTC port and the node did not opt out, and hands
// it every disco datagram; without one (Node.js, `direct: false`) every peer stays on its relay.
import { formatNodeKey, parseKey } from '../crypto/index.ts'
import type { DriverClock } from '../clock/clock.ts'
import type { DiscoDatagram } from '../dataplane/core.ts'
import type { UnderlayId } from '../dataplane/transport.ts'
import { DiscoError } from '../underlay/disco/errors.ts'
import type { PathKind } from '../underlay/disco/path-selector.ts'
import { DirectPaths, type UpgradePhases } from '../underlay/webrtc/direct-paths.ts'
import { WebRtcUnderlay } from '../underlay/webrtc/webrtc-underlay.ts'
import type { WorkerContext } from '../worker/host.ts'
import type { DirectDebugInfo, DirectPathInfo } from './protocol.ts'

export interface NodeDirectOptions {
  context: WorkerContext
  /** The page's end of this port runs a WebRtcPageAgent. */
  webrtcPort: MessagePort
  /** The node's disco key pair (persisted next to the node key; its public half is in the coordination entry). */
  discoPrivateKey: Uint8Array
  homeRelayUnderlay: UnderlayId
  /** Test hook: every WebRTC signal that arrives is dropped, so no direct path can be set up. */
  dropSignals?: boolean
  /**
   * Start a peer's WebRTC attempt as soon as it is known (default true). Off in Node, where plain
   * UDP gets the first try: a Node peer proves UDP within a round trip or two and is then taken away
   * from WebRTC, and one torn down mid-negotiation only costs work. A tab still connects at once: it
   * offers, or asks us to, and answering never waits.
   */
  attemptOnPeerKnown?: boolean
  /** No attempt of our own before this time on `clock` (DirectPathsOptions.holdAttemptsUntil). */
  holdAttemptsUntil?: number
  /** The agent's clock (default: the system clock). */
  clock?: DriverClock
  onPathChange(nodeKey: string, path: PathKind, rttMs: number | null): void
}

/** The upgrade phases as ms after the peer became known. */
function relativePhases(phases: UpgradePhases | undefined): Record<string, number> {
  const out: Record<string, number> = {}
  if (!phases) return out
  for (const [name, at] of Object.entries(phases)) if (name !== 'known' && typeof at === 'number') out[name] = Math.round((at - phases.known) * 10) / 10
  return out
}

export class NodeDirect {
  readonly paths: DirectPaths
  readonly webrtc: WebRtcUnderlay
  /** WebRTC signals dropped by the `dropSignals` test hook. */
  droppedSignals = 0
  private readonly underlay: UnderlayId
  private stopped = false

  constructor(private readonly options: NodeDirectOptions) {
    const { core, driver, reportError } = options.context
    this.webrtc = new WebRtcUnderlay(options.webrtcPort, { ourKey: core.publicKey }, reportError)
    this.underlay = driver.addUnderlay(this.webrtc)
    this.paths = new DirectPaths({
      driver,
      discoPrivateKey: options.discoPrivateKey,
      relayUnderlay: options.homeRelayUnderlay,
      webrtc: this.webrtc,
      webrtcUnderlay: this.underlay,
      reportError,
      // The dataplane's counters are how DirectPaths notices a peer turning active (ICMP probes,
      // a first connection); read them every second even while idle so a new peer goes direct
      // within a few seconds rather than after the 5 s idle cadence plus WebRTC setup.
      idleCheckMs: 1000,
      // The page probes every online peer every couple of seconds, so each one turns active
      // anyway: start its WebRTC attempt when it appears rather than at the first probe.
      attemptOnPeerKnown: options.attemptOnPeerKnown ?? true,
      ...(options.holdAttemptsUntil !== undefined ? { holdAttemptsUntil: options.holdAttemptsUntil } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      onPathChange: (nodeKey, path, rttMs) => options.onPathChange(formatNodeKey(nodeKey), path, rttMs ?? null),
    })
  }

  /** Adds or updates a peer of the coordination map; `relayUnderlay` reaches it. */
  setPeer(nodeKey: string, discoKey: string, relayUnderlay: UnderlayId): void {
    this.paths.setPeer(parseKey(nodeKey), parseKey(discoKey), relayUnderlay)
  }

  removePeer(nodeKey: string): void {
    this.paths.removePeer(parseKey(nodeKey))
  }

  /** The peer's path and, while direct, the round-trip time of its last disco pong and the ICE candidate types in use. */
  pathOf(nodeKey: string): { path: PathKind; rttMs: number | null; candidates: { local: string; remote: string } | null } {
    const key = parseKey(nodeKey)
    const status = this.paths.status(key)
    if (!status) return { path: 'relay', rttMs: null, candidates: null }
    const direct = status.path === 'direct'
    return { path: status.path, rttMs: direct ? (status.rttMs ?? null) : null, candidates: direct ? (this.webrtc.candidateTypes(key) ?? null) : null }
  }

  /** The STUN/TURN servers the coordination service named, for the side that runs the connections. */
  setIceServers(servers: RTCIceServer[]): void {
    this.webrtc.setIceServers(servers)
  }

  /** Ends the WebRTC session with a peer (test hook): its channel closes and traffic returns to the relay. */
  closeDirect(nodeKey: string): boolean {
    const key = parseKey(nodeKey)
    const wasOpen = this.webrtc.isOpen(key)
    this.webrtc.disconnect(key, 'closed by _debugCloseDirect')
    return wasOpen
  }

  debugInfo(nodeKeys: string[]): DirectDebugInfo {
    const peers: DirectPathInfo[] = []
    for (const nodeKey of nodeKeys) {
      const key = parseKey(nodeKey)
      const status = this.paths.status(key)
      if (!status) continue
      const link = this.webrtc.linkStats(key)
      peers.push({
        nodeKey,
        path: status.path,
        direct: status.direct,
        rttMs: status.rttMs ?? null,
        failures: status.failures,
        channel: link ? { sent: link.sent, received: link.received, dropped: link.dropped } : null,
        phases: relativePhases(this.paths.phases(key)),
      })
    }
    return { enabled: true, counters: { ...this.paths.counters, droppedSignals: this.droppedSignals }, peers }
  }

  handleDisco(disco: DiscoDatagram): void {
    if (this.stopped) return
    if (this.options.dropSignals && this.isSignal(disco.datagram)) {
      this.droppedSignals++
      return
    }
    this.paths.handleDisco(disco)
  }

  /** Closes every WebRTC session (before the dataplane stops, so the byes still reach the peers). */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.paths.stop()
  }

  private isSignal(datagram: Uint8Array): boolean {
    try {
      return this.paths.keyring.open(datagram).message.type === 'webrtc-signal'
    } catch (error) {
      if (error instanceof DiscoError) return false
      throw error
    }
  }
}
