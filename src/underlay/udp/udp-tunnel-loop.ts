// A deliberately thin Node driver: one Tunnel, one UdpUnderlay, one timer. It exists so the CLI and the
// wireguard-go interop tests can run today; the dataplane driver (queues, many transports) replaces it.
import { type PeerId, Tunnel } from '../../tunnel/index.ts'
import { type IpAddress, type Prefix } from '../../wire/address.ts'
import { ipDestination, ipSource } from '../../wire/ip.ts'
import { AllowedIps } from './allowed-ips.ts'
import { echoReplyFor } from './echo-responder.ts'
import { endpointBytes, type UdpEndpoint, type UdpUnderlay } from './udp-underlay.ts'

/** With nothing scheduled the loop still wakes this often (never sleeps forever, never spins). */
export const MAX_IDLE_SLEEP_MS = 5000
/** setTimeout cannot wait longer than this; a later deadline is reached in several sleeps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** How long to sleep: exactly until `deadline` (0 when it has passed), or `maxIdle` when there is none. */
export function nextWakeupDelay(deadline: number | undefined, now: number, maxIdle = MAX_IDLE_SLEEP_MS): number {
  if (deadline === undefined) return maxIdle
  return Math.min(MAX_TIMER_MS, Math.max(0, deadline - now))
}

export interface UdpTunnelPeer {
  publicKey: Uint8Array
  presharedKey?: Uint8Array
  /** Seconds; undefined = off. */
  persistentKeepalive?: number
  allowedIps: Prefix[]
  /** Where to send until the peer is heard from somewhere else. */
  endpoint?: UdpEndpoint
}

export interface UdpTunnelLoopOptions {
  privateKey: Uint8Array
  peers: UdpTunnelPeer[]
  underlay: UdpUnderlay
  /** Our overlay addresses; echo requests to them are answered by the loop itself. */
  localAddresses?: IpAddress[]
  /** Receives every decrypted packet that passed the AllowedIPs source check (and was not an echo request we answered). */
  onPacket?: (packet: Uint8Array, peer: PeerId) => void
  /** Monotonic clock in ms; default performance.now(). Handshake timestamps map it to wall time by its offset from Date.now(). */
  now?: () => number
}

export type SendOutcome = 'sent' | 'not-ip' | 'no-route' | 'no-endpoint' | 'closed'

export class UdpTunnelLoop {
  readonly tunnel: Tunnel
  readonly counters = { wakeups: 0, noRoute: 0, noEndpoint: 0, sourceNotAllowed: 0, echoRepliesSent: 0, roamed: 0 }
  private readonly routes = new AllowedIps<PeerId>()
  private readonly endpoints = new Map<PeerId, UdpEndpoint>()
  private readonly peerList: PeerId[] = []
  private readonly underlay: UdpUnderlay
  private readonly localAddresses: IpAddress[]
  private readonly onPacket: ((packet: Uint8Array, peer: PeerId) => void) | undefined
  private readonly now: () => number
  private timer: ReturnType<typeof setTimeout> | undefined
  /** The tunnel deadline the pending timer was set for (undefined: the idle cap). */
  private timerDeadline: number | undefined
  private closed = false

  constructor(options: UdpTunnelLoopOptions) {
    this.now = options.now ?? (() => performance.now())
    this.tunnel = new Tunnel({ privateKey: options.privateKey, wallClockOffset: Date.now() - this.now() })
    this.underlay = options.underlay
    this.localAddresses = options.localAddresses ?? []
    this.onPacket = options.onPacket
    for (const peer of options.peers) {
      const id = this.tunnel.addPeer({
        publicKey: peer.publicKey,
        ...(peer.presharedKey && { presharedKey: peer.presharedKey }),
        ...(peer.persistentKeepalive !== undefined && { persistentKeepalive: peer.persistentKeepalive }),
      })
      this.peerList.push(id)
      for (const prefix of peer.allowedIps) this.routes.add(prefix, id)
      if (peer.endpoint) this.endpoints.set(id, peer.endpoint)
    }
    this.underlay.start((from, datagrams) => {
      for (const datagram of datagrams) this.receive(datagram, from)
    })
    this.schedule(this.now())
  }

  /** Peer ids in the order the peers were given. */
  get peers(): readonly PeerId[] {
    return this.peerList
  }

  endpointOf(peer: PeerId): UdpEndpoint | undefined {
    return this.endpoints.get(peer)
  }

  /** Routes an IP packet to the peer whose AllowedIPs best match its destination and sends it (or starts a handshake). */
  send(packet: Uint8Array): SendOutcome {
    if (this.closed) return 'closed'
    const destination = ipDestination(packet)
    if (!destination) return 'not-ip'
    const peer = this.routes.lookup(destination)
    if (peer === undefined) {
      this.counters.noRoute++
      return 'no-route'
    }
    const endpoint = this.endpoints.get(peer)
    if (!endpoint) {
      this.counters.noEndpoint++
      return 'no-endpoint'
    }
    const now = this.now()
    this.underlay.send(endpoint, this.tunnel.send(peer, packet, now))
    this.schedule(now)
    return 'sent'
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
  }

  private receive(datagram: Uint8Array, from: UdpEndpoint): void {
    if (this.closed) return
    const now = this.now()
    const result = this.tunnel.receive(datagram, now, endpointBytes(from))
    this.underlay.send(from, result.replies)
    const peer = result.peer
    if (peer !== undefined && result.dropped === undefined) {
      const known = this.endpoints.get(peer)
      if (!known || known.address !== from.address || known.port !== from.port) {
        if (known) this.counters.roamed++
        this.endpoints.set(peer, from)
      }
      for (const packet of result.packets) this.deliver(packet, peer)
    }
    this.schedule(now)
  }

  private deliver(packet: Uint8Array, peer: PeerId): void {
    const source = ipSource(packet)
    if (!source || !this.routes.allows(peer, source)) {
      this.counters.sourceNotAllowed++
      return
    }
    const reply = echoReplyFor(packet, this.localAddresses)
    if (reply) {
      this.counters.echoRepliesSent++
      this.send(reply)
      return
    }
    this.onPacket?.(packet, peer)
  }

  private wake(): void {
    this.timer = undefined
    if (this.closed) return
    this.counters.wakeups++
    const now = this.now()
    for (const { peer, message } of this.tunnel.poll(now)) {
      const endpoint = this.endpoints.get(peer)
      if (endpoint) this.underlay.send(endpoint, [message])
      else this.counters.noEndpoint++
    }
    this.schedule(now)
  }

  private schedule(now: number): void {
    if (this.closed) return
    const deadline = this.tunnel.nextEvent()
    // Most packets leave the deadline where it was; re-arming a timer per packet would cost more than the crypto.
    if (this.timer !== undefined && deadline === this.timerDeadline) return
    clearTimeout(this.timer)
    this.timerDeadline = deadline
    this.timer = setTimeout(() => this.wake(), nextWakeupDelay(deadline, now))
  }
}
