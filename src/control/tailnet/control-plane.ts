// A Tailscale-protocol tailnet (Headscale, or any ts2021 control server) as a ControlPlane: the
// ts2021 client (client.ts) registers and long-polls the map, TailnetMapSession (netmap.ts)
// merges each message into the normalized netmap the agent applies.
//
// Lifecycle (control/controlclient/auto.go and direct.go): register with the auth key (or run
// the interactive login, emitting the AuthURL), then keep one streaming map request open. Each
// new stream is a new map session: its first message is whole, so merging starts afresh, while
// the agent keeps the last netmap until that first message arrives. A home-region change goes to
// control as a "lite" map update (capver ≥ 68: the streaming request is read-only).
import { BurrowError } from '../../burrow-errors.ts'
import { DeadlineTimer, wallClock, type DriverClock } from '../../clock/clock.ts'
import { toHex } from '../../crypto/index.ts'
import { ControlPlaneError, type ControlPlane, type ControlPlaneEvents, type ControlPlaneParams, type ControlPlaneState, type Netmap } from '../control-plane.ts'
import { TailnetControlClient, type MapPoll } from './client.ts'
import type { Ts2021Dialer } from './dial.ts'
import { TailnetMapSession, type TailnetNetmapOptions } from './netmap.ts'
import type { Hostinfo } from './tailcfg.ts'
import type { DiscoKeyText, NodeKeyText } from './tailcfg-requests.ts'

/** Tailscale's address ranges (net/tsaddr: the CGNAT range and the Tailscale ULA). */
const TAILNET_NETWORK = { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd7a:115c:a1e0::/48' }

export interface TailnetControlPlaneOptions extends ControlPlaneParams, TailnetNetmapOptions {
  /** `http(s)://control[:port]`. */
  controlURL: string
  /** The ts2021 transport (HTTP Upgrade in Node, WebSocket in browsers). */
  dialer: Ts2021Dialer
  /** Pinned control key (`mkey:…`) for servers whose /key the page cannot read (no CORS). */
  controlKey?: string
  /** Register as an ephemeral node (removed by control once it goes away). */
  ephemeral?: boolean
  /** `Hostinfo.OS`. */
  os?: string
  /**
   * Epoch time: what `PeerSeenChange` timestamps are taken from and peer key expiry is judged by,
   * and the expiry timer's clock (default `wallClock`; the transport keeps its own timers).
   */
  clock?: DriverClock
  /** Only for tests of version refusal. */
  capabilityVersion?: number
}

type Listeners = { [K in keyof ControlPlaneEvents]: Set<ControlPlaneEvents[K]> }

/** A ControlPlaneError from the transport's BurrowError: its status (or the code's), fatal when retrying cannot help. */
function controlError(error: unknown, fatal: boolean): ControlPlaneError {
  if (error instanceof ControlPlaneError) return error
  if (error instanceof BurrowError) {
    const status = error.status ?? (error.code === 'unauthorized' ? 401 : error.code === 'forbidden' ? 403 : error.code === 'unreachable' ? 0 : 502)
    const wrapped = new ControlPlaneError(status, error.message, fatal)
    ;(wrapped as { cause?: unknown }).cause = error
    return wrapped
  }
  return new ControlPlaneError(0, (error as Error)?.message ?? String(error), fatal)
}

export class TailnetControlPlane implements ControlPlane {
  readonly kind = 'tailnet'
  readonly #client: TailnetControlClient
  readonly #listeners: Listeners = { netmap: new Set(), state: new Set(), error: new Set(), 'auth-url': new Set() }
  readonly #clock: DriverClock
  #session: TailnetMapSession
  #current: Netmap | undefined
  #currentState: ControlPlaneState = 'idle'
  #poll: MapPoll | undefined
  #started = false
  #homeRegion: number | null = null
  /** The PreferredDERP control last accepted from us (register, a map request or a lite update). */
  #reportedRegion: number | null | undefined
  #liteInFlight = false
  readonly #expiryTimer: DeadlineTimer
  readonly #readyPromise: Promise<Netmap>
  #resolveReady!: (netmap: Netmap) => void
  #rejectReady!: (error: ControlPlaneError) => void

  readonly #options: TailnetControlPlaneOptions

  constructor(options: TailnetControlPlaneOptions) {
    this.#options = options
    if (!options.keys.machine) throw new TypeError('a tailnet control plane needs a machine key (keys.machine)')
    this.#clock = options.clock ?? wallClock
    this.#expiryTimer = new DeadlineTimer(this.#clock, () => this.#onExpiry())
    this.#client = new TailnetControlClient({
      controlURL: options.controlURL,
      machinePrivate: options.keys.machine.privateKey,
      dialer: options.dialer,
      ...(options.controlKey !== undefined ? { controlKey: options.controlKey } : {}),
      ...(options.capabilityVersion !== undefined ? { capabilityVersion: options.capabilityVersion } : {}),
    })
    this.#session = new TailnetMapSession(options)
    this.#readyPromise = new Promise((resolve, reject) => {
      this.#resolveReady = resolve
      this.#rejectReady = reject
    })
    this.#readyPromise.catch(() => {})
  }

  get state(): ControlPlaneState {
    return this.#currentState
  }

  get netmap(): Netmap | undefined {
    return this.#current
  }

  get #nodeKey(): NodeKeyText {
    return `nodekey:${toHex(this.#options.keys.node.publicKey)}`
  }

  get #discoKey(): DiscoKeyText {
    return `discokey:${toHex(this.#options.keys.disco.publicKey)}`
  }

  #hostinfo(): Hostinfo {
    return {
      Hostname: this.#options.hostname,
      OS: this.#options.os ?? 'linux',
      IPNVersion: 'burrow',
      // PreferredDERP is the region whose relay we hold; control turns it into our HomeDERP for peers.
      NetInfo: { PreferredDERP: this.#homeRegion ?? 0 },
    }
  }

  on<K extends keyof ControlPlaneEvents>(event: K, listener: ControlPlaneEvents[K]): () => void {
    this.#listeners[event].add(listener)
    return () => this.#listeners[event].delete(listener)
  }

  start(): void {
    if (this.#started) return
    this.#started = true
    this.#setState('connecting')
    void this.#run()
  }

  ready(): Promise<Netmap> {
    return this.#readyPromise
  }

  async #run(): Promise<void> {
    const request = { NodeKey: this.#nodeKey, Hostinfo: this.#hostinfo(), ...(this.#options.ephemeral ? { Ephemeral: true } : {}) }
    try {
      if (this.#options.authKey) {
        await this.#client.registerWithAuthKey(request, this.#options.authKey)
      } else {
        await this.#client.login(request, (url) => {
          this.#setState('needs-login')
          this.#emit('auth-url', url)
        })
      }
    } catch (error) {
      return this.#fail(controlError(error, true))
    }
    if (this.#currentState === 'stopped') return
    this.#poll = this.#client.pollMap({
      request: () => ({ NodeKey: this.#nodeKey, DiscoKey: this.#discoKey, Hostinfo: this.#hostinfo(), Endpoints: [] }),
      onMessage: (message) => this.#onMessage(message),
      onState: (state, detail) => {
        if (state === 'connecting') {
          // A new stream is a new map session (its first message is whole); its request carries
          // the current PreferredDERP, so a lite update in flight for an older one is moot.
          this.#session = new TailnetMapSession(this.#options)
          this.#expiryTimer.arm(undefined)
          this.#reportedRegion = this.#homeRegion
        } else if (state === 'reconnecting') {
          if (detail?.error) this.#emit('error', controlError(detail.error, false))
          this.#setState('reconnecting', detail?.retryInMs !== undefined ? { retryInMs: detail.retryInMs } : undefined)
        } else if (state === 'failed') {
          this.#fail(controlError(detail?.error ?? new BurrowError('coordination', 'the map poll failed'), true))
        }
      },
    })
  }

  #onMessage(message: Parameters<TailnetMapSession['apply']>[0]): void {
    let update
    try {
      update = this.#session.apply(message, this.#clock.now())
    } catch (error) {
      // Our own node was malformed: nothing was merged; the stream goes on (the next message may fix it).
      this.#emit('error', controlError(new BurrowError('protocol', (error as Error).message), false))
      return
    }
    this.#expiryTimer.arm(this.#session.nextEvent())
    if (!update) return
    this.#publish(update)
  }

  /** A peer's key expired (no message from control needed: tailscaled judges KeyExpiry itself too). */
  #onExpiry(): void {
    if (this.#currentState === 'stopped' || this.#currentState === 'failed') return
    const update = this.#session.poll(this.#clock.now())
    this.#expiryTimer.arm(this.#session.nextEvent())
    if (update) this.#publish(update)
  }

  #publish(update: NonNullable<ReturnType<TailnetMapSession['apply']>>): void {
    for (const rejected of update.rejected) this.#emit('error', controlError(new BurrowError('protocol', rejected.message), false))
    const netmap: Netmap = { ...update.netmap, network: TAILNET_NETWORK }
    this.#current = netmap
    if (this.#currentState !== 'connected') {
      this.#setState('connected')
      // A region set while the stream was down goes now (unless the new stream's request carried it).
      this.#sendLiteUpdate()
    }
    this.#resolveReady(netmap)
    this.#emit('netmap', netmap, update.change)
  }

  /**
   * The agent now holds its home relay in `region`: control learns it as Hostinfo.NetInfo.PreferredDERP
   * (and tells peers, as their HomeDERP for us) through a "lite" map update — the streaming request
   * is read-only from capver 68 (tailcfg.go; controlclient/direct.go sends Hostinfo changes the same
   * way). One update is in flight at a time; a region that changed meanwhile is sent when it ends,
   * so control ends up with the latest one. Nothing is sent while the map stream is down, and a
   * failed update is not retried: the next map stream's request carries the current region.
   */
  setHomeRelay(region: number | null): void {
    if (region === this.#homeRegion) return
    this.#homeRegion = region
    this.#sendLiteUpdate()
  }

  /** The region last reported to control (undefined before the first map request). */
  get reportedHomeRelay(): number | null | undefined {
    return this.#reportedRegion
  }

  #sendLiteUpdate(): void {
    // Only on a live stream: while it is down the next map request carries the region anyway.
    if (!this.#poll || this.#currentState !== 'connected' || this.#liteInFlight) return
    if (this.#reportedRegion === this.#homeRegion) return
    const region = this.#homeRegion
    this.#liteInFlight = true
    this.#client
      .liteUpdate({ NodeKey: this.#nodeKey, DiscoKey: this.#discoKey, Hostinfo: this.#hostinfo(), Endpoints: [] })
      .then(
        () => {
          this.#reportedRegion = region
        },
        (error) => this.#emit('error', controlError(error, false)),
      )
      .finally(() => {
        this.#liteInFlight = false
        // Only after a success: a failure waits for the next map stream (a retry loop here would spin while control is down).
        if (this.#reportedRegion === region) this.#sendLiteUpdate()
      })
  }

  async logout(): Promise<void> {
    try {
      await this.#client.logout(this.#nodeKey, this.#hostinfo())
    } catch (error) {
      throw controlError(error, false)
    } finally {
      this.stop()
    }
  }

  stop(): void {
    if (this.#currentState === 'stopped') return
    this.#poll?.stop()
    this.#expiryTimer.arm(undefined)
    this.#client.close()
    this.#rejectReady(new ControlPlaneError(0, 'the control plane was stopped', true))
    this.#setState('stopped')
  }

  #fail(error: ControlPlaneError): void {
    if (this.#currentState === 'stopped' || this.#currentState === 'failed') return
    this.#poll?.stop()
    this.#expiryTimer.arm(undefined)
    this.#rejectReady(error)
    this.#emit('error', error)
    this.#setState('failed', { error })
  }

  #setState(state: ControlPlaneState, detail?: { error?: ControlPlaneError; retryInMs?: number }): void {
    this.#currentState = state
    this.#emit('state', state, detail)
  }

  #emit<K extends keyof ControlPlaneEvents>(event: K, ...args: Parameters<ControlPlaneEvents[K]>): void {
    for (const listener of this.#listeners[event]) {
      try {
        ;(listener as (...a: Parameters<ControlPlaneEvents[K]>) => void)(...args)
      } catch {
        // A listener's bug must not break the control plane.
      }
    }
  }
}

/**
 * The agent's control plane factory for tailnets: each join registers with the ts2021 server
 * behind its `controlURL` over `dialer`.
 */
export function tailnetControlPlanes(dialer: Ts2021Dialer) {
  return (join: { controlURL: string; controlKey?: string; derpOverHTTP?: boolean }, params: ControlPlaneParams): TailnetControlPlane =>
    new TailnetControlPlane({
      ...params,
      controlURL: join.controlURL,
      dialer,
      ...(join.controlKey !== undefined ? { controlKey: join.controlKey } : {}),
      ...(join.derpOverHTTP ? { derpPlainHTTP: true } : {}),
    })
}
