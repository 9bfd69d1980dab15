// The options of `Burrow.start`, checked before anything starts: each bad one is a BurrowError
// with code `bad-options` naming it. What the worker needs goes on as JoinOptions.
import type { JoinOptions, KeyStorage } from './agent/protocol.ts'
import { BurrowError } from './burrow-errors.ts'

export interface BurrowStartOptions {
  /** The relay's base URL, e.g. `http://127.0.0.1:8080` (coordination at /control, DERP at /derp). */
  controlURL: string
  /** Needed the first time this identity registers; a wrong one makes `start` reject (code `unauthorized`). */
  authKey?: string
  /** The name to register (made a unique DNS label by the coordination service). Default `node`. */
  hostname?: string
  /** Where the node key lives: IndexedDB in browsers, files in Node, or `memory` for an ephemeral identity. */
  storage?: KeyStorage
  /** Which stored identity to use; lets one origin (or one state directory) run several nodes. Default `node`. */
  keyName?: string
  /** Each online peer is pinged this often to measure `rttMs`; 0 turns it off. Default 2000 ms. */
  probeIntervalMs?: number
  /**
   * Largest IP packet this node sends (TCP segments follow from it through the MSS option, so a
   * peer with a smaller MTU still gets segments it can take). Default 16384: every path today is
   * a DERP relay, which carries packets up to 64 KiB, and per-packet costs (headers, checksums,
   * one seal and one message hop per packet) dominate in JavaScript, so big packets move about
   * twice the bytes of 1420-byte ones. Use 1420 where packets must cross plain UDP paths unfragmented.
   */
  mtu?: number
  /**
   * STUN/TURN servers for direct WebRTC paths, e.g. `[{ urls: 'stun:stun.example:3478' }]`.
   * Default: what the relay hands out (its own STUN server, and TURN if it is configured with
   * one); setting this replaces those. None are needed between nodes on one LAN.
   */
  iceServers?: BurrowIceServer[]
  /**
   * Try direct WebRTC datachannels to peers (in Node.js through @roamhq/wrtc; where that binding
   * does not load the node says so once and stays on relays). Traffic starts on the relay and
   * moves to the direct path once it answers disco pings. Default true.
   */
  direct?: boolean
  /**
   * Packet capture of the overlay: every IP packet between this node's TCP/IP stack and the
   * network, both directions. `true` keeps a pcap in memory (up to 64 MiB; `{ maxBytes }` to
   * change) for `captureBlob()`; a function is called with each packet instead (Node writes a
   * file this way: `burrow up --pcap FILE`). The packet must not be kept or changed.
   */
  capture?: boolean | { maxBytes?: number } | PacketTap
  /**
   * The kind of control server behind `controlURL`: `burrow` (a `burrow relay`) or `tailnet` (a
   * Tailscale-protocol server such as Headscale, spoken over ts2021). Default: `tailnet` when the
   * auth key is a Headscale or Tailscale one (`hskey-…`, `tskey-…`), else `burrow`.
   */
  control?: 'burrow' | 'tailnet'
  /** Tailnet only: the control server's key (`mkey:…`), for servers whose `/key` a page cannot read (no CORS). */
  controlKey?: string
  /**
   * Tailnet only: reach the tailnet's DERP servers over plain HTTP (`http://host:port/derp`)
   * instead of HTTPS, as tailscaled does with TS_DEBUG_USE_DERP_HTTP=1. For test tailnets whose
   * DERP servers have no TLS.
   */
  derpOverHTTP?: boolean
  /**
   * Tailnet only, without an `authKey`: control asks a person to log in. Called with the AuthURL
   * (Headscale: `{server_url}/register/<id>`) to show them; `Burrow.start` resolves once they
   * approve (there is no deadline while it waits). The node also dispatches each one as an
   * `auth-url` event (`BurrowAuthURLEvent`), e.g. when control asks again later.
   */
  onAuthURL?: (url: string) => void
  /**
   * The userspace TCP's buffer limits. `maxReceiveWindow`: the cap for receive-window
   * autotuning — each connection starts with a 1 MiB window and grows it with the measured
   * bandwidth-delay product (twice what the application read in one round trip) up to this.
   * Default 2 MiB − 32 bytes (what window scale 5 expresses); a long fat path (e.g. 1 Gbit/s
   * over 100 ms, 12.5 MB in flight) wants 16 MiB or more. `maxSendBuffer`: how far the send
   * buffer may grow (to two congestion windows) once the peer offers a window larger than it.
   * Default 4 MiB. Both 4096..2^30 bytes.
   */
  tcp?: BurrowTcpOptions
  /**
   * The relay region to call home whenever its relays are up (the relay map's region `id`).
   * Default: the region with the lowest measured latency (HTTP probes of each relay), moved only
   * when another is clearly faster; either way the node re-homes when its relay dies.
   */
  homeRegion?: number
  /**
   * Called with debug log lines: disco messages dropped (unknown type, unknown sender), disco
   * pings answered over DERP, inbound packets the tailnet's packet filter drops (denied SYNs,
   * TSMP). The same events are counted in `status().counters` whether or not this is set.
   */
  debug?: (line: string) => void
  /** Test hook: drop every WebRTC signal this node receives, so its direct paths never come up. */
  _debugDropDirectSignals?: boolean
  /** Test hook: seeded loss/delay/reordering on every relay link of this node (src/underlay/fault-injector.ts). */
  _debugRelayFaults?: JoinOptions['relayFaults']
}

/** Sees one overlay IP packet: `in` from the network to this node, `out` from this node. */
export type PacketTap = (packet: Uint8Array, direction: 'in' | 'out') => void

/** What `capture` asks for: an in-memory pcap (with its cap, undefined for the default) or a tap. */
export type CaptureRequest = { kind: 'memory'; maxBytes: number | undefined } | { kind: 'tap'; tap: PacketTap }

function parseCapture(option: BurrowStartOptions['capture']): CaptureRequest | undefined {
  if (option === undefined || option === false) return undefined
  if (typeof option === 'function') return { kind: 'tap', tap: option }
  if (option !== true && (typeof option !== 'object' || option === null))
    throw new BurrowError('bad-options', 'capture must be true, { maxBytes }, or a function (packet, direction) => void')
  const maxBytes = option === true ? undefined : option.maxBytes
  if (maxBytes !== undefined && !(Number.isInteger(maxBytes) && maxBytes >= 1024))
    throw new BurrowError('bad-options', `capture.maxBytes must be a whole number ≥ 1024, got ${maxBytes}`)
  return { kind: 'memory', maxBytes }
}

/** One STUN or TURN server (the shape of `RTCIceServer`). */
export interface BurrowIceServer {
  urls: string | string[]
  username?: string
  credential?: string
}

export const DEFAULT_OVERLAY_MTU = 16384
/** DERP carries packets up to 64 KiB; WireGuard adds 32 bytes and pads to 16. */
export const MAX_OVERLAY_MTU = 65536 - 48

export interface BurrowTcpOptions {
  maxReceiveWindow?: number
  maxSendBuffer?: number
}

function parseTcpOptions(tcp: BurrowStartOptions['tcp']): BurrowTcpOptions {
  if (tcp === undefined) return {}
  if (typeof tcp !== 'object' || tcp === null) throw new BurrowError('bad-options', 'tcp must be an object like { maxReceiveWindow: 16 << 20 }')
  const out: BurrowTcpOptions = {}
  for (const name of ['maxReceiveWindow', 'maxSendBuffer'] as const) {
    const value = tcp[name]
    if (value === undefined) continue
    if (!Number.isInteger(value) || value < 4096 || value > 2 ** 30)
      throw new BurrowError('bad-options', `tcp.${name} must be a whole number of bytes from 4096 to ${2 ** 30}, got ${value}`)
    out[name] = value
  }
  return out
}

export interface StartDefaults {
  storage: KeyStorage
  stateDir?: string
}

/** The join request for the agent and the settings the page keeps (the TCP/IP stack's MTU). */
export function parseStartOptions(
  options: BurrowStartOptions,
  defaults: StartDefaults,
): { join: JoinOptions; mtu: number; capture: CaptureRequest | undefined; tcp: BurrowTcpOptions; debug: ((line: string) => void) | undefined } {
  if (typeof options !== 'object' || options === null) throw new BurrowError('bad-options', 'Burrow.start needs an options object')
  if (typeof options.controlURL !== 'string') throw new BurrowError('bad-options', 'controlURL must be the relay URL, e.g. "http://127.0.0.1:8080"')
  try {
    const protocol = new URL(options.controlURL).protocol
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(protocol)) throw new Error(protocol)
  } catch {
    throw new BurrowError('bad-options', `controlURL ${JSON.stringify(options.controlURL)} is not an http(s) or ws(s) URL`)
  }
  if (options.authKey !== undefined && typeof options.authKey !== 'string') throw new BurrowError('bad-options', 'authKey must be a string')
  const mtu = options.mtu ?? DEFAULT_OVERLAY_MTU
  if (!Number.isInteger(mtu) || mtu < 1280 || mtu > MAX_OVERLAY_MTU) throw new BurrowError('bad-options', `mtu must be a whole number from 1280 to ${MAX_OVERLAY_MTU}, got ${mtu}`)
  const probeIntervalMs = options.probeIntervalMs ?? 2000
  if (!Number.isFinite(probeIntervalMs) || probeIntervalMs < 0) throw new BurrowError('bad-options', `probeIntervalMs must be ≥ 0, got ${probeIntervalMs}`)
  if (options.iceServers !== undefined && !Array.isArray(options.iceServers)) throw new BurrowError('bad-options', 'iceServers must be an array like [{ urls: "stun:host:3478" }]')
  if (options.direct !== undefined && typeof options.direct !== 'boolean') throw new BurrowError('bad-options', 'direct must be true or false')
  const capture = parseCapture(options.capture)
  if (options.onAuthURL !== undefined && typeof options.onAuthURL !== 'function') throw new BurrowError('bad-options', 'onAuthURL must be a function (url) => void')
  const tcp = parseTcpOptions(options.tcp)
  if (options.homeRegion !== undefined && (!Number.isSafeInteger(options.homeRegion) || options.homeRegion < 1))
    throw new BurrowError('bad-options', `homeRegion must be a relay region id (a whole number ≥ 1), got ${JSON.stringify(options.homeRegion)}`)
  if (options.debug !== undefined && typeof options.debug !== 'function') throw new BurrowError('bad-options', 'debug must be a function (line) => void')
  if (options.control !== undefined && options.control !== 'burrow' && options.control !== 'tailnet')
    throw new BurrowError('bad-options', `control must be "burrow" or "tailnet", got ${JSON.stringify(options.control)}`)
  const control = options.control ?? (/^(hskey|tskey)-/.test(options.authKey ?? '') ? 'tailnet' : 'burrow')
  if (options.controlKey !== undefined && !/^mkey:[0-9a-f]{64}$/.test(options.controlKey))
    throw new BurrowError('bad-options', 'controlKey must be "mkey:" and 64 lowercase hex digits')
  const join: JoinOptions = {
    control,
    ...(options.controlKey !== undefined ? { controlKey: options.controlKey } : {}),
    ...(options.derpOverHTTP ? { derpOverHTTP: true } : {}),
    controlURL: options.controlURL,
    hostname: options.hostname ?? 'node',
    storage: options.storage ?? defaults.storage,
    keyName: options.keyName ?? 'node',
    ...(options.authKey ? { authKey: options.authKey } : {}),
    ...(defaults.stateDir !== undefined ? { stateDir: defaults.stateDir } : {}),
    direct: options.direct !== false,
    probeIntervalMs,
    ...(options.homeRegion !== undefined ? { homeRegion: options.homeRegion } : {}),
    ...(options._debugDropDirectSignals ? { dropDirectSignals: true } : {}),
    ...(options._debugRelayFaults ? { relayFaults: options._debugRelayFaults } : {}),
    ...(options.debug ? { debug: true } : {}),
  }
  return { join, mtu, capture, tcp, debug: options.debug }
}
