// `--serve-udp PORT=HOST:PORT`: datagrams to an overlay UDP port go to a real HOST:PORT from one
// real socket per overlay remote (so the service's replies find their way back to the right
// peer), and sessions idle for `idleMs` are closed. UDP has no backpressure: a slow side drops.
import { createSocket, type Socket as DgramSocket } from 'node:dgram'
import { isIPv6 } from 'node:net'
import { DEFAULT_MTU, type UDPSocket, type UdpMessage } from '../overlay/index.ts'
import type { AllowPolicy, PeerIdentity } from './allow.ts'
import { formatRemote, type ServiceTarget } from './bridge.ts'
import { UdpSessionTable } from './udp-sessions.ts'

export type UdpForwardEvent =
  | { type: 'udp-session'; port: number; target: ServiceTarget; remote: string; peer: string | undefined }
  | { type: 'udp-denied'; port: number; remote: string; peer: string | undefined; reason: string }
  | { type: 'udp-dropped'; port: number; remote: string; peer: string | undefined; reason: string }
  | {
      type: 'udp-session-ended'
      port: number
      remote: string
      peer: string | undefined
      why: 'idle' | 'evicted' | 'service-error' | 'shutdown'
      detail?: string
      datagramsIn: number
      datagramsOut: number
    }

export interface UdpForwarderOptions {
  port: number
  target: ServiceTarget
  policy: AllowPolicy
  peers: () => Iterable<PeerIdentity>
  onEvent?: (event: UdpForwardEvent) => void
  /** A session with no datagram either way for this long is closed. Default 60 s. */
  idleMs?: number
  /** Concurrent remotes; the least recently active is evicted beyond this. Default 1024. */
  maxSessions?: number
  now?: () => number
  /** The overlay stack's MTU (bigger replies cannot be sent back and are dropped). Default the Stack's DEFAULT_MTU. */
  mtu?: number
}

interface Session {
  remoteAddress: string
  remotePort: number
  peer: string | undefined
  socket: DgramSocket
  connected: boolean
  /** Datagrams that arrived before the real socket finished connecting (bounded). */
  early: Uint8Array[]
  datagramsIn: number
  datagramsOut: number
}

const MAX_EARLY = 64

export class UdpForwarder {
  private readonly sessions: UdpSessionTable<Session>
  private readonly now: () => number
  private timer: ReturnType<typeof setTimeout> | undefined
  private writer: WritableStreamDefaultWriter<UdpMessage> | undefined
  private closed = false
  private readonly loop: Promise<void>
  /** Resolves once the overlay port is bound; rejects (e.g. port taken) with the bind error. */
  readonly ready: Promise<void>
  /** Datagrams denied by the policy or lost to a failing real socket. */
  dropped = 0

  constructor(
    private readonly overlay: UDPSocket,
    private readonly options: UdpForwarderOptions,
  ) {
    this.sessions = new UdpSessionTable(options.idleMs ?? 60_000, options.maxSessions ?? 1024)
    this.now = options.now ?? (() => performance.now())
    this.ready = overlay.opened.then(() => undefined)
    this.ready.catch(() => {}) // reported through `ready` to whoever awaits it
    this.loop = this.run().catch(() => {})
  }

  get sessionCount(): number {
    return this.sessions.size
  }

  private async run(): Promise<void> {
    const { readable, writable } = await this.overlay.opened
    this.writer = writable.getWriter()
    const reader = readable.getReader()
    for (;;) {
      const result = await reader.read().catch(() => ({ done: true as const, value: undefined }))
      if (result.done || this.closed) return
      this.fromOverlay(result.value)
    }
  }

  private fromOverlay(message: Required<UdpMessage>): void {
    const key = `${message.remoteAddress}|${message.remotePort}`
    const now = this.now()
    let session = this.sessions.get(key)
    if (!session) {
      const remote = formatRemote(message.remoteAddress, message.remotePort)
      const decision = this.options.policy.check(message.remoteAddress, this.options.peers())
      if (!decision.allowed) {
        this.dropped++
        this.options.onEvent?.({ type: 'udp-denied', port: this.options.port, remote, peer: decision.peer?.hostname, reason: decision.reason })
        return
      }
      session = this.open(key, message, decision.peer?.hostname)
      const evicted = this.sessions.add(key, session, now)
      if (evicted) this.end(evicted, 'evicted')
      this.options.onEvent?.({ type: 'udp-session', port: this.options.port, target: this.options.target, remote, peer: session.peer })
    } else {
      this.sessions.touch(key, now)
    }
    session.datagramsIn++
    if (session.connected) session.socket.send(message.data)
    else if (session.early.length < MAX_EARLY) session.early.push(message.data)
    else this.dropped++
    this.schedule()
  }

  private open(key: string, message: Required<UdpMessage>, peer: string | undefined): Session {
    const { host, port } = this.options.target
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4')
    const session: Session = { remoteAddress: message.remoteAddress, remotePort: message.remotePort, peer, socket, connected: false, early: [], datagramsIn: 0, datagramsOut: 0 }
    const limit = (this.options.mtu ?? DEFAULT_MTU) - (message.remoteAddress.includes(':') ? 40 : 20) - 8
    socket.on('message', (data) => {
      this.sessions.touch(key, this.now())
      if (data.length > limit) {
        // Checked here because an oversized write would error the overlay socket for every flow.
        this.dropped++
        this.options.onEvent?.({
          type: 'udp-dropped',
          port: this.options.port,
          remote: formatRemote(session.remoteAddress, session.remotePort),
          peer,
          reason: `a ${data.length}-byte reply from ${host}:${port} exceeds the ${limit}-byte UDP payload the tunnel MTU allows`,
        })
        return
      }
      session.datagramsOut++
      this.writer?.write({ data, remoteAddress: session.remoteAddress, remotePort: session.remotePort }).catch(() => this.dropped++)
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // ECONNREFUSED is the ICMP "port unreachable" of a connected socket: nothing listens there.
      if (this.sessions.get(key) === session) this.sessions.delete(key)
      this.end(session, 'service-error', error.code === 'ECONNREFUSED' ? `${host}:${port}: nothing is listening` : `${host}:${port}: ${error.message}`)
    })
    socket.connect(port, host, () => {
      session.connected = true
      for (const data of session.early.splice(0)) socket.send(data)
    })
    return session
  }

  private end(session: Session, why: 'idle' | 'evicted' | 'service-error' | 'shutdown', detail?: string): void {
    try {
      session.socket.close()
    } catch {
      // already closed
    }
    this.options.onEvent?.({
      type: 'udp-session-ended',
      port: this.options.port,
      remote: formatRemote(session.remoteAddress, session.remotePort),
      peer: session.peer,
      why,
      ...(detail !== undefined ? { detail } : {}),
      datagramsIn: session.datagramsIn,
      datagramsOut: session.datagramsOut,
    })
  }

  private schedule(): void {
    if (this.closed) return
    const next = this.sessions.nextEvent()
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    if (next === undefined) return
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        for (const [, session] of this.sessions.expire(this.now())) this.end(session, 'idle')
        this.schedule()
      },
      Math.max(0, next - this.now()),
    )
    this.timer.unref?.()
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    // Everything counts as idle at the end of time.
    for (const [, session] of this.sessions.expire(Infinity)) this.end(session, 'shutdown')
    await this.overlay.close()
    await this.loop.catch(() => {})
  }
}
