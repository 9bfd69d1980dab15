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
import type { ControlPlane, ControlPlaneError, ControlPlaneParams, Netmap, NetmapChange, RelayMap } from '../control/control-plane.ts'
import { loadOrCreateKeyPair, type KeyStore } from '../control/key-store.ts'
import { DeadlineTimer, systemClock, type DriverClock, type Timer } from '../clock/clock.ts'
import { DataplaneError } from '../dataplane/errors.ts'
import type { DerpConnection } from '../underlay/derp/connection.ts'
import type { DerpDialer } from '../underlay/derp/dialer.ts'
import { DerpUnderlay } from '../underlay/derp/underlay.ts'
import { FaultInjector } from '../underlay/fault-injector.ts'
import { DerpDiscoResponder, type DerpDiscoVerdict } from '../underlay/disco/derp-responder.ts'
import type { DiscoDatagram } from '../dataplane/core.ts'
import { WorkerHost, type WorkerContext } from '../worker/host.ts'
import { serializeError, type SerializedError, type WorkerMessage } from '../worker/protocol.ts'
import { NodeDirect } from './direct.ts'
import { HomePicker, type HomeProbe } from './home-picker.ts'
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
import type { UdpDirect, UdpDirectFactory } from './udp-direct-hook.ts'

/** How long a peer-map change may wait before the peer list goes to the page. */
const PEER_PUSH_DELAY_MS = 50

/**
 * How many online peers of the first netmap get a WireGuard handshake at join, before any packet
 * asks for one: enough for a small network's first connections, bounded so that joining a large
 * one does not cost a handshake (4 X25519 operations each side) per peer.
 */
export const EARLY_HANDSHAKE_PEERS = 8

/**
 * How long after the netmap a node starts no WebRTC attempt of its own. Opening an
 * RTCPeerConnection, its offer and candidate gathering took the page and the worker about 20 ms
 * just when the join finishes and the app opens its first connection (npm run bench: start to
 * first byte 125 ms with the attempt at once, 106 without); held this long, the attempt follows
 * the first exchange instead of slowing it. Offers from peers are still answered at once.
 */
export const DIRECT_ATTEMPT_HOLD_MS = 100

/**
 * Makes the control plane for one join; throws when the join's options do not suit it. It may
 * answer with a promise, so a browser worker can load a control client (the tailnet's) lazily.
 */
export type ControlPlaneFor = (options: JoinOptions, params: ControlPlaneParams) => ControlPlane | Promise<ControlPlane>

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
  /**
   * Times one latency probe of a relay: resolves when `url` (its `/derp/latency-check`) answered,
   * rejects when it failed. Default: an HTTP HEAD with fetch (derper and `burrow relay` answer it
   * with `Access-Control-Allow-Origin: *`, so a page may probe any relay).
   */
  probe?: (url: string) => Promise<void>
  /** How long `join` waits for the first latency round when the relay map has several regions. Default 3 s. */
  firstProbeWaitMs?: number
  /** Node only: plain-UDP direct paths to peers that are Node nodes too (`src/node/udp-direct.ts`). */
  udpDirect?: UdpDirectFactory
  /**
   * Dial the relay the control plane expects to be home (`ControlPlane.relayURL`) while
   * registering, logging in once the netmap confirms it (see RelayPool.preconnect), instead of
   * after the netmap. A refused join then has opened (and closed) that one connection. Default false;
   * the browser worker (src/agent/worker.ts) turns it on.
   */
  dialRelayEarly?: boolean
}

/** The latency-check URL of a relay's DERP URL (cmd/derper serves /derp/probe and /derp/latency-check alike). */
export function latencyCheckUrl(derpUrl: string): string {
  const url = new URL(derpUrl)
  url.protocol = url.protocol === 'wss:' ? 'https:' : url.protocol === 'ws:' ? 'http:' : url.protocol
  url.pathname = '/derp/latency-check'
  url.search = ''
  return url.toString()
}

async function fetchProbe(url: string): Promise<void> {
  const response = await fetch(url, { method: 'HEAD', cache: 'no-store' })
  if (!response.ok) throw new Error(`${url} answered ${response.status}`)
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
  /** Latency probes and the home choice (only with more than one region to choose from). */
  private picker: HomePicker | undefined
  /** The relay map of the join's first netmap (before it is applied). */
  private relayMap: RelayMap | undefined
  private pickerTimer: DeadlineTimer | undefined
  private readonly onPicked = new Set<() => void>()
  private netmap: Netmap | undefined
  private readonly applied = new Map<string, AppliedPeer>()
  private statsTimer: Timer | undefined
  /** A peer-list push waiting to go to the page (changes in between go with it). */
  private pushTimer: Timer | undefined
  private probeTimer: Timer | undefined
  private state: NodeState = 'connecting'
  private udp: UdpDirect | undefined
  /** Peers the UDP manager claimed: WebRTC leaves them alone. */
  private readonly udpClaimed = new Set<string>()
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
      case 'debug-direct': {
        const info = this.direct?.debugInfo([...this.applied.keys()]) ?? { enabled: false, counters: {}, peers: [] }
        return this.udp ? { ...info, enabled: true, udp: this.udp.debugInfo() } : info
      }
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
    const phases: JoinResult['phases'] = []
    const mark = (step: string): void => void phases.push([step, this.sharedTime(this.clock.now())])
    mark('join received')
    try {
      const store = this.env.keyStore(options)
      const nodeKeys = await loadOrCreateKeyPair(store, options.keyName)
      const discoKeys = await loadOrCreateKeyPair(store, `${options.keyName}.disco`)
      // The machine key (a tailnet's ts2021 Noise identity) is kept with the node key; only a tailnet join makes one.
      const machineKeys = options.control === 'tailnet' ? await loadOrCreateKeyPair(store, `${options.keyName}.machine`) : undefined
      mark('keys')
      if (this.left) throw new DataplaneError('stopped', 'the node was closed while starting')
      let made: ControlPlane | Promise<ControlPlane>
      try {
        made = this.env.controlPlane(options, {
          keys: { node: nodeKeys, disco: discoKeys, ...(machineKeys ? { machine: machineKeys } : {}) },
          hostname: options.hostname,
          ...(options.authKey ? { authKey: options.authKey } : {}),
          ...(this.env.clock ? { clock: this.env.clock } : {}),
        })
      } catch (error) {
        throw new DataplaneError('bad-config', (error as Error).message)
      }
      // A lazily loaded control client (the factory turns its own option errors into bad-config).
      const control = made instanceof Promise ? await made : made
      if (this.left) {
        control.stop()
        throw new DataplaneError('stopped', 'the node was closed while starting')
      }
      this.control = control
      this.debug = options.debug === true
      // The coordination socket opens first: the dataplane and relay set-up below (X25519 work
      // among it) runs while its handshake and challenge are on the wire.
      const registered = this.register(control, options)
      // Settled by the await below unless the set-up throws first (then shutdown stops the control plane).
      registered.catch(() => {})
      this.derpDisco = new DerpDiscoResponder(discoKeys.privateKey, (nodeKey) => this.peerDiscoKey(nodeKey))
      this.startDataplane(nodeKeys)
      // Registration and the relay's WebSocket do not depend on each other: the relay the control
      // plane expects to be home is dialed now, and logs in once the netmap says it is home (the
      // relay may admit only registered keys, --verify-clients).
      const relays = this.startRelays(nodeKeys, options.relayFaults)
      if (this.env.dialRelayEarly === true && control.relayURL !== undefined) relays.preconnect(control.relayURL)
      const netmap = await registered
      mark('netmap')
      if (options.homeRegion !== undefined && !netmap.relayMap.regions.has(options.homeRegion))
        throw new DataplaneError('bad-config', `homeRegion ${options.homeRegion} is not a region of the relay map (regions: ${[...netmap.relayMap.regions.keys()].join(', ')})`)
      relays.setRelayMap(netmap.relayMap)
      this.relayMap = netmap.relayMap
      const picked = await this.firstHome(netmap, options.homeRegion)
      const home = picked ?? chooseHome(undefined, netmap.relayMap)
      if (home === undefined) throw new NodeJoinError(`the control plane at ${options.controlURL} offers no relay`, 0)
      if (this.left) throw new DataplaneError('stopped', 'the node was closed while starting')
      this.setHome(home)
      relays.dropEarly()
      const homeLink = relays.home!
      if (this.webrtcPort && options.direct !== false) this.startDirect(this.webrtcPort, discoKeys.privateKey, homeLink.underlay, options.dropDirectSignals === true)
      if (this.env.udpDirect && options.direct !== false) this.startUdpDirect(this.env.udpDirect, discoKeys.privateKey, homeLink.underlay)
      // The first packet to a peer would wait a relay round trip for the WireGuard handshake:
      // start it as soon as the peers are in, while the relay logs in (the initiation waits in the relay connection).
      this.applyNetmap(netmap, undefined, () => this.prepareHandshakes(netmap))
      // Resolve once packets can flow, so a started node is `online`; a relay that is slow to
      // log in does not fail the start (the connection keeps retrying and the state says so).
      await this.untilConnected(homeLink.connection, this.env.relayLoginWaitMs ?? 5000)
      mark('relay login')
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
        homeRegion: home,
        phases,
      }
    } catch (error) {
      this.shutdown()
      throw error
    } finally {
      this.joining = false
    }
  }

  /** `now` on the clock the page's `sharedNow()` reads: the system clock is this thread's `performance.now()`. */
  private sharedTime(now: number): number {
    return this.env.clock ? now : performance.timeOrigin + now
  }

  /** Starts the WireGuard handshake with the first EARLY_HANDSHAKE_PEERS online peers of `netmap`. */
  private prepareHandshakes(netmap: Netmap): void {
    const context = this.context
    if (!context) return
    let started = 0
    for (const peer of netmap.peers) {
      if (started >= EARLY_HANDSHAKE_PEERS) return
      if (peer.online !== true || !this.applied.has(peer.nodeKey)) continue
      const id = context.core.peerByKey(parseKey(peer.nodeKey))
      if (id === undefined) continue
      started++
      try {
        context.driver.handshake(id)
      } catch (error) {
        this.post({ type: 'error', error: errorWithStatus(error) })
      }
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
      this.passDisco(disco)
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
        this.passDisco(disco)
        return
      case 'drop':
        this.log(`disco: dropped over DERP region ${region} (${verdict.reason}): ${verdict.summary}`)
        return
    }
  }

  /** The direct-path managers' share of disco: the UDP one (Node↔Node) first, then WebRTC's. */
  private passDisco(disco: DiscoDatagram): void {
    if (!this.udp?.handleDisco(disco)) this.direct?.handleDisco(disco)
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
      // With plain UDP (Node) WebRTC waits for traffic; see NodeDirectOptions.attemptOnPeerKnown.
      attemptOnPeerKnown: this.env.udpDirect === undefined,
      // The join's last steps and the app's first connection come first (see the constant).
      holdAttemptsUntil: this.clock.now() + DIRECT_ATTEMPT_HOLD_MS,
      clock: this.clock,
      onPathChange: (nodeKey, path, rttMs) => {
        this.post({ type: 'path', nodeKey, path, rttMs })
        this.pushPeers()
      },
    })
  }

  private startUdpDirect(factory: UdpDirectFactory, discoPrivateKey: Uint8Array, homeRelayUnderlay: number): void {
    this.udp = factory({
      context: this.context!,
      discoPrivateKey,
      homeRelayUnderlay,
      claim: (nodeKey) => {
        if (this.udpClaimed.has(nodeKey)) return
        this.udpClaimed.add(nodeKey)
        this.guard(() => this.direct?.removePeer(nodeKey))
      },
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

  private startRelays(nodeKeys: KeyPair, faults: JoinOptions['relayFaults']): RelayPool {
    const { driver } = this.context!
    let seed = faults?.seed ?? 0
    this.relays = new RelayPool({
      dial: this.env.dial,
      privateKey: nodeKeys.privateKey,
      attach: (connection: DerpConnection) => {
        const underlay = new DerpUnderlay(connection)
        if (!faults) return driver.addUnderlay(underlay)
        // Test hook: a bad network on every relay link, seeded (one seed per link) so runs replay.
        return driver.addUnderlay(new FaultInjector(underlay, { ...faults, seed: seed++, clock: this.clock }))
      },
      detach: (underlay) => driver.removeUnderlay(underlay),
      onHomeChange: () => this.updateState(),
      onRegionDown: (region) => {
        this.picker?.regionDown(region, this.clock.now())
        this.runPicker()
      },
      // Another relay of the home region: the same region for peers, but say which relay we are on.
      onRelayChange: (region) => {
        if (region === this.homeRegion) this.reportHome()
      },
    })
    return this.relays
  }

  /**
   * With several regions, one latency round picks the first home (bounded by firstProbeWaitMs);
   * undefined when there is nothing to choose, or no region answered in time. The picker keeps
   * running: periodic rounds (with hysteresis) and failover move the home later.
   */
  private firstHome(netmap: Netmap, prefer: number | undefined): Promise<number | undefined> {
    if (netmap.relayMap.regions.size < 2) return Promise.resolve(prefer)
    this.picker = new HomePicker(prefer === undefined ? {} : { prefer })
    this.pickerTimer = new DeadlineTimer(this.clock, () => this.runPicker())
    this.picker.setRelayMap(netmap.relayMap, this.clock.now())
    if (prefer !== undefined) {
      this.picker.setHome(prefer)
      this.runPicker()
      return Promise.resolve(prefer)
    }
    return new Promise((resolve) => {
      const done = (): void => {
        timer.clear()
        this.onPicked.delete(done)
        resolve(this.picker?.home)
      }
      const timer = this.clock.setTimer(this.clock.now() + (this.env.firstProbeWaitMs ?? 3000), done)
      this.onPicked.add(done)
      this.runPicker()
    })
  }

  /** Runs what the picker has due: probes go out, a home change is applied (or, before the first home, reported to `firstHome`). */
  private runPicker(): void {
    const picker = this.picker
    if (!picker || this.left) return
    picker.poll(this.clock.now())
    for (let event = picker.takeEvent(); event; event = picker.takeEvent()) {
      if (event.type === 'probe') this.startProbe(event.probe)
      else if (this.homeRegion === undefined) for (const done of [...this.onPicked]) done()
      else if (event.region !== this.homeRegion) this.guard(() => this.moveHome(event.region))
    }
    this.pickerTimer?.arm(picker.nextEvent())
  }

  private startProbe(probe: HomeProbe): void {
    const started = this.clock.now()
    let url: string
    try {
      url = latencyCheckUrl(probe.url)
    } catch {
      this.picker?.probeDone(probe.id, null, started)
      return
    }
    ;(this.env.probe ?? fetchProbe)(url).then(
      () => {
        this.picker?.probeDone(probe.id, this.clock.now() - started, this.clock.now())
        this.runPicker()
      },
      () => {
        this.picker?.probeDone(probe.id, null, this.clock.now())
        this.runPicker()
      },
    )
  }

  /** A new home region (latency or failover): connect there, report it, and re-route the peers that follow our home. */
  private moveHome(region: number): void {
    if (!this.relays || !this.netmap || !this.netmap.relayMap.regions.has(region)) return
    this.setHome(region)
    this.applyNetmap(this.netmap)
  }

  /** Tells the control plane and the page which region and relay we are homed on. */
  private reportHome(): void {
    const region = this.homeRegion
    if (region === undefined) return
    const link = this.relays?.home
    const url = link?.connection.url ?? ''
    this.control?.setHomeRelay(region, url)
    const info = (this.netmap?.relayMap ?? this.relayMap)?.regions.get(region)
    this.post({ type: 'home', region, code: info?.code ?? '', name: info?.name ?? '', relayURL: url, latencies: Object.fromEntries(this.picker?.latencies() ?? []) })
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
    // Interactive login (tailnets without an auth key): the page shows the URL; a person may take
    // minutes to approve it, so the join deadline stops counting once control asked for a login.
    let loginRequested = false
    control.on('auth-url', (url) => {
      loginRequested = true
      timer?.clear()
      this.post({ type: 'auth-url', url })
    })
    let timer: Timer | undefined
    control.start()
    return new Promise<Netmap>((resolve, reject) => {
      const timeoutMs = this.env.joinTimeoutMs ?? 20_000
      const settle = (): void => {
        failJoin = undefined
        timer?.clear()
      }
      failJoin = (error) => {
        settle()
        reject(error)
      }
      if (!loginRequested)
        timer = this.clock.setTimer(this.clock.now() + timeoutMs, () => {
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
    this.picker?.setHome(region)
    this.reportHome()
  }

  /**
   * Brings the dataplane in line with `netmap` (see planPeerSync); a failed operation is reported
   * and planned again at the next full plan. With a change hint (and a netmap that indexes its
   * peers) only the changed peers are looked at, and the page gets the peer list at most every
   * PEER_PUSH_DELAY_MS: a busy network costs each node the size of its changes, not of its map.
   * `peersAdded` runs once the dataplane has the netmap's peers, before their direct paths are set.
   */
  private applyNetmap(netmap: Netmap, change?: NetmapChange, peersAdded?: () => void): void {
    if (this.left || !this.relays) return
    const previous = this.netmap
    this.netmap = netmap
    if (previous === undefined || change === undefined || change.other) this.relays.setRelayMap(netmap.relayMap)
    if (change?.other && this.picker) {
      this.picker.setRelayMap(netmap.relayMap, this.clock.now())
      this.runPicker()
    }
    // The relay's STUN server (and TURN); a later welcome brings fresh TURN credentials.
    const ice = JSON.stringify(netmap.iceServers ?? [])
    if ((this.direct || this.udp) && netmap.iceServers && ice !== this.iceServersSent) {
      this.iceServersSent = ice
      this.guard(() => this.direct?.setIceServers(netmap.iceServers!))
      this.guard(() => this.udp?.setIceServers(netmap.iceServers!))
    }
    // The tailnet's ACLs (PacketFilters); undefined for Burrow's coordination, which has none.
    this.guard(() => this.context?.core.setPacketFilter(netmap.packetFilter))
    const ops = (change && previous !== undefined && !this.planFailed ? planPeerChange(this.applied, netmap, this.homeRegion, change) : undefined) ?? this.planAll(netmap)
    // Direct-path bookkeeping last: `peersAdded` (the join's first handshakes) does not wait for it.
    for (const op of ops) if (op.op !== 'set-direct') this.guard(() => this.perform(op))
    peersAdded?.()
    for (const op of ops) if (op.op === 'set-direct') this.guard(() => this.perform(op))
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
        this.udpClaimed.delete(op.nodeKey)
        try {
          this.udp?.removePeer(op.nodeKey)
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
        if ((!this.direct && !this.udp) || !applied || !link) return
        // A new disco key is a restarted peer: it has to prove UDP again.
        if (applied.discoKey !== null && applied.discoKey !== op.discoKey) this.udpClaimed.delete(op.nodeKey)
        this.udp?.setPeer(op.nodeKey, op.discoKey, link.underlay)
        if (!this.udpClaimed.has(op.nodeKey)) this.direct?.setPeer(op.nodeKey, op.discoKey, link.underlay)
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
      const udp = this.applied.has(peer.nodeKey) ? this.udp?.pathOf(peer.nodeKey) : undefined
      const direct = udp ?? (this.direct && this.applied.has(peer.nodeKey) ? this.direct.pathOf(peer.nodeKey) : undefined)
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
        directTransport: direct?.path === 'direct' ? (udp ? 'udp' : 'webrtc') : null,
        directEndpoint: udp?.path === 'direct' ? udp.endpoint : null,
        relayURL: relays.linkOf(relayOf(peer, netmap.relayMap, home))?.connection.url ?? netmap.relayMap.regions.get(relayOf(peer, netmap.relayMap, home))?.nodes[0]?.url ?? '',
        relayRegion: relayOf(peer, netmap.relayMap, home),
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
    this.pickerTimer?.clear()
    this.picker = undefined
    for (const done of [...this.onPicked]) done()
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
    try {
      this.udp?.stop()
    } catch {
      // Its socket closes with the dataplane's underlays regardless.
    }
    this.udp = undefined
    this.udpClaimed.clear()
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
