// The agent's relay connections, one per relay region in use: our home region (kept open, told
// it is preferred: DERP's NotePreferred), plus the home regions of the peers we route through,
// opened when the first such peer is added and closed when the last one goes. Each connection is
// one dataplane underlay whose endpoint is the peer's node key.
import type { RelayMap } from '../control/control-plane.ts'
import { DerpConnection } from '../underlay/derp/connection.ts'
import type { DerpDialer } from '../underlay/derp/dialer.ts'

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
}

export interface RelayLink {
  region: number
  connection: DerpConnection
  underlay: number
  /** Peers routed through this region (the home region is kept regardless). */
  users: number
}

export class RelayError extends Error {
  override readonly name = 'RelayError'
}

export class RelayPool {
  private readonly links = new Map<number, RelayLink>()
  private relayMap: RelayMap = { regions: new Map() }
  private homeRegion: number | undefined
  private readonly onHomeChange = (): void => this.options.onHomeChange?.()

  constructor(private readonly options: RelayPoolOptions) {}

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
    for (const link of this.links.values()) link.connection.close()
    this.links.clear()
    this.homeRegion = undefined
  }

  private open(region: number): RelayLink {
    const existing = this.links.get(region)
    if (existing) return existing
    const url = this.relayMap.regions.get(region)?.nodes[0]?.url
    if (url === undefined) throw new RelayError(`relay region ${region} is not in the relay map`)
    const connection = new DerpConnection({ url, privateKey: this.options.privateKey, dial: this.options.dial })
    const underlay = this.options.attach(connection)
    const link: RelayLink = { region, connection, underlay, users: 0 }
    this.links.set(region, link)
    connection.start()
    return link
  }

  private closeIfUnused(link: RelayLink): void {
    if (link.users > 0 || link.region === this.homeRegion) return
    this.links.delete(link.region)
    try {
      this.options.detach(link.underlay)
    } finally {
      link.connection.close()
    }
  }
}
