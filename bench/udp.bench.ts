// Packets between two Burrow Node runtimes (openUdpTunnel: dataplane core + driver over the UDP underlay) on loopback:
// inject → AllowedIPs route → encrypt → UDP → decrypt → source check → local stack, against the same bytes over bare
// UDP sockets as the baseline. Windowed, so socket buffers never overflow and nothing is lost.
import { generateKeyPair } from '../src/crypto/index.ts'
import { openUdpTunnel } from '../src/node/udp-tunnel.ts'
import { type UdpEndpoint, UdpUnderlay } from '../src/underlay/udp/udp-underlay.ts'
import { parseAddress, parsePrefix } from '../src/wire/address.ts'
import { buildIp, PROTO_UDP } from '../src/wire/ip.ts'
import { buildUdp } from '../src/wire/udp.ts'
import type { Bench } from './types.ts'

const PACKETS = 20_000
const WINDOW = 128
const PAYLOAD = 1380
const SINK_PORT = 9

/** A window with no delivery for this long has lost its packets; count them and go on rather than hang. */
const STALL_MS = 250

/** Sends PACKETS through `send`, never more than WINDOW outstanding; packets per second delivered, and how many were lost. */
async function pump(send: () => void, onDelivered: (count: () => void) => void): Promise<{ rate: number; lost: number }> {
  let sent = 0
  let delivered = 0
  let lost = 0
  let wake: (() => void) | undefined
  onDelivered(() => {
    delivered++
    if (delivered + lost === PACKETS || sent - delivered - lost < WINDOW / 2) wake?.()
  })
  const start = performance.now()
  while (delivered + lost < PACKETS) {
    while (sent < PACKETS && sent - delivered - lost < WINDOW) {
      send()
      sent++
    }
    const before = delivered
    let timer: ReturnType<typeof setTimeout> | undefined
    await new Promise<void>((resolve) => {
      wake = resolve
      timer = setTimeout(resolve, STALL_MS)
    })
    clearTimeout(timer)
    if (delivered === before) lost = sent - delivered
  }
  return { rate: (delivered * 1000) / (performance.now() - start), lost }
}

async function tunnelRate(): Promise<{ rate: number; lost: number; wakeups: number }> {
  const a = generateKeyPair()
  const b = generateKeyPair()
  const aAddress = parseAddress('10.0.0.1')
  const bAddress = parseAddress('10.0.0.2')
  let count: () => void = () => {}
  const tunnelB = await openUdpTunnel(
    { interface: { privateKey: b.privateKey, addresses: [{ address: bAddress, bits: 32 }] }, peers: [{ publicKey: a.publicKey, allowedIps: [parsePrefix('10.0.0.1/32')] }] },
    // Counted where the dataplane hands packets to the local stack: after decryption and the AllowedIPs source check.
    { underlay: await UdpUnderlay.open({ ipv6: false }), capture: (_packet, direction) => direction === 'in' && count() },
  )
  const tunnelA = await openUdpTunnel(
    {
      interface: { privateKey: a.privateKey, addresses: [{ address: aAddress, bits: 32 }] },
      peers: [{ publicKey: b.publicKey, allowedIps: [parsePrefix('10.0.0.2/32')], endpoint: { host: '127.0.0.1', port: tunnelB.underlay.port } }],
    },
    { underlay: await UdpUnderlay.open({ ipv6: false }) },
  )
  // A bound port, so B's stack quietly takes the datagrams instead of answering each with port unreachable.
  const sink = tunnelB.sockets.udp({ localPort: SINK_PORT, receiveQueue: 1 })
  await sink.opened
  const payload = buildUdp({ srcPort: 40000, dstPort: SINK_PORT, payload: new Uint8Array(PAYLOAD - 8) }, aAddress, bAddress)
  const packet = buildIp({ src: aAddress, dst: bAddress, protocol: PROTO_UDP, payload })
  try {
    const result = await pump(
      // The packet is handed over (the dataplane owns it from then on), so each send gets its own copy.
      () => tunnelA.overlay.inject([packet.slice()]),
      (c) => (count = c),
    )
    return { ...result, wakeups: tunnelA.driver.counters.timerWakeups + tunnelB.driver.counters.timerWakeups }
  } finally {
    await sink.close()
    await tunnelA.close()
    await tunnelB.close()
  }
}

async function bareUdpRate(): Promise<{ rate: number; lost: number }> {
  const a = await UdpUnderlay.open({ ipv6: false })
  const b = await UdpUnderlay.open({ ipv6: false })
  const to: UdpEndpoint = { address: '127.0.0.1', port: b.port }
  // The same bytes a tunnel would put on the wire: inner packet + 32 bytes of WireGuard framing.
  const datagram = new Uint8Array(PAYLOAD + 20 + 32)
  try {
    return await pump(
      () => a.send(to, [datagram]),
      (count) => b.start((_from, datagrams) => datagrams.forEach(() => count())),
    )
  } finally {
    await a.close()
    await b.close()
  }
}

const bench: Bench = async () => {
  const { rate: tunnel, lost, wakeups } = await tunnelRate()
  const { rate: bare } = await bareUdpRate()
  return [
    {
      name: 'udp.tunnel_packets_per_s',
      value: tunnel,
      unit: 'packets/s',
      baseline: bare,
      ratio: tunnel / bare,
      note: `${PAYLOAD + 20}-byte IP packets between two openUdpTunnel runtimes (DataplaneDriver + UdpUnderlay) on loopback, window ${WINDOW}, ${lost} of ${PACKETS} lost, ${wakeups} timer wake-ups in both drivers; baseline: same-size datagrams over bare UDP`,
    },
    { name: 'udp.tunnel_mbit_per_s', value: (tunnel * (PAYLOAD + 20) * 8) / 1e6, unit: 'Mbit/s' },
  ]
}

export default bench
