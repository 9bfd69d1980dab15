// Burrow's own coordination (the relay's /control WebSocket) as a ControlPlane: the
// CoordinationClient's live peer map, normalized into a netmap. Relays are named by URL in this
// protocol; the netmap names them by region, so each distinct relay URL becomes a region, the
// relay serving the coordination being region 1 (and the suggested home). When the operator
// configured a relay map (`burrow relay --relay-map FILE`), the welcome carries it and its regions
// are used as they are: a peer's home relay URL names the region that lists it.
import { webSocketUrl } from '../underlay/derp/dialer.ts'
import { CoordinationClient, type CoordinationClientOptions, type SocketFactory } from './coordination-client.ts'
import {
  ControlPlaneError,
  type ControlPlane,
  type ControlPlaneEvents,
  type ControlPlaneParams,
  type ControlPlaneState,
  type Netmap,
  type NetmapChange,
  type NetmapPeer,
  type RelayRegion,
} from './control-plane.ts'
import type { HomeRelay, PeerEntry, RelayMapEntry } from './protocol.ts'

/** The DERP URL (`ws(s)://host/derp`) of the relay behind a control URL. */
export function relayUrlOf(controlURL: string): string {
  const url = new URL(controlURL)
  url.pathname = '/derp'
  url.search = ''
  url.hash = ''
  return webSocketUrl(url.toString())
}

export interface CoordinationControlPlaneOptions extends ControlPlaneParams {
  /** The relay's base URL (`http://relay.example:8080`): coordination at /control, DERP at /derp. */
  controlURL: string
  socketFactory?: SocketFactory
  /** Passed to the CoordinationClient (tests: backoff, randomness). */
  client?: Partial<Pick<CoordinationClientOptions, 'random' | 'backoffBaseMs' | 'backoffCapMs'>>
}

/** Region 1 is the relay behind the control URL; others are numbered as their URLs first appear. */
const HOME_REGION = 1

type Listeners = { [K in keyof ControlPlaneEvents]: Set<ControlPlaneEvents[K]> }

export class CoordinationControlPlane implements ControlPlane {
  readonly kind = 'burrow'
  /** The DERP URL of the relay serving the coordination. */
  readonly relayURL: string
  private readonly client: CoordinationClient
  private readonly listeners: Listeners = { netmap: new Set(), state: new Set(), error: new Set(), 'auth-url': new Set() }
  private readonly regionByUrl = new Map<string, number>()
  private readonly regions = new Map<number, RelayRegion>()
  private current: Netmap | undefined
  /** The netmap's peers by node key, kept up to date change by change (never rebuilt whole). */
  private readonly peerIndex = new Map<string, NetmapPeer>()
  private pending: NetmapChange | undefined
  private homeRegion: number = HOME_REGION
  /** The operator's map as the last welcome had it, and its relays by DERP URL. */
  private operatorMap: { entry: RelayMapEntry; regions: Map<number, RelayRegion>; byUrl: Map<string, number>; suggested: number | undefined } | undefined

  /** Throws (a TypeError naming the URL) when `controlURL` is not an http(s)/ws(s) URL. */
  constructor(options: CoordinationControlPlaneOptions) {
    try {
      this.relayURL = relayUrlOf(options.controlURL)
    } catch (error) {
      throw new TypeError(`controlURL ${JSON.stringify(options.controlURL)} is not a relay URL: ${(error as Error).message}`)
    }
    this.regionOf(this.relayURL)
    this.client = new CoordinationClient({
      url: options.controlURL,
      nodeKeyPair: options.keys.node,
      discoPublicKey: options.keys.disco.publicKey,
      hostname: options.hostname,
      ...(options.authKey ? { authKey: options.authKey } : {}),
      homeRelay: { url: this.relayURL },
      ...(options.socketFactory ? { socketFactory: options.socketFactory } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...options.client,
    })
    // The delta only: each change costs its size here and in the agent (issue 17).
    this.client.on('change', (change) =>
      this.changed(
        change.upsert.map((p) => p.nodeKey),
        change.remove,
      ),
    )
    this.client.on('self', () => this.changed([], []))
    this.client.on('state', (state, detail) => this.emit('state', state, detail))
    this.client.on('error', (error) => this.emit('error', error))
  }

  get state(): ControlPlaneState {
    return this.client.state
  }

  get netmap(): Netmap | undefined {
    return this.current
  }

  on<K extends keyof ControlPlaneEvents>(event: K, listener: ControlPlaneEvents[K]): () => void {
    const set = this.listeners[event] as Set<ControlPlaneEvents[K]>
    set.add(listener)
    return () => set.delete(listener)
  }

  start(): void {
    this.client.start()
  }

  async ready(): Promise<Netmap> {
    await this.client.ready()
    if (this.current) return this.current
    this.syncOperatorMap()
    this.reindex(
      this.client.peers().map((p) => p.nodeKey),
      [],
    )
    return this.build()
  }

  setHomeRelay(region: number | null, relayURL?: string): void {
    const regions = this.operatorMap?.regions ?? this.regions
    const nodes = region === null ? undefined : regions.get(region)?.nodes
    if (region !== null && nodes === undefined) throw new ControlPlaneError(400, `relay region ${region} is not in the relay map`)
    // The relay of the region we hold open, when it is one of the region's; else its first.
    const url = nodes === undefined ? undefined : (nodes.find((n) => n.url === relayURL) ?? nodes[0]!).url
    if (region === this.homeRegion && url === this.homeURL) return
    this.homeRegion = region ?? HOME_REGION
    this.homeURL = url
    const homeRelay: HomeRelay | null = url === undefined ? null : { url }
    this.client.setHomeRelay(homeRelay)
  }

  private homeURL: string | undefined

  /** Burrow's coordination has no logout message: an operator removes the node (`burrow relay nodes`), an ephemeral one goes by itself. */
  logout(): Promise<void> {
    return Promise.reject(new ControlPlaneError(501, "Burrow's coordination has no logout; stop the node, and remove it on the relay"))
  }

  stop(): void {
    this.client.stop()
  }

  // ---- normalization ----

  private regionOf(url: string): number {
    let id = this.regionByUrl.get(url)
    if (id === undefined) {
      id = this.regionByUrl.size + 1
      this.regionByUrl.set(url, id)
      const host = new URL(url).host
      this.regions.set(id, { id, code: host, name: host, nodes: [{ name: host, url }] })
    }
    return id
  }

  /** Re-reads the operator's relay map when a welcome brought a different one; true when it changed. */
  private syncOperatorMap(): boolean {
    const entry = this.client.relayMap
    if (entry === this.operatorMap?.entry) return false
    if (entry === undefined) {
      this.operatorMap = undefined
      return true
    }
    const regions = new Map<number, RelayRegion>()
    const byUrl = new Map<string, number>()
    for (const r of entry.regions) {
      const nodes = r.nodes.map((n) => ({ name: n.name, url: webSocketUrl(n.url), ...(n.stunPort !== undefined ? { stunPort: n.stunPort } : {}) }))
      for (const n of nodes) byUrl.set(n.url, r.id)
      regions.set(r.id, { id: r.id, code: r.code, name: r.name, nodes, ...(r.avoid ? { avoid: true } : {}) })
    }
    // The region of the relay serving the coordination is the home to start from; none when the map does not list it.
    this.operatorMap = { entry, regions, byUrl, suggested: byUrl.get(this.relayURL) }
    return true
  }

  private homeRelayOf(entry: PeerEntry): number | null {
    if (!entry.homeRelay?.url) return null
    try {
      const url = webSocketUrl(entry.homeRelay.url)
      // With an operator map, a URL it does not list is reached through our home relay.
      if (this.operatorMap) return this.operatorMap.byUrl.get(url) ?? null
      return this.regionOf(url)
    } catch {
      // An unusable URL: the peer is reached through our home relay, as if it named none.
      return null
    }
  }

  private peerOf(entry: PeerEntry): NetmapPeer {
    return {
      nodeKey: entry.nodeKey,
      discoKey: entry.discoKey,
      name: entry.hostname,
      addresses: [...entry.addresses],
      allowedIPs: [`${entry.addresses[0]}/32`, `${entry.addresses[1]}/128`],
      homeRelay: this.homeRelayOf(entry),
      online: entry.online,
      lastSeen: entry.lastSeen,
    }
  }

  /** Brings the index in line with the client's map for the keys that changed. */
  private reindex(upsert: readonly string[], remove: readonly string[]): void {
    for (const nodeKey of [...remove, ...upsert]) {
      const entry = this.client.peer(nodeKey)
      if (entry === undefined) this.peerIndex.delete(nodeKey)
      else this.peerIndex.set(nodeKey, this.peerOf(entry))
    }
  }

  private build(): Netmap {
    const self = this.client.self!
    const network = this.client.network
    this.current = {
      self: { nodeKey: self.nodeKey, name: self.hostname, addresses: [...self.addresses], homeRelay: this.homeRelayOf(self) },
      // A copy of references only; the entries themselves were made when they changed.
      peers: [...this.peerIndex.values()],
      peerIndex: this.peerIndex,
      relayMap: this.operatorMap
        ? { regions: this.operatorMap.regions, ...(this.operatorMap.suggested !== undefined ? { suggestedHome: this.operatorMap.suggested } : {}) }
        : { regions: new Map(this.regions), suggestedHome: HOME_REGION },
      ...(network ? { network: { ...network } } : {}),
      ...(this.client.iceServers.length > 0 ? { iceServers: this.client.iceServers } : {}),
    }
    return this.current
  }

  /**
   * The client reports a welcome as `self` then `peers`, synchronously: changes are gathered and
   * the netmap goes out once, on a microtask.
   */
  private changed(upsert: string[], remove: string[]): void {
    if (this.client.self === undefined) return
    const pending = this.pending
    if (pending) {
      pending.upsert.push(...upsert)
      pending.remove.push(...remove)
      return
    }
    this.pending = { upsert: [...upsert], remove: [...remove], other: false }
    queueMicrotask(() => {
      const change = this.pending!
      this.pending = undefined
      if (this.client.state === 'stopped') return
      const regionsBefore = this.current?.relayMap.regions.size ?? 0
      // A new operator map (a welcome after a reconnect) can move every peer's region.
      const mapChanged = this.syncOperatorMap()
      if (mapChanged) this.reindex([...this.peerIndex.keys(), ...this.client.peers().map((p) => p.nodeKey)], [])
      this.reindex(change.upsert, change.remove)
      const netmap = this.build()
      change.other = mapChanged || netmap.relayMap.regions.size !== regionsBefore
      this.emit('netmap', netmap, change)
    })
  }

  private emit<K extends keyof ControlPlaneEvents>(event: K, ...args: Parameters<ControlPlaneEvents[K]>): void {
    for (const listener of this.listeners[event]) {
      try {
        ;(listener as (...a: Parameters<ControlPlaneEvents[K]>) => void)(...args)
      } catch {
        // A listener's bug must not break the control plane.
      }
    }
  }
}

/**
 * The agent's control plane factory for Burrow's coordination: each join talks to the relay
 * behind its `controlURL`. `socketFactory` replaces the WebSocket (tests, or `ws` in Node).
 */
export function coordinationControlPlanes(extra: Pick<CoordinationControlPlaneOptions, 'socketFactory' | 'client'> = {}) {
  return (join: { controlURL: string }, params: ControlPlaneParams): CoordinationControlPlane => new CoordinationControlPlane({ ...extra, ...params, controlURL: join.controlURL })
}
