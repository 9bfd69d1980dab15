// A WireGuard node for Node.js from a wg-quick config: the dataplane core and driver, a UDP
// underlay bound to ListenPort, and Burrow's userspace TCP/IP stack holding the [Interface]
// addresses as the local side. Interoperates with any standard WireGuard peer.
import { lookup } from 'node:dns/promises'
import { ConfigError, type WgQuickConfig } from '../control/wg-quick.ts'
import { DataplaneCore } from '../dataplane/core.ts'
import { DataplaneDriver } from '../dataplane/driver.ts'
import type { DriverClock } from '../clock/clock.ts'
import type { OverlayId, UnderlayId, UnderlayTransport } from '../dataplane/transport.ts'
import type { Sockets } from '../overlay/sockets.ts'
import type { PeerId } from '../tunnel/index.ts'
import { type UdpEndpoint, UdpUnderlay } from '../underlay/udp/udp-underlay.ts'
import { StackOverlay, type StackOverlayOptions } from './stack-overlay.ts'

export class EndpointResolveError extends Error {
  override readonly name = 'EndpointResolveError'
  constructor(
    readonly host: string,
    cause: unknown,
  ) {
    super(`cannot resolve Endpoint host ${JSON.stringify(host)}: ${(cause as Error).message ?? String(cause)}`)
  }
}

export interface UdpTunnelOptions {
  /** An open underlay to use instead of binding the config's ListenPort; the tunnel closes it. */
  underlay?: UdpUnderlay
  /**
   * Wraps the UDP underlay before the dataplane uses it, e.g. in a `FaultInjector` to put a lossy
   * network under the tunnel. The tunnel still closes the underlay itself.
   */
  wrapUnderlay?: (underlay: UdpUnderlay) => UnderlayTransport<UdpEndpoint>
  /** Sees every IP packet between the dataplane and the stack (see `StackOverlayOptions.capture`). */
  capture?: StackOverlayOptions['capture']
  /** Handshake messages per second beyond which we answer with cookie replies. Default: the dataplane's. */
  handshakesPerSecondUnderLoad?: number
  /** The dataplane's clock. Default: the system clock. */
  clock?: DriverClock
  /** A transport or handler failed; the dataplane keeps serving everything else. */
  onError?: (error: unknown) => void
}

export interface UdpTunnel {
  /** Read freely; change it only through `driver.withCore`. */
  readonly core: DataplaneCore
  readonly driver: DataplaneDriver
  readonly underlay: UdpUnderlay
  readonly underlayId: UnderlayId
  /** The local side: the TCP/IP stack on the [Interface] addresses, which also answers pings. */
  readonly overlay: StackOverlay
  readonly overlayId: OverlayId
  readonly sockets: Sockets
  /** Peer ids in the config's [Peer] order. */
  readonly peers: readonly PeerId[]
  /** Stops the dataplane and resolves once the sockets are closed. */
  close(): Promise<void>
}

async function resolveEndpoints(config: WgQuickConfig): Promise<Array<UdpEndpoint | undefined>> {
  return Promise.all(
    config.peers.map(async (peer) => {
      if (!peer.endpoint) return undefined
      try {
        const { address } = await lookup(peer.endpoint.host)
        return { address, port: peer.endpoint.port }
      } catch (error) {
        throw new EndpointResolveError(peer.endpoint.host, error)
      }
    }),
  )
}

/**
 * Starts the node: resolves the peers' Endpoint names, binds the UDP port, adds the peers with
 * their AllowedIPs and routes to their endpoints. Peers without an Endpoint become reachable
 * once they are heard from (roaming).
 */
export async function openUdpTunnel(config: WgQuickConfig, options: UdpTunnelOptions = {}): Promise<UdpTunnel> {
  if (config.interface.addresses.length === 0) throw new ConfigError(0, '[Interface] has no Address for the overlay stack')
  const endpoints = await resolveEndpoints(config)
  const overlay = new StackOverlay({
    addresses: config.interface.addresses.map((a) => a.address),
    ...(config.interface.mtu !== undefined && { mtu: config.interface.mtu }),
    ...(options.capture && { capture: options.capture }),
  })
  const core = new DataplaneCore({
    privateKey: config.interface.privateKey,
    ...(options.handshakesPerSecondUnderLoad !== undefined && { handshakesPerSecondUnderLoad: options.handshakesPerSecondUnderLoad }),
  })
  const peers = config.peers.map((peer) =>
    core.addPeer({
      publicKey: peer.publicKey,
      allowedIps: peer.allowedIps,
      ...(peer.presharedKey && { presharedKey: peer.presharedKey }),
      ...(peer.persistentKeepalive !== undefined && { persistentKeepalive: peer.persistentKeepalive }),
    }),
  )
  const underlay = options.underlay ?? (await UdpUnderlay.open({ port: config.interface.listenPort ?? 0 }))
  const driver = new DataplaneDriver(core, {
    ...(options.clock && { clock: options.clock }),
    ...(options.onError && { onError: options.onError }),
  })
  let underlayId: UnderlayId
  let overlayId: OverlayId
  try {
    underlayId = driver.addUnderlay(options.wrapUnderlay ? options.wrapUnderlay(underlay) : underlay)
    overlayId = driver.addOverlay(overlay, overlay.prefixes)
    driver.withCore((c) => {
      peers.forEach((peer, i) => {
        const endpoint = endpoints[i]
        if (endpoint) c.setPeerRoute(peer, underlayId, endpoint)
      })
    })
  } catch (error) {
    driver.stop()
    await underlay.close()
    throw error
  }
  return {
    core,
    driver,
    underlay,
    underlayId,
    overlay,
    overlayId,
    sockets: overlay.sockets,
    peers,
    close: async () => {
      driver.stop()
      await underlay.close()
    },
  }
}
