// A DERP relay connection as a dataplane underlay transport: the endpoint is the peer's node key.
import type { UnderlayTransport } from '../../dataplane/transport.ts'
import type { DerpConnection } from './connection.ts'
import { keyIdOf } from './key-id.ts'

export class DerpUnderlay implements UnderlayTransport<Uint8Array> {
  private deliver: ((endpoint: Uint8Array, datagrams: Uint8Array[]) => void) | undefined
  private batch = new Map<string, [Uint8Array, Uint8Array[]]>()
  private deliverQueued = false
  private readonly onPacket = (source: Uint8Array, packet: Uint8Array): void => {
    const id = keyIdOf(source)
    const entry = this.batch.get(id)
    if (entry) entry[1].push(packet)
    else this.batch.set(id, [source.slice(), [packet]])
    if (this.deliverQueued) return
    this.deliverQueued = true
    // Packets parsed from one WebSocket message reach the dataplane as one batch per peer.
    queueMicrotask(() => this.flush())
  }

  constructor(readonly connection: DerpConnection) {}

  send(endpoint: Uint8Array, datagrams: Uint8Array[]): void {
    for (const datagram of datagrams) this.connection.send(endpoint, datagram)
  }

  start(deliver: (endpoint: Uint8Array, datagrams: Uint8Array[]) => void): void {
    this.deliver = deliver
    this.connection.on('packet', this.onPacket)
  }

  stop(): void {
    this.connection.off('packet', this.onPacket)
    this.deliver = undefined
    this.batch.clear()
  }

  endpointBytes(endpoint: Uint8Array): Uint8Array {
    return endpoint
  }

  private flush(): void {
    this.deliverQueued = false
    const batch = this.batch
    this.batch = new Map()
    if (!this.deliver) return
    for (const [source, packets] of batch.values()) this.deliver(source, packets)
  }
}
