// The agent's relay connections, one per relay region in use: our home region (kept open, told
// it is preferred: DERP's NotePreferred), plus the home regions of the peers we route through,
// opened when the first such peer is added and closed when the last one goes. Each connection is
// one dataplane underlay whose endpoint is the peer's node key.
//
// Failover inside a region: the relays of a region are meshed (any of them reaches every client of
// the region), so when a link's relay drops the link moves to the region's next relay at once
// (DerpConnection.retarget: the same underlay, so every route through it stays valid and packets
// queue meanwhile). When every relay of the region has failed in a row, `onRegionDown` says so;
// for the home region the agent then re-homes to another region (see home-picker.ts).
import type { RelayMap } from '../control/control-plane.ts'
import { DerpConnection } from '../underlay/derp/connection.ts'
import { webSocketUrl, type DerpDialer } from '../underlay/derp/dialer.ts'

export interface RelayPoolOptions {
  dial: DerpDialer
  /** The node key: DERP logs in with the same key the dataplane runs. */
  privateKey: Uint8Array
  /** Makes the connection a dataplane underlay and returns its id. */
  attach(connection: DerpConnection): number
  /** Removes an underlay `attach` made. */
  detach(underlay: number): void
  /** The home relay connected or lost its connection. */
  onHomeChange?(): void
  /** Every relay of `region` failed in a row (the link keeps retrying them). */
  onRegionDown?(region: number): void
  /** A link moved to another relay of its region. */
  onRelayChange?(region: number, url: string): void
}

export interface RelayLink {
  region: number
  connection: DerpConnection
  underlay: number
  /** Peers routed through this region (the home region is kept regardless). */
  users: number
  /** Index in the region's relays of the one dialed. */
  node: number
  /** Relays that failed since the link was last logged in. */
  failures: number
  /** Removes the link's failover listeners. */
  unwatch(): void
}

export class RelayError extends Error {
  override readonly name = 'RelayError'
}

export class RelayPool {
  private readonly links = new Map<number, RelayLink>()
  private relayMap: RelayMap = { regions: new Map() }
  private homeRegion: number | undefined
  /** A connection dialed before the relay map was known (`preconnect`), not yet a link. */
  private early: { url: string; connection: DerpConnection } | undefined
  private readonly onHomeChange = (): void => this.options.onHomeChange?.()

  constructor(private readonly options: RelayPoolOptions) {}

  /**
   * Dials `url` now, before the relay map says which relay is home, and holds the login (the relay
   * may admit only registered keys): the WebSocket, the relay's ServerKey and the key agreement
   * happen while the node registers. The first link opened to the same URL takes the connection
   * over and logs in; `dropEarly` closes it if none did.
   */
  preconnect(url: string): void {
    if (this.early || this.links.size > 0) return
    const connection = new DerpConnection({ url, privateKey: this.options.privateKey, dial: this.options.dial, holdLogin: true })
    this.early = { url: sameRelay(url), connection }
    connection.start()
  }

  /** Closes the connection `preconnect` made if no link took it over. */
  dropEarly(): void {
    this.early?.connection.close()
    this.early = undefined
  }

  /** The regions links are dialed from; a link already open keeps its relay. */
  setRelayMap(relayMap: RelayMap): void {
    this.relayMap = relayMap
  }

  get home(): RelayLink | undefined {
    return this.homeRegion === undefined ? undefined : this.links.get(this.homeRegion)
  }

  linkOf(region: number): RelayLink | undefined {
    return this.links.get(region)
  }

  /** The region whose link is underlay `underlay`, or undefined when it is no relay link. */
  regionOf(underlay: number): number | undefined {
    for (const link of this.links.values()) if (link.underlay === underlay) return link.region
    return undefined
  }

  /** The underlay ids of every relay link (a route on any other underlay is a direct path). */
  underlays(): Set<number> {
    return new Set([...this.links.values()].map((link) => link.underlay))
  }

  /** Makes `region` home: opened if needed and preferred; the old home is let go unless peers use it. */
  setHome(region: number): RelayLink {
    if (region === this.homeRegion) return this.home!
    const link = this.open(region)
    const old = this.home
    this.homeRegion = region
    link.connection.setPreferred(true)
    link.connection.on('connected', this.onHomeChange)
    link.connection.on('disconnected', this.onHomeChange)
    if (old) {
      old.connection.setPreferred(false)
      old.connection.off('connected', this.onHomeChange)
      old.connection.off('disconnected', this.onHomeChange)
      this.closeIfUnused(old)
    }
    return link
  }

  /** One more peer routed through `region`. */
  acquire(region: number): RelayLink {
    const link = this.open(region)
    link.users++
    return link
  }

  release(region: number): void {
    const link = this.links.get(region)
    if (!link) return
    link.users = Math.max(0, link.users - 1)
    this.closeIfUnused(link)
  }

  close(): void {
    this.dropEarly()
    for (const link of this.links.values()) {
      link.unwatch()
      link.connection.close()
    }
    this.links.clear()
    this.homeRegion = undefined
  }

  private open(region: number): RelayLink {
    const existing = this.links.get(region)
    if (existing) return existing
    const nodes = this.relayMap.regions.get(region)?.nodes
    const url = nodes?.[0]?.url
    if (url === undefined) throw new RelayError(`relay region ${region} is not in the relay map`)
    const early = this.early
    const adopt = early !== undefined && early.url === sameRelay(url)
    if (adopt) this.early = undefined
    const connection = adopt ? early.connection : new DerpConnection({ url, privateKey: this.options.privateKey, dial: this.options.dial })
    const underlay = this.options.attach(connection)
    const onConnected = (): void => {
      link.failures = 0
    }
    const onDisconnected = (): void => this.failover(link)
    connection.on('connected', onConnected)
    connection.on('disconnected', onDisconnected)
    const link: RelayLink = {
      region,
      connection,
      underlay,
      users: 0,
      node: 0,
      failures: 0,
      unwatch: () => {
        connection.off('connected', onConnected)
        connection.off('disconnected', onDisconnected)
      },
    }
    this.links.set(region, link)
    if (adopt) connection.login()
    else connection.start()
    return link
  }

  /**
   * The link's relay dropped: on to the region's next relay at once, unless every relay of the
   * region failed since the last login: then the connection's own backoff paces the next try (no
   * tight loop over dead relays) and the region is reported down, once per streak.
   */
  private failover(link: RelayLink): void {
    if (this.links.get(link.region) !== link) return
    link.failures++
    const nodes = this.relayMap.regions.get(link.region)?.nodes ?? []
    const count = Math.max(1, nodes.length)
    if (link.failures === count) this.options.onRegionDown?.(link.region)
    if (nodes.length > 1) {
      link.node = (link.node + 1) % nodes.length
      const url = nodes[link.node]!.url
      if (link.failures % count !== 0) link.connection.retarget(url)
      else link.connection.url = url
      this.options.onRelayChange?.(link.region, url)
    }
  }

  private closeIfUnused(link: RelayLink): void {
    if (link.users > 0 || link.region === this.homeRegion) return
    this.links.delete(link.region)
    link.unwatch()
    try {
      this.options.detach(link.underlay)
    } finally {
      link.connection.close()
    }
  }
}

/** A relay URL in the form the dialer uses (`http://h/derp` and `ws://h/derp` are the same relay), or the text itself if it is not one. */
function sameRelay(url: string): string {
  try {
    return webSocketUrl(url)
  } catch {
    return url
  }
}
