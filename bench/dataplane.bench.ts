// Dataplane core throughput (Node) and the driver's timer cadence on a fake clock.
import { generateKeyPair } from '../src/crypto/index.ts'
import { DataplaneCore, DataplaneDriver, ManualClock, type UnderlayTransport } from '../src/dataplane/index.ts'
import { Tunnel } from '../src/tunnel/index.ts'
import { PROTO_UDP, buildIp, parseAddress, parsePrefix } from '../src/wire/index.ts'
import type { Bench, BenchResult } from './types.ts'

const PACKET_SIZE = 1420
const BATCH = 64

function packetTo(dst: string, size = PACKET_SIZE): Uint8Array {
  return buildIp({ src: parseAddress('10.0.0.1'), dst: parseAddress(dst), protocol: PROTO_UDP, payload: new Uint8Array(size - 20).fill(0xa5) })
}

/** One step moves one batch and returns how many packets arrived. */
type Step = () => number

/** A → B through both cores (AllowedIPs lookup, encrypt, decrypt, source check), one direction. */
function dataplaneStep(): Step {
  const keysA = generateKeyPair()
  const keysB = generateKeyPair()
  const a = new DataplaneCore({ privateKey: keysA.privateKey })
  const b = new DataplaneCore({ privateKey: keysB.privateKey })
  a.addUnderlay(1)
  b.addUnderlay(1)
  a.addOverlay(1, [parsePrefix('10.0.0.1/32')])
  b.addOverlay(1, [parsePrefix('10.0.0.2/32')])
  const peerB = a.addPeer({ publicKey: keysB.publicKey, allowedIps: [parsePrefix('10.0.0.2/32')] })
  b.addPeer({ publicKey: keysA.publicKey, allowedIps: [parsePrefix('10.0.0.1/32')] })
  a.setPeerRoute(peerB, 1, 'b')
  // Handshake first.
  let now = 0
  let toB = a.processOutbound([packetTo('10.0.0.2')], now).toUnderlay
  for (let round = 0; round < 4 && toB.length; round++) {
    const atB = b.processInbound(
      toB.flatMap((x) => x.datagrams),
      1,
      'a',
      now,
    )
    toB = atB.toUnderlay.length
      ? a.processInbound(
          atB.toUnderlay.flatMap((x) => x.datagrams),
          1,
          'b',
          now,
        ).toUnderlay
      : []
  }
  const batch = Array.from({ length: BATCH }, () => packetTo('10.0.0.2'))
  return () => {
    now += 1
    let delivered = 0
    const out = a.processOutbound(batch, now)
    for (const group of out.toUnderlay) {
      for (const overlay of b.processInbound(group.datagrams, 1, 'a', now).toOverlay) delivered += overlay.packets.length
    }
    return delivered
  }
}

/** The same packets through two bare Tunnels (no routing, no batching): what the core adds is the rest. */
function tunnelOnlyStep(): Step {
  const keysA = generateKeyPair()
  const keysB = generateKeyPair()
  const a = new Tunnel({ privateKey: keysA.privateKey })
  const b = new Tunnel({ privateKey: keysB.privateKey })
  const peerB = a.addPeer({ publicKey: keysB.publicKey })
  b.addPeer({ publicKey: keysA.publicKey })
  let now = 0
  let inFlight = a.send(peerB, packetTo('10.0.0.2'), now)
  for (let round = 0; round < 4 && inFlight.length; round++) {
    const replies = inFlight.flatMap((m) => b.receive(m, now).replies)
    inFlight = replies.flatMap((m) => a.receive(m, now).replies)
  }
  const batch = Array.from({ length: BATCH }, () => packetTo('10.0.0.2'))
  return () => {
    now += 1
    let delivered = 0
    for (const packet of batch) for (const message of a.send(peerB, packet, now)) delivered += b.receive(message, now).packets.length
    return delivered
  }
}

/**
 * Packets per second of each step, measured in alternating 100 ms slices so that load from
 * other processes on a shared machine falls on both alike and the ratio stays meaningful.
 */
function interleaved(steps: Step[], totalMs: number): number[] {
  for (const step of steps) for (let i = 0; i < 20; i++) step()
  const packets = steps.map(() => 0)
  const time = steps.map(() => 0)
  const slices = Math.max(1, Math.round(totalMs / 100 / steps.length))
  for (let slice = 0; slice < slices; slice++) {
    steps.forEach((step, i) => {
      const start = performance.now()
      let elapsed = 0
      while (elapsed < 100) {
        packets[i]! += step()
        elapsed = performance.now() - start
      }
      time[i]! += elapsed
    })
  }
  return packets.map((n, i) => (n * 1000) / time[i]!)
}

/** One idle peer with a 25 s persistent keepalive, driven for 10 simulated minutes. */
async function idleCadence(): Promise<{ perMinute: number; wasted: number; keepalives: number }> {
  const clock = new ManualClock()
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve))
  const keysA = generateKeyPair()
  const keysB = generateKeyPair()
  const a = new DataplaneCore({ privateKey: keysA.privateKey })
  const b = new DataplaneCore({ privateKey: keysB.privateKey })
  const driverA = new DataplaneDriver(a, { clock })
  const driverB = new DataplaneDriver(b, { clock })
  let keepalives = 0
  const ends: Array<UnderlayTransport<string> & { deliver?: (endpoint: string, datagrams: Uint8Array[]) => void }> = []
  for (const index of [0, 1]) {
    ends.push({
      start(deliver) {
        this.deliver = deliver
      },
      stop() {},
      send(_endpoint, datagrams) {
        if (index === 0) keepalives += datagrams.filter((d) => d[0] === 4 && d.length === 32).length
        queueMicrotask(() => ends[1 - index]!.deliver?.('peer', datagrams))
      },
    })
  }
  const underlayA = driverA.addUnderlay(ends[0]!)
  const underlayB = driverB.addUnderlay(ends[1]!)
  let overlayDeliver: ((packets: Uint8Array[]) => void) | undefined
  driverA.addOverlay({ start: (deliver) => (overlayDeliver = deliver), stop() {}, send() {} }, [parsePrefix('10.0.0.1/32')])
  driverB.addOverlay({ start() {}, stop() {}, send() {} }, [parsePrefix('10.0.0.2/32')])
  driverA.withCore((core) => core.setPeerRoute(core.addPeer({ publicKey: keysB.publicKey, allowedIps: [parsePrefix('10.0.0.2/32')], persistentKeepalive: 25 }), underlayA, 'b'))
  driverB.withCore((core) => core.setPeerRoute(core.addPeer({ publicKey: keysA.publicKey, allowedIps: [parsePrefix('10.0.0.1/32')] }), underlayB, 'a'))
  overlayDeliver!([packetTo('10.0.0.2', 100)])
  await settle()
  const minutes = 10
  while (clock.fireNext(minutes * 60_000)) await settle()
  const counters = driverA.counters
  driverA.stop()
  driverB.stop()
  return { perMinute: counters.timerWakeups / minutes, wasted: counters.wastedWakeups, keepalives }
}

const bench: Bench = async () => {
  const [dataplane, tunnelOnly] = interleaved([dataplaneStep(), tunnelOnlyStep()], 6000) as [number, number]
  const idle = await idleCadence()
  const results: BenchResult[] = [
    {
      name: 'dataplane.packets_per_s',
      value: dataplane,
      unit: 'packets/s',
      baseline: tunnelOnly,
      ratio: dataplane / tunnelOnly,
      note: `${PACKET_SIZE}-byte packets in batches of ${BATCH} (${((dataplane * PACKET_SIZE * 8) / 1e6).toFixed(0)} Mbit/s of plaintext); baseline = the same packets through two bare Tunnels`,
    },
    {
      name: 'dataplane.idle_wakeups_per_min',
      value: idle.perMinute,
      unit: 'wakeups/min',
      baseline: 60,
      ratio: idle.perMinute / 60,
      note: `fake clock, one idle peer, 25 s persistent keepalive, 10 min (${idle.keepalives} keepalives sent); baseline = 1 Hz poll`,
    },
    { name: 'dataplane.wasted_wakeups', value: idle.wasted, unit: 'wakeups', baseline: 0, note: 'timer wake-ups with a deadline but nothing due; target 0' },
  ]
  return results
}

export default bench
