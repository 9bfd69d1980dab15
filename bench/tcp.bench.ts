// Userspace TCP (src/overlay): bulk throughput between two stacks in memory (against Node's
// kernel TCP over loopback in the same run), through two WireGuard tunnels, and the
// deterministic goodput over a simulated 50 ms RTT link.
import { createServer, connect, type AddressInfo } from 'node:net'
import { generateKeyPair } from '../src/crypto/index.ts'
import { Stack } from '../src/overlay/stack.ts'
import type { TcpConnection } from '../src/overlay/tcp/connection.ts'
import type { TcpListener } from '../src/overlay/tcp/listener.ts'
import { makePair, patternBytes } from '../src/overlay/testing/pair.ts'
import type { SimLinkOptions } from '../src/overlay/testing/sim-link.ts'
import type { TcpConfig } from '../src/overlay/tcp/config.ts'
import { Tunnel } from '../src/tunnel/index.ts'
import type { Bench, BenchResult } from './types.ts'

const MEMORY_BYTES = 256 << 20
/** An IPv4 MTU whose MSS (65535 − 40 − 12 bytes of timestamps) is the largest a segment can have. */
const MTU_64K = 65535
const SIM_BYTES = 64 << 20
const CHUNK = patternBytes(256 * 1024)

/** Writes `total` bytes from `client` as fast as it takes them to the connection `listener` accepts; returns the count read there. */
function upload(client: TcpConnection, listener: TcpListener, total: number): () => number {
  let received = 0
  let written = 0
  const pump = (): void => {
    while (written < total) {
      const n = client.write(CHUNK.subarray(0, Math.min(CHUNK.length, total - written)))
      if (n === 0) return
      written += n
    }
  }
  client.events.established = pump
  client.events.writable = pump
  listener.onConnection = () => {
    const server = listener.accept()!
    server.events.readable = () => {
      for (let c = server.read(); c; c = server.read()) received += c.length
    }
  }
  return () => received
}

/** Streams `total` bytes from a client on `a` to a server on `b`; returns wall-clock MB/s. */
function backToBack(total: number, carry: (from: 'a' | 'b', packets: Uint8Array[], now: number) => Uint8Array[], mtu?: number): number {
  const a = new Stack({ addresses: ['100.64.0.1'], mtu })
  const b = new Stack({ addresses: ['100.64.0.2'], mtu })
  const listener = b.listen({ port: 5001 })
  let now = performance.now()
  const client = a.connect({ address: '100.64.0.2', port: 5001 }, now)
  const received = upload(client, listener, total)
  const start = performance.now()
  while (received() < total) {
    now = performance.now()
    a.poll(now)
    b.poll(now)
    let moved = 0
    // The packets are handed over, as the page's StackHost hands over those from the worker.
    for (const p of carry('a', a.takeOutgoing(), now)) {
      b.receive(p, now, true)
      moved++
    }
    for (const p of carry('b', b.takeOutgoing(), now)) {
      a.receive(p, now, true)
      moved++
    }
    if (now - start > 120_000) throw new Error(`stalled after ${received()} of ${total} bytes`)
    void moved
  }
  return total / 1e6 / ((performance.now() - start) / 1000)
}

async function nodeLoopback(total: number): Promise<number> {
  const server = createServer((socket) => {
    let got = 0
    socket.on('data', (d: Buffer) => {
      got += d.length
      if (got >= total) socket.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const start = performance.now()
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    socket.on('error', reject)
    socket.on('close', () => resolve())
    let written = 0
    const write = (): void => {
      while (written < total) {
        const n = Math.min(CHUNK.length, total - written)
        written += n
        if (!socket.write(CHUNK.subarray(0, n))) return void socket.once('drain', write)
      }
      socket.end()
    }
    socket.on('connect', write)
    socket.resume()
  })
  const rate = total / 1e6 / ((performance.now() - start) / 1000)
  server.close()
  return rate
}

function tunnelCarrier(): (from: 'a' | 'b', packets: Uint8Array[], now: number) => Uint8Array[] {
  const ta = new Tunnel({ privateKey: generateKeyPair().privateKey })
  const tb = new Tunnel({ privateKey: generateKeyPair().privateKey })
  const toB = ta.addPeer({ publicKey: tb.publicKey })
  const toA = tb.addPeer({ publicKey: ta.publicKey })
  const t0 = Date.now()
  // Handshake first, so the transfer measures transport only.
  const [initiation] = ta.send(toB, new Uint8Array(0), t0)
  const [response] = tb.receive(initiation!, t0).replies
  for (const m of ta.receive(response!, t0).replies) tb.receive(m, t0)
  return (from, packets) => {
    const [sender, receiver, peer] = from === 'a' ? [ta, tb, toB] : [tb, ta, toA]
    const now = Date.now()
    const out: Uint8Array[] = []
    for (const packet of packets) {
      for (const message of sender.send(peer, packet, now)) {
        const result = receiver.receive(message, now)
        out.push(...result.packets)
        for (const reply of result.replies) for (const p of sender.receive(reply, now).packets) void p
      }
    }
    return out
  }
}

/** Goodput in Mbit/s of simulated time for `total` bytes over a SimLink. */
function simulated(link: SimLinkOptions, total: number, tcp: Partial<TcpConfig> = {}): number {
  const net = makePair(link, { tcp }, { tcp })
  const listener = net.b.listen({ port: 5001 })
  const client = net.a.connect({ address: '100.64.0.2', port: 5001 }, net.now)
  const received = upload(client, listener, total)
  if (!net.runUntil(() => received() === total)) throw new Error('simulated transfer did not finish')
  return (total * 8) / (net.now / 1000) / 1e6
}

const bench: Bench = async () => {
  const results: BenchResult[] = []
  backToBack(16 << 20, (_f, p) => p) // warm-up
  backToBack(16 << 20, (_f, p) => p, MTU_64K)
  const memory = backToBack(MEMORY_BYTES, (_f, p) => p)
  const baseline = await nodeLoopback(MEMORY_BYTES)
  const memory64k = backToBack(MEMORY_BYTES, (_f, p) => p, MTU_64K)
  results.push({
    name: 'tcp.memory_mb_per_s',
    value: memory,
    unit: 'MB/s',
    baseline,
    ratio: memory / baseline,
    note: `${MEMORY_BYTES >> 20} MiB between two userspace stacks in one process at MTU 1420 (MSS 1368); baseline: Node net over 127.0.0.1 (kernel TCP, two sockets)`,
  })
  results.push({
    name: 'tcp.memory_64k_mss_mb_per_s',
    value: memory64k,
    unit: 'MB/s',
    baseline,
    ratio: memory64k / baseline,
    note: `the same ${MEMORY_BYTES >> 20} MiB at MTU ${MTU_64K} (MSS ${MTU_64K - 40 - 12}, no loss); baseline: the same kernel loopback run`,
  })
  const tunnel = backToBack(MEMORY_BYTES / 4, tunnelCarrier())
  results.push({
    name: 'tcp.tunnel_mb_per_s',
    value: tunnel,
    unit: 'MB/s',
    note: 'two stacks, every packet through Tunnel.send → Tunnel.receive (ChaCha20-Poly1305, #aead backend)',
  })
  const fixedWindow = { maxReceiveWindow: 1 << 20, maxSendBuffer: 1 << 20 }
  const fixed = simulated({ delayMs: 25, bandwidthBps: 1e9 }, SIM_BYTES, fixedWindow)
  const defaults = simulated({ delayMs: 25, bandwidthBps: 1e9 }, SIM_BYTES)
  results.push({
    name: 'tcp.sim_50ms_mbit',
    value: defaults,
    unit: 'Mbit/s',
    baseline: fixed,
    ratio: defaults / fixed,
    note: `${SIM_BYTES >> 20} MiB over a simulated 50 ms RTT, 1 Gbit/s link (deterministic), default config: autotuned up to the 2 MiB default cap; baseline: autotuning off (the 1 MiB window)`,
  })
  const bigCap = { maxReceiveWindow: 16 << 20, maxSendBuffer: 16 << 20 }
  const tuned = simulated({ delayMs: 25, bandwidthBps: 1e9, queueBytes: 16 << 20 }, SIM_BYTES * 2, bigCap)
  const tunedFixed = simulated({ delayMs: 25, bandwidthBps: 1e9, queueBytes: 16 << 20 }, SIM_BYTES * 2, fixedWindow)
  results.push({
    name: 'tcp.sim_50ms_autotune_16m_mbit',
    value: tuned,
    unit: 'Mbit/s',
    baseline: tunedFixed,
    ratio: tuned / tunedFixed,
    note: `${(SIM_BYTES * 2) >> 20} MiB over the same simulated 50 ms / 1 Gbit/s link (BDP 6.25 MB) with tcp.maxReceiveWindow and maxSendBuffer 16 MiB; baseline: autotuning off, same link`,
  })
  results.push({
    name: 'tcp.sim_lossy_mbit',
    value: simulated({ seed: 1, delayMs: 25, bandwidthBps: 1e9, loss: 0.01, reorder: 0.05, reorderDelayMs: 4 }, 8 << 20),
    unit: 'Mbit/s',
    note: '8 MiB over a simulated 50 ms RTT with 1 % loss each way and 5 % reordering (deterministic; loss-based CUBIC, cf. Mathis ≈ 2.7 Mbit/s for Reno)',
  })
  return results
}

export default bench
