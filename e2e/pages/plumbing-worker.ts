// The relay path's plumbing without WireGuard or TCP, for bench/e2e.bench.ts's ceiling
// (`e2e.relay_plumbing_mb_per_s`): the page posts chunks here (transferred), this worker cuts
// them into packets the size of the relay path's WireGuard packets and sends them through a
// `burrow relay` with the same DerpConnection the node agent uses; packets from the relay go to
// the page batched per task and packed into one transferred buffer, as the dataplane's overlay
// port does (src/worker/port-transports.ts). Credits (the receiving page's ACKs) travel the same
// way back. Every packet carries timestamps (`sharedNow()`, comparable across the two browsers)
// so the page can say where a packet waited.
import { generateKeyPair, formatKey, parseKey } from '../../src/crypto/index.ts'
import { DerpConnection } from '../../src/underlay/derp/connection.ts'
import { webSocketDialer } from '../../src/underlay/derp/dialer.ts'
import { sharedNow } from '../../src/worker/protocol.ts'
import { CREDIT, DATA, HEADER_BYTES, type FromWorker, type ToWorker } from './plumbing-protocol.ts'

let connection: DerpConnection | undefined
let peer: Uint8Array | undefined
let packetBytes = 0
let payloadBytes = 0
let inbound: Uint8Array[] = []
let flushQueued = false

function post(message: FromWorker, transfer: Transferable[] = []): void {
  postMessage(message, { transfer })
}

/** Like PortOverlay.send: packets that arrive in one task go to the page together, packed. */
function flushInbound(): void {
  flushQueued = false
  const packets = inbound
  inbound = []
  let total = 0
  const lengths = packets.map((p) => p.length)
  for (const length of lengths) total += length
  const packed = new Uint8Array(total)
  let offset = 0
  for (const p of packets) {
    packed.set(p, offset)
    offset += p.length
  }
  post({ type: 'packets', buffer: packed.buffer, lengths, t3: sharedNow() }, [packed.buffer])
}

function onPacket(_source: Uint8Array, packet: Uint8Array): void {
  if (packet[0] === CREDIT) {
    const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength)
    post({ type: 'credit', bytes: view.getFloat64(8, true), t5: view.getFloat64(16, true), t6: view.getFloat64(24, true), t7: sharedNow() })
    return
  }
  // The receive side's one copy, as DerpUnderlay's batch plus packPackets make it.
  inbound.push(packet)
  if (flushQueued) return
  flushQueued = true
  setTimeout(flushInbound, 0)
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data
  try {
    switch (message.type) {
      case 'start': {
        packetBytes = message.packetBytes
        payloadBytes = message.payloadBytes
        const keys = generateKeyPair()
        connection = new DerpConnection({ url: message.url, privateKey: keys.privateKey, dial: webSocketDialer() })
        connection.on('packet', onPacket)
        connection.on('connected', () => post({ type: 'ready', publicKey: formatKey(keys.publicKey) }))
        connection.start()
        return
      }
      case 'peer':
        peer = parseKey(message.key)
        return
      case 'data': {
        const bytes = new Uint8Array(message.buffer)
        const t1 = sharedNow()
        for (let offset = 0; offset < bytes.length; offset += payloadBytes) {
          const chunk = bytes.subarray(offset, Math.min(bytes.length, offset + payloadBytes))
          // A packet of its own, as the tunnel seals each one into a fresh buffer.
          const packet = new Uint8Array(Math.max(packetBytes, HEADER_BYTES + chunk.length))
          const view = new DataView(packet.buffer)
          packet[0] = DATA
          view.setFloat64(8, message.t0, true)
          view.setFloat64(16, t1, true)
          view.setFloat64(24, connection!.bufferedAmount, true)
          packet.set(chunk, HEADER_BYTES)
          // The payload length rides in bytes 1..4 so the padding is not counted.
          view.setUint32(1, chunk.length, true)
          connection!.send(peer!, packet)
        }
        return
      }
      case 'credit': {
        const packet = new Uint8Array(HEADER_BYTES)
        const view = new DataView(packet.buffer)
        packet[0] = CREDIT
        view.setFloat64(8, message.bytes, true)
        view.setFloat64(16, message.t5, true)
        view.setFloat64(24, sharedNow(), true)
        connection!.send(peer!, packet)
        return
      }
    }
  } catch (error) {
    post({ type: 'error', message: (error as Error).message })
  }
}
