// WireGuard tunnel (Node): transport throughput against the raw AEAD, AEAD backends, handshakes/s.
import { dh, generateKeyPair, publicKeyOf } from '../src/crypto/index.ts'
import { aead } from '#aead'
import { nodeAead } from '../src/crypto/aead-node.ts'
import { nobleAead } from '../src/crypto/aead-noble.ts'
import type { Aead } from '../src/crypto/index.ts'
import { Tunnel } from '../src/tunnel/index.ts'
import type { Bench, BenchResult } from './types.ts'

const PACKET = 1420
/** WireGuard pads the payload to a multiple of 16: this is what the AEAD really encrypts. */
const PADDED = 1424
const BATCH = 32
const MIN_MS = 1500

function ipv4(length: number): Uint8Array {
  const packet = new Uint8Array(length).fill(0x5a)
  packet[0] = 0x45
  packet[2] = length >> 8
  packet[3] = length & 0xff
  return packet
}

/**
 * Rates (units per second) of two workloads measured in alternating slices. This machine is
 * shared, so each figure comes from the median slice: a load spike spoils single slices, not the
 * comparison.
 */
function interleaved(first: () => void, second: () => void, unitsPerBatch: number): [number, number] {
  for (let i = 0; i < 20; i++) {
    first()
    second()
  }
  const times: [number[], number[]] = [[], []]
  let total = 0
  while (total < 2 * MIN_MS) {
    let start = performance.now()
    first()
    const firstTime = performance.now() - start
    start = performance.now()
    second()
    const secondTime = performance.now() - start
    times[0].push(firstTime)
    times[1].push(secondTime)
    total += firstTime + secondTime
  }
  const rate = (slices: number[]) => unitsPerBatch / (median(slices) / 1000)
  return [rate(times[0]), rate(times[1])]
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[sorted.length >> 1]!
}

function connectedPair(): { a: Tunnel; b: Tunnel; toB: number; now: number } {
  const a = new Tunnel({ privateKey: generateKeyPair().privateKey })
  const b = new Tunnel({ privateKey: generateKeyPair().privateKey })
  const toB = a.addPeer({ publicKey: b.publicKey })
  b.addPeer({ publicKey: a.publicKey })
  const now = 1000
  const [initiation] = a.send(toB, new Uint8Array(0), now)
  const [response] = b.receive(initiation!, now).replies
  for (const message of a.receive(response!, now).replies) b.receive(message, now)
  return { a, b, toB, now }
}

/** A batch of packets through `send` on one tunnel and `receive` on the other. */
function tunnelBatch(): () => void {
  const { a, b, toB, now } = connectedPair()
  const packet = ipv4(PACKET)
  return () => {
    for (let i = 0; i < BATCH; i++) {
      const [message] = a.send(toB, packet, now)
      if (b.receive(message!, now).packets.length !== 1) throw new Error('a packet did not make it through the tunnel')
    }
  }
}

/** The same seal+open work done directly by an AEAD on reused buffers (no tunnel around it). */
function rawAeadBatch(backend: Aead): () => void {
  const key = new Uint8Array(32).fill(7)
  const nonce = new Uint8Array(12)
  const plaintext = ipv4(PADDED)
  const sealed = new Uint8Array(PADDED + 16)
  return () => {
    for (let i = 0; i < BATCH; i++) {
      nonce[4] = i
      backend.sealInto(key, nonce, plaintext, undefined, sealed)
      if (!backend.openOwned(key, nonce, sealed, undefined)) throw new Error('AEAD round trip failed')
    }
  }
}

/** A full handshake through two Tunnels, and the floor set by its eight X25519 operations alone. */
function handshakesPerSecond(): { value: number; x25519Bound: number } {
  const { a, b, toB } = connectedPair()
  let now = 1000
  const handshake = (): void => {
    // Past RejectAfterTime the session is dead, so the next send must run a full handshake.
    now += 180_001
    const [initiation] = a.send(toB, new Uint8Array(0), now)
    const [response] = b.receive(initiation!, now).replies
    const [keepalive] = a.receive(response!, now).replies
    if (b.receive(keepalive!, now).dropped !== undefined) throw new Error('handshake did not complete')
  }
  const one = generateKeyPair()
  const other = generateKeyPair()
  // Initiator: ephemeral public key, es, ee, se; responder: es, ephemeral public key, ee, se (ss is cached per peer).
  const eightX25519 = (): void => {
    for (let i = 0; i < 4; i++) {
      publicKeyOf(one.privateKey)
      dh(one.privateKey, other.publicKey)
    }
  }
  const [value, x25519Bound] = interleaved(handshake, eightX25519, 1)
  return { value, x25519Bound }
}

const bench: Bench = async () => {
  const results: BenchResult[] = []
  const [tunnel, raw] = interleaved(tunnelBatch(), rawAeadBatch(aead), (BATCH * PACKET) / 1e6)
  results.push({
    name: 'tunnel.seal_open_1420',
    value: tunnel,
    unit: 'MB/s',
    baseline: raw,
    ratio: tunnel / raw,
    note: `1420-byte IPv4 packets, Tunnel.send then Tunnel.receive; baseline = raw ${aead.name} sealInto+openOwned (the calls the tunnel makes) of the same 1424 padded bytes`,
  })
  const [node, noble] = interleaved(rawAeadBatch(nodeAead), rawAeadBatch(nobleAead), (BATCH * PACKET) / 1e6)
  results.push({
    name: 'tunnel.aead_node_vs_noble',
    value: node,
    unit: 'MB/s',
    baseline: noble,
    ratio: node / noble,
    note: 'seal+open of 1424 bytes, node:crypto vs @noble/ciphers',
  })
  const handshakes = handshakesPerSecond()
  results.push({
    name: 'tunnel.handshake',
    value: handshakes.value,
    unit: 'handshakes/s',
    baseline: handshakes.x25519Bound,
    ratio: handshakes.value / handshakes.x25519Bound,
    note: 'initiation, response, confirming keepalive through two Tunnels; baseline = the eight X25519 operations of a handshake alone (@noble)',
  })
  return results
}

export default bench
