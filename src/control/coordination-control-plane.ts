// Burrow's own coordination (the relay's /control WebSocket) as a ControlPlane: the
// CoordinationClient's live peer map, normalized into a netmap. Relays are named by URL in this
// protocol; the netmap names them by region, so each distinct relay URL becomes a region, the
// relay serving the coordination being region 1 (and the suggested home).
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
import type { HomeRelay, PeerEntry } from './protocol.ts'

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
    this.reindex(
      this.client.peers().map((p) => p.nodeKey),
      [],
    )
    return this.build()
  }

  setHomeRelay(region: number | null): void {
    if (region === this.homeRegion) return
    const url = region === null ? undefined : this.regions.get(region)?.nodes[0]?.url
    if (region !== null && url === undefined) throw new ControlPlaneError(400, `relay region ${region} is not in the relay map`)
    this.homeRegion = region ?? HOME_REGION
    const homeRelay: HomeRelay | null = url === undefined ? null : { url }
    this.client.setHomeRelay(homeRelay)
  }

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

  private homeRelayOf(entry: PeerEntry): number | null {
    if (!entry.homeRelay?.url) return null
    try {
      return this.regionOf(webSocketUrl(entry.homeRelay.url))
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
      relayMap: { regions: new Map(this.regions), suggestedHome: HOME_REGION },
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
      this.reindex(change.upsert, change.remove)
      const netmap = this.build()
      change.other = netmap.relayMap.regions.size !== regionsBefore
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
