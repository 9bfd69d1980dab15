import { hash } from '../../crypto/index.ts'

/**
 * RFC 6528 initial sequence numbers: a 4 µs clock plus a keyed hash of the connection's
 * addresses and ports, so ISNs are unpredictable off-path yet increase for a reused 4-tuple.
 * The same hash seeds the per-connection timestamp offset (RFC 7323 §5.4).
 */
export class IsnGenerator {
  constructor(private readonly secret: Uint8Array) {}

  generate(localAddress: Uint8Array, localPort: number, remoteAddress: Uint8Array, remotePort: number, now: number): { isn: number; timestampOffset: number } {
    const ports = new Uint8Array([localPort >> 8, localPort & 0xff, remotePort >> 8, remotePort & 0xff])
    const digest = hash(this.secret, localAddress, remoteAddress, ports)
    const view = new DataView(digest.buffer, digest.byteOffset, digest.byteLength)
    const clock = Math.floor(now * 250)
    return {
      isn: (view.getUint32(0) + clock) >>> 0,
      timestampOffset: view.getUint32(4),
    }
  }
}
