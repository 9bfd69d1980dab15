// Turns a parsed wg-quick config into a running UDP tunnel: resolves endpoints, binds ListenPort, starts the loop.
import { lookup } from 'node:dns/promises'
import { type WgQuickConfig } from '../control/wg-quick.ts'
import { type PeerId } from '../tunnel/index.ts'
import { type UdpTunnelPeer, UdpTunnelLoop } from '../underlay/udp/udp-tunnel-loop.ts'
import { UdpUnderlay } from '../underlay/udp/udp-underlay.ts'

export class EndpointResolveError extends Error {
  constructor(host: string, cause: unknown) {
    super(`cannot resolve Endpoint host ${JSON.stringify(host)}: ${(cause as Error).message ?? String(cause)}`)
    this.name = 'EndpointResolveError'
  }
}

export interface UdpTunnel {
  loop: UdpTunnelLoop
  underlay: UdpUnderlay
  close(): Promise<void>
}

export async function openUdpTunnel(config: WgQuickConfig, onPacket?: (packet: Uint8Array, peer: PeerId) => void): Promise<UdpTunnel> {
  const peers: UdpTunnelPeer[] = []
  for (const peer of config.peers) {
    let endpoint: UdpTunnelPeer['endpoint']
    if (peer.endpoint) {
      try {
        const { address } = await lookup(peer.endpoint.host)
        endpoint = { address, port: peer.endpoint.port }
      } catch (error) {
        throw new EndpointResolveError(peer.endpoint.host, error)
      }
    }
    peers.push({
      publicKey: peer.publicKey,
      allowedIps: peer.allowedIps,
      ...(peer.presharedKey && { presharedKey: peer.presharedKey }),
      ...(peer.persistentKeepalive !== undefined && { persistentKeepalive: peer.persistentKeepalive }),
      ...(endpoint && { endpoint }),
    })
  }
  const underlay = await UdpUnderlay.open({ port: config.interface.listenPort ?? 0 })
  const loop = new UdpTunnelLoop({
    privateKey: config.interface.privateKey,
    peers,
    underlay,
    localAddresses: config.interface.addresses.map((a) => a.address),
    ...(onPacket && { onPacket }),
  })
  return {
    loop,
    underlay,
    close: async () => {
      await loop.close()
      await underlay.close()
    },
  }
}
