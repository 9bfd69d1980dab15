// One served overlay TCP port: accepts overlay connections, applies the allow policy (a denied
// peer gets a reset), and bridges the rest to a real HOST:PORT. Every decision is reported
// through `onEvent` so the CLI can log who connected to what and when.
import { systemClock, type Timer } from '../clock/clock.ts'
import type { TCPServerSocket, TCPSocket } from '../overlay/index.ts'
import type { AllowPolicy, PeerIdentity } from './allow.ts'
import { TcpBridge, formatRemote, type BridgeReport, type ServiceTarget, type TcpBridgeOptions } from './bridge.ts'

export type ServiceEvent =
  | { type: 'accepted'; port: number; target: ServiceTarget; remote: string; peer: string | undefined; rule: string | undefined }
  | { type: 'denied'; port: number; remote: string; peer: string | undefined; reason: string }
  | ({ type: 'ended'; port: number; target: ServiceTarget; remote: string; peer: string | undefined; durationMs: number } & BridgeReport)

export interface TcpServiceOptions extends TcpBridgeOptions {
  /** The overlay port peers connect to. */
  port: number
  target: ServiceTarget
  policy: AllowPolicy
  /** The live peer map (for the policy and for naming peers in events). */
  peers: () => Iterable<PeerIdentity>
  /**
   * Resolves at the peer map's next update. A new peer's packets can arrive before its name does
   * (the dataplane takes a netmap change at once, the peer list follows it a moment later), so a
   * connection from an address the map does not list yet is checked again as updates come, for
   * up to UNLISTED_PEER_WAIT_MS, before it is refused. Without it the first check is final.
   */
  peersChanged?: () => Promise<void>
  onEvent?: (event: ServiceEvent) => void
  /** Bridged connections at once; more are reset (each holds a real socket). Default 1024. */
  maxConnections?: number
  /** Milliseconds for `durationMs`; performance.now by default. */
  now?: () => number
}

/** How long a connection from an address not (yet) in the peer map waits for the map before the policy refuses it. */
export const UNLISTED_PEER_WAIT_MS = 2000

export class TcpService {
  /** Bridges in progress. */
  readonly active = new Set<TcpBridge>()
  private stopped = false
  private readonly loop: Promise<void>
  /** Resolves once the overlay port is listening; rejects (e.g. port taken) with the listen error. */
  readonly ready: Promise<void>

  constructor(
    private readonly server: TCPServerSocket,
    private readonly options: TcpServiceOptions,
  ) {
    this.ready = server.opened.then(() => undefined)
    this.ready.catch(() => {}) // reported through `ready` to whoever awaits it
    this.loop = this.acceptLoop()
  }

  private async acceptLoop(): Promise<void> {
    let readable: ReadableStream<TCPSocket>
    try {
      ;({ readable } = await this.server.opened)
    } catch {
      return
    }
    const reader = readable.getReader()
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true as const, value: undefined }))
      if (done || this.stopped) {
        if (value) void value.close()
        return
      }
      void this.handle(value)
    }
  }

  private async handle(socket: TCPSocket): Promise<void> {
    const { port, target, policy } = this.options
    const now = this.options.now ?? (() => performance.now())
    let info
    try {
      info = await socket.opened
    } catch {
      return // gone before we looked at it
    }
    const remote = formatRemote(info.remoteAddress, info.remotePort)
    let decision = policy.check(info.remoteAddress, this.options.peers())
    const changed = this.options.peersChanged
    if (!decision.allowed && decision.peer === undefined && changed) {
      const deadline = now() + UNLISTED_PEER_WAIT_MS
      while (!decision.allowed && decision.peer === undefined && !this.stopped && now() < deadline) {
        let timer: Timer | undefined
        await Promise.race([changed(), new Promise((resolve) => (timer = systemClock.setTimer(systemClock.now() + Math.max(0, deadline - now()), () => resolve(undefined))))])
        timer?.clear()
        decision = policy.check(info.remoteAddress, this.options.peers())
      }
    }
    const peer = decision.peer?.hostname
    const limit = this.options.maxConnections ?? 1024
    const refusal = !decision.allowed ? decision.reason : this.active.size >= limit ? `${limit} connections are already open on port ${port}` : undefined
    if (refusal !== undefined) {
      // A reset, not a silent drop: the remote application gets an immediate, clear error.
      info.writable.abort().catch(() => {})
      info.readable.cancel().catch(() => {})
      this.options.onEvent?.({ type: 'denied', port, remote, peer, reason: refusal })
      return
    }
    this.options.onEvent?.({ type: 'accepted', port, target, remote, peer, rule: decision.allowed ? decision.rule : undefined })
    const started = now()
    const bridge = TcpBridge.start(socket, target, this.options)
    this.active.add(bridge)
    const report = await bridge.done
    this.active.delete(bridge)
    this.options.onEvent?.({ type: 'ended', port, target, remote, peer, durationMs: Math.round(now() - started), ...report })
  }

  /** Stops accepting and closes every bridged connection (FIN where possible). */
  async close(): Promise<void> {
    this.stopped = true
    await this.server.close()
    await Promise.all([...this.active].map((bridge) => bridge.close()))
    await this.loop.catch(() => {})
  }
}
