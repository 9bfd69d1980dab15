// Packets through two Burrow UDP tunnel loops on loopback (encrypt → UDP → decrypt → AllowedIPs check), against the
// same packets over bare UDP sockets as the baseline. Windowed, so socket buffers never overflow and nothing is lost.
import { generateKeyPair } from '../src/crypto/index.ts'
import { UdpTunnelLoop } from '../src/underlay/udp/udp-tunnel-loop.ts'
import { type UdpEndpoint, UdpUnderlay } from '../src/underlay/udp/udp-underlay.ts'
import { parseAddress, parsePrefix } from '../src/wire/address.ts'
import { buildIp, PROTO_UDP } from '../src/wire/ip.ts'
import type { Bench } from './types.ts'

const PACKETS = 20_000
const WINDOW = 128
const PAYLOAD = 1380

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

async function tunnelRate(): Promise<{ rate: number; lost: number }> {
  const a = generateKeyPair()
  const b = generateKeyPair()
  const aAddress = parseAddress('10.0.0.1')
  const bAddress = parseAddress('10.0.0.2')
  const underlayA = await UdpUnderlay.open({ ipv6: false })
  const underlayB = await UdpUnderlay.open({ ipv6: false })
  let count: () => void = () => {}
  const loopB = new UdpTunnelLoop({
    privateKey: b.privateKey,
    underlay: underlayB,
    peers: [{ publicKey: a.publicKey, allowedIps: [parsePrefix('10.0.0.1/32')] }],
    onPacket: () => count(),
  })
  const loopA = new UdpTunnelLoop({
    privateKey: a.privateKey,
    underlay: underlayA,
    peers: [{ publicKey: b.publicKey, allowedIps: [parsePrefix('10.0.0.2/32')], endpoint: { address: '127.0.0.1', port: underlayB.port } }],
  })
  const packet = buildIp({ src: aAddress, dst: bAddress, protocol: PROTO_UDP, payload: new Uint8Array(PAYLOAD) })
  try {
    return await pump(
      () => loopA.send(packet),
      (c) => (count = c),
    )
  } finally {
    await loopA.close()
    await loopB.close()
    await underlayA.close()
    await underlayB.close()
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
      () => a.send(datagram, to),
      (count) => b.onDatagram(() => count()),
    )
  } finally {
    await a.close()
    await b.close()
  }
}

const bench: Bench = async () => {
  const { rate: tunnel, lost } = await tunnelRate()
  const { rate: bare } = await bareUdpRate()
  return [
    {
      name: 'udp.tunnel_loop_packets_per_s',
      value: tunnel,
      unit: 'packets/s',
      baseline: bare,
      ratio: tunnel / bare,
      note: `${PAYLOAD + 20}-byte IP packets through two UdpTunnelLoops on loopback, window ${WINDOW}, ${lost} of ${PACKETS} lost; baseline: same-size datagrams over bare UDP`,
    },
    { name: 'udp.tunnel_loop_mbit_per_s', value: (tunnel * (PAYLOAD + 20) * 8) / 1e6, unit: 'Mbit/s' },
  ]
}

export default bench
