// The node agent: what turns the bare dataplane worker into a member of an overlay network.
// It lives next to its WorkerHost (in the dedicated worker, or in-process in Node) and owns
//  - the key material (node and disco keys from the key store; the page never sees them),
//  - one control plane (Burrow's coordination, or any other ControlPlane), made per join by the
//    factory it was constructed with,
//  - the relay pool (relay-pool.ts): a DERP connection to our home region, and to the home
//    region of each peer routed elsewhere, each one dataplane underlay,
//  - the direct-path manager (direct.ts), with a WebRTC port from the page,
//  - peer sync: every netmap goes through planPeerSync (peer-sync.ts, pure) and the operations
//    it returns are performed on the dataplane,
// and pushes the peer map with traffic counters, its state and errors to the page. Every part is
// passed in through the constructor; nothing registers itself globally.
import { formatNodeKey, parseKey, type KeyPair } from '../crypto/index.ts'
import type { ControlPlane, ControlPlaneError, ControlPlaneParams, Netmap, NetmapChange } from '../control/control-plane.ts'
import { loadOrCreateKeyPair, type KeyStore } from '../control/key-store.ts'
import { systemClock, type DriverClock, type Timer } from '../clock/clock.ts'
import { DataplaneError } from '../dataplane/errors.ts'
import type { DerpConnection } from '../underlay/derp/connection.ts'
import type { DerpDialer } from '../underlay/derp/dialer.ts'
import { DerpUnderlay } from '../underlay/derp/underlay.ts'
import { DerpDiscoResponder, type DerpDiscoVerdict } from '../underlay/disco/derp-responder.ts'
import type { DiscoDatagram } from '../dataplane/core.ts'
import { WorkerHost, type WorkerContext } from '../worker/host.ts'
import { serializeError, type SerializedError, type WorkerMessage } from '../worker/protocol.ts'
import { NodeDirect } from './direct.ts'
import { chooseHome, planPeerChange, planPeerSync, relayOf, type AppliedPeer, type PeerOp } from './peer-sync.ts'
import {
  NODE_CONTROL_MESSAGE,
  type JoinOptions,
  type JoinResult,
  type NodeCall,
  type NodeCallEnvelope,
  type NodeState,
  type NodeWorkerMessage,
  type WorkerPeerInfo,
} from './protocol.ts'
import { RelayPool } from './relay-pool.ts'

/** How long a peer-map change may wait before the peer list goes to the page. */
const PEER_PUSH_DELAY_MS = 50

/** Makes the control plane for one join; throws when the join's options do not suit it. */
export type ControlPlaneFor = (options: JoinOptions, params: ControlPlaneParams) => ControlPlane

export interface NodeAgentEnvironment {
  /** Opens DERP byte streams (the browser's WebSocket in a worker, `ws` in Node). */
  dial: DerpDialer
  /** The key store for a join's `storage` choice; throws a clear error for one it cannot provide. */
  keyStore(options: JoinOptions): KeyStore
  /** The control plane for a join (Burrow's coordination: `coordinationControlPlanes()`). */
  controlPlane: ControlPlaneFor
  /** The agent's timers (stats pushes, join deadlines) and, when given, the dataplane's. Default: the system clock. */
  clock?: DriverClock
  /** How often the peer map with fresh traffic counters is pushed to the page. Default 1 s. */
  statsIntervalMs?: number
  /** How long `join` waits for the first netmap before giving up. Default 20 s. */
  joinTimeoutMs?: number
  /** How long `join` waits for the home relay's login before resolving anyway. Default 5 s. */
  relayLoginWaitMs?: number
}

/** A join was refused: carries the control plane's status (401 for a wrong auth key) when there is one. */
export class NodeJoinError extends Error {
  override readonly name = 'NodeJoinError'
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

function errorWithStatus(error: unknown): SerializedError & { status?: number } {
  const serialized = serializeError(error)
  const status = (error as { status?: unknown })?.status
  return typeof status === 'number' ? { ...serialized, status } : serialized
}

export class NodeAgent {
  readonly host: WorkerHost
  private readonly clock: DriverClock
  private controlPort: MessagePort | undefined
  private webrtcPort: MessagePort | undefined
  /** The ICE servers last passed to the direct paths, as JSON (to send each change once). */
  private iceServersSent = ''
  private direct: NodeDirect | undefined
  /** Answers disco pings that come over DERP (`tailscale ping` of this node). */
  private derpDisco: DerpDiscoResponder | undefined
  /** Inbound packets the packet filter dropped, by reason. */
  private readonly filterDrops = { filtered: 0, tsmp: 0 }
  /** Whether the join asked for debug log lines. */
  private debug = false
  private context: WorkerContext | undefined
  private control: ControlPlane | undefined
  private relays: RelayPool | undefined
  private homeRegion: number | undefined
  private netmap: Netmap | undefined
  private readonly applied = new Map<string, AppliedPeer>()
  private statsTimer: Timer | undefined
  /** A peer-list push waiting to go to the page (changes in between go with it). */
  private pushTimer: Timer | undefined
  private probeTimer: Timer | undefined
  private state: NodeState = 'connecting'
  private wasOnline = false
  private joining = false
  private left = false

  constructor(
    postToPage: (message: WorkerMessage) => void,
    private readonly env: NodeAgentEnvironment,
  ) {
    this.clock = env.clock ?? systemClock
    this.host = new WorkerHost(postToPage, {
      ...(env.clock ? { clock: env.clock } : {}),
      extensions: [
        {
          onDisco: (disco) => this.onDisco(disco),
          onFilterDrop: (peer, reason, summary) => this.onFilterDrop(peer, reason, summary),
          counters: () => this.counters(),
        },
      ],
    })
  }

  /** Every message the page posts to the worker: the node control port, or a dataplane request. */
  handle(data: unknown): void {
    const message = data as { type?: unknown; port?: unknown; webrtcPort?: unknown }
    if (typeof message === 'object' && message !== null && message.type === NODE_CONTROL_MESSAGE) {
      if (message.port && typeof (message.port as MessagePort).postMessage === 'function') this.attachControl(message.port as MessagePort)
      else this.host.reportError(new DataplaneError('bad-config', `${NODE_CONTROL_MESSAGE} needs a MessagePort in \`port\``))
      if (message.webrtcPort !== undefined) {
        if (typeof (message.webrtcPort as MessagePort)?.postMessage === 'function') this.attachWebRtc(message.webrtcPort as MessagePort)
        else this.host.reportError(new DataplaneError('bad-config', `${NODE_CONTROL_MESSAGE}: \`webrtcPort\` must be a MessagePort`))
      }
      return
    }
    this.host.handle(data)
  }

  /** The port the page's `Burrow` object talks to the agent on. */
  attachControl(port: MessagePort): void {
    this.controlPort?.close()
    this.controlPort = port
    port.onmessage = (event: MessageEvent) => void this.onCall(event.data as NodeCallEnvelope)
  }

  /** The port a WebRtcPageAgent serves in the page; without one every peer stays on its relay. */
  attachWebRtc(port: MessagePort): void {
    if (this.context) throw new DataplaneError('bad-config', 'the WebRTC port must be attached before joining')
    this.webrtcPort?.close()
    this.webrtcPort = port
  }

  /** Stops everything (the worker is going away). */
  dispose(): void {
    this.shutdown()
    this.controlPort?.close()
    this.controlPort = undefined
  }

  private post(message: NodeWorkerMessage): void {
    this.controlPort?.postMessage(message)
  }

  private async onCall(envelope: NodeCallEnvelope): Promise<void> {
    if (envelope?.type !== 'call' || !Number.isInteger(envelope.id)) {
      this.post({ type: 'error', error: errorWithStatus(new DataplaneError('bad-config', 'node control: expected { type: "call", id, call }')) })
      return
    }
    try {
      const value = await this.dispatch(envelope.call)
      this.post({ type: 'result', id: envelope.id, ok: true, value })
    } catch (error) {
      this.post({ type: 'result', id: envelope.id, ok: false, error: errorWithStatus(error) })
    }
  }

  private dispatch(call: NodeCall): Promise<unknown> | unknown {
    switch (call?.op) {
      case 'join':
        return this.join(call.options)
      case 'leave':
        this.shutdown()
        return null
      case 'debug-close-direct':
        if (typeof call.nodeKey !== 'string') throw new DataplaneError('bad-config', 'debug-close-direct needs a nodeKey')
        return this.direct?.closeDirect(call.nodeKey) ?? false
      case 'debug-direct':
        return this.direct?.debugInfo([...this.applied.keys()]) ?? { enabled: false, counters: {}, peers: [] }
      default:
        throw new DataplaneError('bad-config', `unknown node operation ${JSON.stringify((call as { op?: unknown })?.op)}`)
    }
  }

  private async join(options: JoinOptions): Promise<JoinResult> {
    if (this.joining || this.context) throw new DataplaneError('bad-config', 'this node has already joined')
    if (this.left) throw new DataplaneError('stopped', 'this node has left; start a new one')
    if (typeof options?.controlURL !== 'string') throw new DataplaneError('bad-config', 'controlURL must be a string like "http://relay.example:8080"')
    if (typeof options.hostname !== 'string') throw new DataplaneError('bad-config', 'hostname must be a string')
    this.joining = true
    try {
      const store = this.env.keyStore(options)
      const nodeKeys = await loadOrCreateKeyPair(store, options.keyName)
      const discoKeys = await loadOrCreateKeyPair(store, `${options.keyName}.disco`)
      // The machine key (a tailnet's ts2021 Noise identity) is kept with the node key; only a tailnet join makes one.
      const machineKeys = options.control === 'tailnet' ? await loadOrCreateKeyPair(store, `${options.keyName}.machine`) : undefined
      if (this.left) throw new DataplaneError('stopped', 'the node was closed while starting')
      let control: ControlPlane
      try {
        control = this.env.controlPlane(options, {
          keys: { node: nodeKeys, disco: discoKeys, ...(machineKeys ? { machine: machineKeys } : {}) },
          hostname: options.hostname,
          ...(options.authKey ? { authKey: options.authKey } : {}),
          ...(this.env.clock ? { clock: this.env.clock } : {}),
        })
      } catch (error) {
        throw new DataplaneError('bad-config', (error as Error).message)
      }
      this.control = control
      this.debug = options.debug === true
      this.derpDisco = new DerpDiscoResponder(discoKeys.privateKey, (nodeKey) => this.peerDiscoKey(nodeKey))
      this.startDataplane(nodeKeys)
      const netmap = await this.register(control, options)
      // The relay may admit only registered keys (--verify-clients), so DERP waits for the netmap.
      const relays = this.startRelays(nodeKeys)
      const home = chooseHome(undefined, netmap.relayMap)
      if (home === undefined) throw new NodeJoinError(`the control plane at ${options.controlURL} offers no relay`, 0)
      relays.setRelayMap(netmap.relayMap)
      this.setHome(home)
      const homeLink = relays.home!
      if (this.webrtcPort && options.direct !== false) this.startDirect(this.webrtcPort, discoKeys.privateKey, homeLink.underlay, options.dropDirectSignals === true)
      this.applyNetmap(netmap)
      // Resolve once packets can flow, so a started node is `online`; a relay that is slow to
      // log in does not fail the start (the connection keeps retrying and the state says so).
      await this.untilConnected(homeLink.connection, this.env.relayLoginWaitMs ?? 5000)
      if (this.left) throw new DataplaneError('stopped', 'the node was closed while starting')
      this.armStats()
      if (options.probeIntervalMs !== undefined && options.probeIntervalMs > 0) this.armProbes(options.probeIntervalMs)
      this.updateState()
      const self = (this.netmap ?? netmap).self
      return {
        nodeKey: formatNodeKey(nodeKeys.publicKey),
        hostname: self.name,
        addresses: [self.addresses[0] ?? '', self.addresses[1] ?? ''],
        ...(netmap.network ? { network: netmap.network } : {}),
        relayURL: homeLink.connection.url,
      }
    } catch (error) {
      this.shutdown()
      throw error
    } finally {
      this.joining = false
    }
  }

  /**
   * A disco datagram from the dataplane. Over a relay, pings are answered here (as magicsock does,
   * with the DERP magic address: derp-responder.ts) and unknown or unusable messages are dropped
   * and counted; what is left (pongs, signals, CallMeMaybe) and anything on a direct path goes to
   * the direct-path manager.
   */
  private onDisco(disco: DiscoDatagram): void {
    const region = this.relays?.regionOf(disco.underlay)
    if (region === undefined || !this.derpDisco || !(disco.endpoint instanceof Uint8Array)) {
      this.direct?.handleDisco(disco)
      return
    }
    let verdict: DerpDiscoVerdict
    try {
      verdict = this.derpDisco.handle(disco.datagram, disco.endpoint, region)
    } catch (error) {
      // Only a region id no pong can carry (over 65535) gets here; the datagram is dropped.
      this.context?.reportError(error)
      return
    }
    switch (verdict.kind) {
      case 'reply':
        this.log(`disco: ping over DERP region ${region} answered: ${verdict.summary}`)
        try {
          this.context?.driver.sendDirect(disco.underlay, verdict.to, [verdict.datagram])
        } catch (error) {
          this.context?.reportError(error)
        }
        return
      case 'pass':
        this.direct?.handleDisco(disco)
        return
      case 'drop':
        this.log(`disco: dropped over DERP region ${region} (${verdict.reason}): ${verdict.summary}`)
        return
    }
  }

  private onFilterDrop(peer: Uint8Array, reason: 'filtered' | 'tsmp', summary: string): void {
    this.filterDrops[reason]++
    this.log(`filter: dropped ${reason === 'tsmp' ? 'TSMP packet' : 'packet'} from ${formatNodeKey(peer).slice(0, 16)}…: ${summary}`)
  }

  /** The agent's counters in the worker status (`status().counters`). */
  private counters(): Record<string, number> {
    const out: Record<string, number> = { 'filter.filtered': this.filterDrops.filtered, 'filter.tsmp': this.filterDrops.tsmp }
    if (this.derpDisco) for (const [name, value] of Object.entries(this.derpDisco.counters)) out[`disco.derp.${name}`] = value
    return out
  }

  private log(line: string): void {
    if (this.debug) this.post({ type: 'debug', line })
  }

  /** The disco key the netmap gives a peer's node key (32 bytes), if it is a peer with one. */
  private peerDiscoKey(nodeKey: Uint8Array): Uint8Array | undefined {
    const netmap = this.netmap
    if (!netmap) return undefined
    const text = formatNodeKey(nodeKey)
    const peer = netmap.peerIndex?.get(text) ?? netmap.peers.find((p) => p.nodeKey === text)
    if (!peer?.discoKey) return undefined
    try {
      return parseKey(peer.discoKey)
    } catch {
      return undefined
    }
  }

  private startDirect(port: MessagePort, discoPrivateKey: Uint8Array, homeRelayUnderlay: number, dropSignals: boolean): void {
    this.direct = new NodeDirect({
      context: this.context!,
      webrtcPort: port,
      discoPrivateKey,
      homeRelayUnderlay,
      dropSignals,
      onPathChange: (nodeKey, path, rttMs) => {
        this.post({ type: 'path', nodeKey, path, rttMs })
        this.pushPeers()
      },
    })
  }

  private startDataplane(nodeKeys: KeyPair): void {
    this.host.request({ op: 'start', config: { privateKey: nodeKeys.privateKey } })
    this.context = this.host.context
    if (!this.context) throw new Error('the dataplane did not start')
  }

  private startRelays(nodeKeys: KeyPair): RelayPool {
    const { driver } = this.context!
    this.relays = new RelayPool({
      dial: this.env.dial,
      privateKey: nodeKeys.privateKey,
      attach: (connection: DerpConnection) => driver.addUnderlay(new DerpUnderlay(connection)),
      detach: (underlay) => driver.removeUnderlay(underlay),
      onHomeChange: () => this.updateState(),
    })
    return this.relays
  }

  /** Starts the control plane and waits for its first netmap (or its refusal, or the deadline). */
  private register(control: ControlPlane, options: JoinOptions): Promise<Netmap> {
    let lastError: ControlPlaneError | undefined
    control.on('netmap', (netmap, change) => {
      if (this.relays?.home) this.applyNetmap(netmap, change)
    })
    control.on('state', () => this.updateState())
    let failJoin: ((error: NodeJoinError) => void) | undefined
    control.on('error', (error) => {
      lastError = error
      // Before the first netmap, any failure ends the start: a typo'd URL or a server that is down
      // should say so now, not after a timeout. Later ones are reported and retried by the control plane.
      if (failJoin)
        failJoin(new NodeJoinError(error.status === 0 ? `cannot reach the coordination service at ${options.controlURL}: ${error.message}` : error.message, error.status))
      else this.post({ type: 'error', error: errorWithStatus(error) })
    })
    control.start()
    return new Promise<Netmap>((resolve, reject) => {
      const timeoutMs = this.env.joinTimeoutMs ?? 20_000
      const settle = (): void => {
        failJoin = undefined
        timer.clear()
      }
      failJoin = (error) => {
        settle()
        reject(error)
      }
      const timer = this.clock.setTimer(this.clock.now() + timeoutMs, () => {
        failJoin = undefined
        const why = lastError ? `: ${lastError.message}` : ''
        reject(new NodeJoinError(`no answer from the coordination service at ${options.controlURL} within ${timeoutMs / 1000} s${why}`, lastError?.status ?? 0))
      })
      control.ready().then(
        (netmap) => {
          settle()
          resolve(netmap)
        },
        (error: unknown) => {
          settle()
          const status = (error as { status?: unknown })?.status
          reject(new NodeJoinError((error as Error).message, typeof status === 'number' ? status : 0))
        },
      )
    })
  }

  private untilConnected(connection: DerpConnection, timeoutMs: number): Promise<void> {
    if (connection.isConnected) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        timer.clear()
        connection.off('connected', done)
        resolve()
      }
      const timer = this.clock.setTimer(this.clock.now() + timeoutMs, done)
      connection.on('connected', done)
    })
  }

  private armStats(): void {
    const interval = this.env.statsIntervalMs ?? 1000
    this.statsTimer = this.clock.setTimer(this.clock.now() + interval, () => {
      this.pushPeers()
      if (!this.left) this.armStats()
    })
  }

  private armProbes(interval: number): void {
    this.probeTimer = this.clock.setTimer(this.clock.now() + interval, () => {
      this.post({ type: 'probe' })
      if (!this.left) this.armProbes(interval)
    })
  }

  // ---- peers ----

  private setHome(region: number): void {
    this.relays!.setHome(region)
    this.homeRegion = region
    this.control?.setHomeRelay(region)
  }

  /**
   * Brings the dataplane in line with `netmap` (see planPeerSync); a failed operation is reported
   * and planned again at the next full plan. With a change hint (and a netmap that indexes its
   * peers) only the changed peers are looked at, and the page gets the peer list at most every
   * PEER_PUSH_DELAY_MS: a busy network costs each node the size of its changes, not of its map.
   */
  private applyNetmap(netmap: Netmap, change?: NetmapChange): void {
    if (this.left || !this.relays) return
    const previous = this.netmap
    this.netmap = netmap
    if (previous === undefined || change === undefined || change.other) this.relays.setRelayMap(netmap.relayMap)
    // The relay's STUN server (and TURN); a later welcome brings fresh TURN credentials.
    const ice = JSON.stringify(netmap.iceServers ?? [])
    if (this.direct && netmap.iceServers && ice !== this.iceServersSent) {
      this.iceServersSent = ice
      this.guard(() => this.direct?.setIceServers(netmap.iceServers!))
    }
    // The tailnet's ACLs (PacketFilters); undefined for Burrow's coordination, which has none.
    this.guard(() => this.context?.core.setPacketFilter(netmap.packetFilter))
    const ops = (change && previous !== undefined && !this.planFailed ? planPeerChange(this.applied, netmap, this.homeRegion, change) : undefined) ?? this.planAll(netmap)
    for (const op of ops) this.guard(() => this.perform(op))
    if (change === undefined) this.pushPeers()
    else this.schedulePushPeers()
  }

  /** The whole-netmap plan; a failed operation in it makes the next netmap be planned whole again. */
  private planAll(netmap: Netmap): PeerOp[] {
    this.planFailed = false
    return planPeerSync(this.applied, netmap, this.homeRegion)
  }

  private planFailed = false

  private schedulePushPeers(): void {
    if (this.pushTimer !== undefined || this.left) return
    this.pushTimer = this.clock.setTimer(this.clock.now() + PEER_PUSH_DELAY_MS, () => {
      this.pushTimer = undefined
      this.pushPeers()
    })
  }

  private perform(op: PeerOp): void {
    const relays = this.relays!
    switch (op.op) {
      case 'set-home':
        this.setHome(op.region)
        return
      case 'remove-peer':
        this.applied.delete(op.nodeKey)
        try {
          this.direct?.removePeer(op.nodeKey)
        } finally {
          try {
            this.host.request({ op: 'remove-peer', publicKey: op.nodeKey })
          } finally {
            relays.release(op.relay)
          }
        }
        return
      case 'add-peer': {
        const link = relays.acquire(op.relay)
        try {
          this.host.request({ op: 'add-peer', peer: { publicKey: op.nodeKey, allowedIps: op.allowedIPs, route: { underlay: link.underlay, endpoint: parseKey(op.nodeKey) } } })
        } catch (error) {
          relays.release(op.relay)
          throw error
        }
        this.applied.set(op.nodeKey, { relay: op.relay, allowedIPs: op.allowedIPs, discoKey: null })
        return
      }
      case 'move-peer': {
        const link = relays.acquire(op.relay)
        try {
          this.host.request({ op: 'set-peer-route', publicKey: op.nodeKey, underlay: link.underlay, endpoint: parseKey(op.nodeKey) })
        } catch (error) {
          relays.release(op.relay)
          throw error
        }
        relays.release(op.from)
        this.applied.get(op.nodeKey)!.relay = op.relay
        return
      }
      case 'set-direct': {
        const applied = this.applied.get(op.nodeKey)
        const link = relays.linkOf(op.relay)
        if (!this.direct || !applied || !link) return
        this.direct.setPeer(op.nodeKey, op.discoKey, link.underlay)
        applied.discoKey = op.discoKey
        return
      }
    }
  }

  private guard(work: () => void): void {
    try {
      work()
    } catch (error) {
      this.planFailed = true
      this.post({ type: 'error', error: errorWithStatus(error) })
    }
  }

  private pushPeers(): void {
    const netmap = this.netmap
    const relays = this.relays
    if (!netmap || !relays || !this.context || this.homeRegion === undefined) return
    const status = this.host.request({ op: 'status' })
    const stats = new Map(status.peers.map((p) => [formatNodeKey(parseKey(p.publicKey)), p]))
    const relayUnderlays = relays.underlays()
    const home = this.homeRegion
    const peers: WorkerPeerInfo[] = netmap.peers.map((peer) => {
      const s = stats.get(peer.nodeKey)
      const direct = this.direct && this.applied.has(peer.nodeKey) ? this.direct.pathOf(peer.nodeKey) : undefined
      return {
        nodeKey: peer.nodeKey,
        hostname: peer.name,
        ...(peer.fqdn ? { fqdn: peer.fqdn.toLowerCase() } : {}),
        addresses: [peer.addresses[0] ?? '', peer.addresses[1] ?? ''],
        online: peer.online === true,
        // Direct once a disco pong over the datachannel trusts it (the route moves there earlier,
        // while datagrams are still mirrored to the relay); else whatever underlay the route names.
        path: direct ? direct.path : s?.route && !relayUnderlays.has(s.route.underlay) ? 'direct' : 'relay',
        directRttMs: direct?.rttMs ?? null,
        directCandidates: direct?.candidates ?? null,
        relayURL: netmap.relayMap.regions.get(relayOf(peer, netmap.relayMap, home))?.nodes[0]?.url ?? '',
        rxBytes: s?.rxBytes ?? 0,
        txBytes: s?.txBytes ?? 0,
        lastHandshake: s?.lastHandshake ?? null,
      }
    })
    this.post({ type: 'peers', peers })
  }

  // ---- state ----

  private updateState(): void {
    if (this.left) return
    const control = this.control?.state
    const relayUp = this.relays?.home?.connection.isConnected === true
    let next: NodeState
    if (control === 'failed') next = 'failed'
    else if (control === 'connected' && relayUp) next = 'online'
    else next = this.wasOnline ? 'reconnecting' : 'connecting'
    if (next === 'online') this.wasOnline = true
    if (next === this.state) return
    this.state = next
    this.post({ type: 'state', state: next })
  }

  private shutdown(): void {
    if (this.left) return
    this.left = true
    this.statsTimer?.clear()
    this.probeTimer?.clear()
    this.statsTimer = undefined
    this.pushTimer?.clear()
    this.pushTimer = undefined
    this.probeTimer = undefined
    this.control?.stop()
    try {
      this.direct?.stop()
    } catch {
      // The sessions end with the dataplane regardless.
    }
    this.direct = undefined
    this.webrtcPort = undefined
    this.relays?.close()
    this.applied.clear()
    if (this.context) {
      try {
        this.host.request({ op: 'stop' })
      } catch {
        // Already stopped: nothing left to release.
      }
    }
    this.context = undefined
    this.state = 'closed'
    this.post({ type: 'state', state: 'closed' })
  }
}
