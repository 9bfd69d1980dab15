// The relay mesh inside a region, wire-compatible with Tailscale's derper (cmd/derper/mesh.go,
// derp/derphttp RunWatchConnectionLoop): this relay logs in to each other relay of the region as
// a client carrying the mesh key, asks to watch its connections (WatchConns), and learns from
// PeerPresent/PeerGone which node keys that relay holds. A packet from one of our clients for such
// a key goes to that relay as ForwardPacket, and it delivers it to its client. The other relays
// do the same towards us, so a client on relay A reaches a client on relay B of the same region.
import { equalBytes, formatNodeKey } from '../crypto/index.ts'
import { DerpConnection } from '../underlay/derp/connection.ts'
import type { DerpDialer } from '../underlay/derp/dialer.ts'
import { httpUpgradeDialer } from '../underlay/derp/http-dialer.ts'
import { type Logger, silentLogger } from './log.ts'
import type { PacketForwarder, Relay } from './relay.ts'

export class MeshConfigError extends Error {
  override readonly name = 'MeshConfigError'
}

/** A mesh key as derper writes it (`--mesh-psk-file`): 64 hex digits, surrounding space ignored. */
export function parseMeshKey(text: string, source = 'mesh key'): { hex: string; bytes: Uint8Array } {
  const hex = text.trim().toLowerCase()
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new MeshConfigError(`${source} must be 64 hexadecimal digits (32 bytes), like derper's --mesh-psk-file`)
  const bytes = new Uint8Array(32)
  for (let i = 0; i < 32; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return { hex, bytes }
}

/** `host:port`, `[v6]:port` or an http(s) URL → the peer relay's DERP URL. */
export function meshPeerURL(text: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `http://${text}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new MeshConfigError(`--mesh-with ${JSON.stringify(text)} is not HOST:PORT or an http(s) URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MeshConfigError(`--mesh-with ${JSON.stringify(text)} must be http or https, not ${url.protocol}`)
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/derp'
  return url.href
}

export interface MeshOptions {
  relay: Relay
  /** This relay's private key: mesh peers know us by our server key. */
  privateKey: Uint8Array
  meshKey: string
  /** The other relays of the region (DERP URLs). An entry that turns out to be this relay is skipped. */
  peers: string[]
  dial?: DerpDialer
  log?: Logger
}

export interface MeshPeerStatus {
  url: string
  connected: boolean
  /** Node keys that relay holds, as last reported. */
  keys: number
}

export interface Mesh {
  peers(): MeshPeerStatus[]
  close(): void
}

export function startMesh(options: MeshOptions): Mesh {
  const log = options.log ?? silentLogger
  const relay = options.relay
  const dial = options.dial ?? httpUpgradeDialer()
  const links = options.peers.map((url) => {
    const connection = new DerpConnection({ url, privateKey: options.privateKey, meshKey: options.meshKey, watchConnections: true, dial })
    const forwarder: PacketForwarder = { forwardPacket: (source, destination, packet) => connection.forwardPacket(source, destination, packet) }
    const state = { url, connection, connected: false, keys: new Set<string>(), self: false }
    connection.on('connected', (serverKey) => {
      if (equalBytes(serverKey, relay.publicKey)) {
        // derper meshes with every node of the region, itself included, and skips itself the same way.
        state.self = true
        log('info', 'mesh peer is this relay itself; not meshing with it', { url })
        connection.close()
        return
      }
      state.connected = true
      relay.metrics.meshPeersConnected++
      log('info', 'mesh peer connected', { url, peer: formatNodeKey(serverKey) })
    })
    connection.on('peer-present', (key) => {
      if (equalBytes(key, relay.publicKey)) return
      state.keys.add(formatNodeKey(key))
      relay.addPacketForwarder(key, forwarder)
    })
    connection.on('peer-gone', (key) => {
      state.keys.delete(formatNodeKey(key))
      relay.removePacketForwarder(key, forwarder)
    })
    connection.on('disconnected', (reason, retryInMs) => {
      if (state.connected) relay.metrics.meshPeersConnected--
      state.connected = false
      state.keys.clear()
      relay.removeForwarder(forwarder)
      log('warn', 'mesh peer disconnected; retrying', { url, reason, retryInMs })
    })
    connection.start()
    return { state, forwarder }
  })
  return {
    peers: () => links.filter((l) => !l.state.self).map(({ state }) => ({ url: state.url, connected: state.connected, keys: state.keys.size })),
    close() {
      for (const { state, forwarder } of links) {
        if (state.connected) relay.metrics.meshPeersConnected--
        state.connected = false
        state.connection.close()
        relay.removeForwarder(forwarder)
      }
    },
  }
}
