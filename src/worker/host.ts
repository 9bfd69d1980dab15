// The dataplane as the worker runs it: answers the page's requests (see protocol.ts) by driving a
// DataplaneCore through a DataplaneDriver. Independent of the worker global so Node can host it too.
import { parseKey, formatKey } from '../crypto/index.ts'
import { DataplaneCore, type DiscoDatagram } from '../dataplane/core.ts'
import { DataplaneDriver } from '../dataplane/driver.ts'
import { DataplaneError } from '../dataplane/errors.ts'
import type { DriverClock } from '../clock/clock.ts'
import type { UnderlayTransport } from '../dataplane/transport.ts'
import { formatPrefix, parsePrefix, type Prefix } from '../wire/index.ts'
import { PortOverlay, PortUnderlay } from './port-transports.ts'
import {
  serializeError,
  type KeyInput,
  type Request,
  type Responses,
  type StartConfig,
  type UnderlaySpec,
  type WorkerMessage,
  type WorkerPeerConfig,
  type WorkerStatus,
} from './protocol.ts'

export type UnderlayFactory = (spec: UnderlaySpec, reportError: (error: unknown) => void) => UnderlayTransport<unknown>

/** The one kind every host knows: a point-to-point link over a MessagePort. */
const portUnderlay: UnderlayFactory = (spec, reportError) => {
  if (!isMessagePort(spec.port)) throw new DataplaneError('bad-config', 'a "port" underlay needs a MessagePort in `port`')
  return new PortUnderlay(spec.port, reportError)
}

/** What a worker extension (path selection, a node agent) gets to work with once started. */
export interface WorkerContext {
  core: DataplaneCore
  driver: DataplaneDriver
  reportError(error: unknown): void
}

export interface WorkerExtension {
  /** Called when the dataplane starts. */
  onStart?(context: WorkerContext): void
  /** Receives every disco datagram the dataplane hands out. */
  onDisco?(disco: DiscoDatagram, context: WorkerContext): void
  /** Told about every inbound packet the packet filter drops (`peer` is its WireGuard public key). */
  onFilterDrop?(peer: Uint8Array, reason: 'filtered' | 'tsmp', summary: string): void
  /** Counters for the worker's status (`status().counters`), by name. */
  counters?(): Record<string, number>
}

function isMessagePort(value: unknown): value is MessagePort {
  return typeof value === 'object' && value !== null && typeof (value as MessagePort).postMessage === 'function'
}

function toKey(input: KeyInput, what: string): Uint8Array {
  if (input instanceof Uint8Array) {
    if (input.length !== 32) throw new DataplaneError('bad-config', `${what} must be 32 bytes, got ${input.length}`)
    return input
  }
  if (typeof input !== 'string') throw new DataplaneError('bad-config', `${what} must be a string or Uint8Array`)
  return parseKey(input)
}

function toPrefixes(texts: unknown, what: string): Prefix[] {
  if (!Array.isArray(texts)) throw new DataplaneError('bad-config', `${what} must be an array of prefixes`)
  return texts.map((text) => {
    if (typeof text !== 'string') throw new DataplaneError('bad-config', `${what} must hold strings like "10.0.0.2/32"`)
    return parsePrefix(text)
  })
}

interface ParsedPeer {
  publicKey: Uint8Array
  allowedIps: Prefix[]
  presharedKey?: Uint8Array
  persistentKeepalive?: number
  route?: { underlay: number; endpoint: unknown }
}

function parsePeer(config: WorkerPeerConfig): ParsedPeer {
  if (typeof config !== 'object' || config === null) throw new DataplaneError('bad-config', 'a peer must be an object')
  const parsed: ParsedPeer = {
    publicKey: toKey(config.publicKey, 'peer publicKey'),
    allowedIps: toPrefixes(config.allowedIps, 'peer allowedIps'),
  }
  if (config.presharedKey !== undefined) parsed.presharedKey = toKey(config.presharedKey, 'peer presharedKey')
  if (config.persistentKeepalive !== undefined) {
    const seconds = config.persistentKeepalive
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 65535) {
      throw new DataplaneError('bad-config', `persistentKeepalive must be 0..65535 seconds, got ${seconds}`)
    }
    parsed.persistentKeepalive = seconds
  }
  if (config.route !== undefined) {
    if (!Number.isInteger(config.route?.underlay)) throw new DataplaneError('bad-config', 'peer route needs an integer `underlay` id')
    parsed.route = { underlay: config.route.underlay, endpoint: config.route.endpoint ?? null }
  }
  return parsed
}

export interface WorkerHostOptions {
  clock?: DriverClock
  /** `add-underlay` kinds beyond the built-in `port` (a transport the page may ask for by name). */
  underlayKinds?: Readonly<Record<string, UnderlayFactory>>
  /** Code that runs next to the dataplane (path selection, the node agent), in this order. */
  extensions?: readonly WorkerExtension[]
}

export class WorkerHost {
  private core: DataplaneCore | undefined
  private driver: DataplaneDriver | undefined
  private started: WorkerContext | undefined
  private readonly underlayKinds: ReadonlyMap<string, UnderlayFactory>
  private readonly extensions: readonly WorkerExtension[]

  constructor(
    private readonly post: (message: WorkerMessage) => void,
    private readonly options: WorkerHostOptions = {},
  ) {
    this.underlayKinds = new Map([['port', portUnderlay], ...Object.entries(options.underlayKinds ?? {})])
    this.extensions = options.extensions ?? []
  }

  /** The running dataplane (undefined before `start` and after `stop`), for code in the same thread. */
  get context(): WorkerContext | undefined {
    return this.started
  }

  /** Handles one message from the page. Always answers a well-formed request exactly once. */
  handle(data: unknown): void {
    const envelope = data as { id?: unknown; request?: { op?: unknown } }
    if (typeof envelope !== 'object' || envelope === null || !Number.isInteger(envelope.id) || typeof envelope.request?.op !== 'string') {
      this.reportError(new DataplaneError('bad-config', 'malformed request: expected { id: integer, request: { op: string, … } }'))
      return
    }
    const id = envelope.id as number
    try {
      const value = this.request(envelope.request as Request)
      this.post({ type: 'result', id, ok: true, value })
    } catch (error) {
      this.post({ type: 'result', id, ok: false, error: serializeError(error) })
    }
  }

  /** Reports a failure that no request is waiting for. */
  reportError(error: unknown): void {
    this.post({ type: 'error', error: serializeError(error) })
  }

  /** Runs one request synchronously and returns its answer (throws its error): for code in the same thread. */
  request<R extends Request>(request: R): Responses[R['op']]
  request(request: Request): Responses[Request['op']] {
    switch (request.op) {
      case 'start':
        return this.start(request.config)
      case 'add-peer':
        return { peer: this.addPeer(parsePeer(request.peer)) }
      case 'remove-peer': {
        const { core, driver } = this.running()
        const peer = this.peerOf(core, request.publicKey)
        driver.withCore((c) => c.removePeer(peer))
        return null
      }
      case 'add-underlay': {
        const spec = request.spec
        try {
          const { driver } = this.running()
          const factory = this.underlayKinds.get(spec?.kind)
          if (!factory) throw new DataplaneError('bad-config', `unknown underlay kind ${JSON.stringify(spec?.kind)} (known: ${[...this.underlayKinds.keys()].join(', ')})`)
          return { underlay: driver.addUnderlay(factory(spec, (error) => this.reportError(error))) }
        } catch (error) {
          // The page transferred the port away; closing it tells the far end this link is dead.
          if (isMessagePort(spec?.port)) spec.port.close()
          throw error
        }
      }
      case 'remove-underlay':
        this.running().driver.removeUnderlay(request.underlay)
        return null
      case 'set-peer-route': {
        const { core, driver } = this.running()
        const peer = this.peerOf(core, request.publicKey)
        driver.withCore((c) => c.setPeerRoute(peer, request.underlay, request.endpoint ?? null))
        return null
      }
      case 'attach-overlay': {
        if (!isMessagePort(request.port)) throw new DataplaneError('bad-config', 'attach-overlay needs a MessagePort in `port`')
        try {
          const { driver } = this.running()
          const addresses = toPrefixes(request.addresses, 'overlay addresses')
          return { overlay: driver.addOverlay(new PortOverlay(request.port, (error) => this.reportError(error)), addresses) }
        } catch (error) {
          request.port.close()
          throw error
        }
      }
      case 'detach-overlay':
        this.running().driver.removeOverlay(request.overlay)
        return null
      case 'status':
        return this.status()
      case 'stop':
        this.driver?.stop()
        this.driver = undefined
        this.core = undefined
        this.started = undefined
        return null
      default:
        throw new DataplaneError('bad-config', `unknown operation ${JSON.stringify((request as { op: unknown }).op)}`)
    }
  }

  private start(config: StartConfig): Responses['start'] {
    if (this.core) throw new DataplaneError('bad-config', 'the dataplane is already started')
    if (typeof config !== 'object' || config === null) throw new DataplaneError('bad-config', 'start needs a config object')
    const privateKey = toKey(config.privateKey, 'privateKey')
    // Parse everything before building anything, so a bad peer leaves the worker unstarted.
    const peers = (config.peers ?? []).map(parsePeer)
    for (const peer of peers) if (peer.route) throw new DataplaneError('bad-config', 'peer routes need an underlay: add it after start')
    const extensions = this.extensions
    const core: DataplaneCore = new DataplaneCore({
      privateKey,
      ...(extensions.some((e) => e.onFilterDrop)
        ? {
            onFilterDrop: (peer, reason, summary) => {
              const key = core.peerPublicKey(peer)
              for (const e of extensions) e.onFilterDrop?.(key, reason, summary)
            },
          }
        : {}),
    })
    for (const peer of peers) core.addPeer(peer)
    const reportError = (error: unknown): void => this.reportError(error)
    const driver = new DataplaneDriver(core, {
      ...(this.options.clock ? { clock: this.options.clock } : {}),
      onError: reportError,
      ...(extensions.some((e) => e.onDisco)
        ? {
            onDisco: (disco: DiscoDatagram) => {
              for (const e of extensions) e.onDisco?.(disco, context)
            },
          }
        : {}),
    })
    this.core = core
    this.driver = driver
    // onDisco above reads `context` only when a disco datagram arrives, after start() has returned.
    const context: WorkerContext = { core, driver, reportError }
    this.started = context
    for (const extension of extensions) {
      try {
        extension.onStart?.(context)
      } catch (error) {
        reportError(error)
      }
    }
    return { publicKey: formatKey(core.publicKey) }
  }

  private addPeer(peer: ParsedPeer): number {
    const { driver } = this.running()
    return driver.withCore((core) => {
      const id = core.addPeer(peer)
      if (peer.route) {
        try {
          core.setPeerRoute(id, peer.route.underlay, peer.route.endpoint)
        } catch (error) {
          core.removePeer(id)
          throw error
        }
      }
      return id
    })
  }

  private peerOf(core: DataplaneCore, key: KeyInput): number {
    const publicKey = toKey(key, 'peer publicKey')
    const peer = core.peerByKey(publicKey)
    if (peer === undefined) throw new DataplaneError('unknown-peer', `no peer with key ${formatKey(publicKey)}`)
    return peer
  }

  /** The driver's clock is this thread's `performance.now()` unless a test injected another. */
  private toSharedTime(t: number): number {
    return this.options.clock ? t : performance.timeOrigin + t
  }

  private running(): { core: DataplaneCore; driver: DataplaneDriver } {
    if (!this.core || !this.driver) throw new DataplaneError('stopped', 'the dataplane is not started (send "start" first)')
    return { core: this.core, driver: this.driver }
  }

  private status(): WorkerStatus {
    const core = this.core
    if (!core || !this.driver) return { started: false, peers: [], drops: {}, underlays: [], overlays: [] }
    return {
      started: true,
      publicKey: formatKey(core.publicKey),
      peers: core.peerIds().map((peer) => {
        const stats = core.stats(peer)
        return {
          publicKey: formatKey(core.peerPublicKey(peer)),
          allowedIps: core.allowedIpsOf(peer).map(formatPrefix),
          txPackets: stats.txPackets,
          txBytes: stats.txBytes,
          rxPackets: stats.rxPackets,
          rxBytes: stats.rxBytes,
          ...(stats.lastHandshake !== undefined ? { lastHandshake: this.toSharedTime(stats.lastHandshake) } : {}),
          drops: stats.drops,
          ...(stats.route ? { route: { underlay: stats.route.underlay } } : {}),
        }
      }),
      drops: core.drops(),
      driver: { ...this.driver.counters },
      underlays: this.driver.underlayIds(),
      overlays: this.driver.overlayIds(),
      ...(this.extensions.some((e) => e.counters) ? { counters: Object.assign({}, ...this.extensions.map((e) => e.counters?.() ?? {})) as Record<string, number> } : {}),
    }
  }
}
