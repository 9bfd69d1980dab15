// Wire codec throughput: what the dataplane and the userspace TCP stack pay per packet.
import { ACK, PSH, PROTO_TCP, buildIp, buildIpTcp, buildTcp, internetChecksum, ipDestination, parseAddress, parseIp, parseTcp } from '../src/wire/index.ts'
import { measure, type Bench } from './types.ts'

const BATCH = 1000
const PAYLOAD = 1380

const bench: Bench = async () => {
  const src = parseAddress('100.64.0.1')
  const dst = parseAddress('100.64.0.2')
  const payload = new Uint8Array(PAYLOAD).map((_, i) => i * 7)
  const segment = {
    srcPort: 40000,
    dstPort: 443,
    seq: 123456,
    ack: 654321,
    flags: ACK | PSH,
    window: 4096,
    urgent: 0,
    options: { timestamp: { value: 1, echo: 2 } },
    payload,
  }
  const packet = buildIp({ src, dst, protocol: PROTO_TCP, payload: buildTcp(segment, src, dst) })

  let sink = 0
  const checksumRate = await measure(() => {
    for (let i = 0; i < BATCH; i++) sink ^= internetChecksum(packet)
  })
  const parseRate = await measure(() => {
    for (let i = 0; i < BATCH; i++) {
      const ip = parseIp(packet)
      sink ^= parseTcp(ip.payload, ip.src, ip.dst).seq
    }
  })
  const buildRate = await measure(() => {
    for (let i = 0; i < BATCH; i++) sink ^= buildIp({ src, dst, protocol: PROTO_TCP, payload: buildTcp(segment, src, dst) }).length
  })
  const singleBuildRate = await measure(() => {
    for (let i = 0; i < BATCH; i++) sink ^= buildIpTcp({ src, dst }, segment).length
  })
  const peekRate = await measure(() => {
    for (let i = 0; i < BATCH; i++) sink ^= ipDestination(packet)![3]!
  })
  if (sink === 0.5) console.log(sink) // keeps the work observable

  const packetBytes = packet.length
  return [
    { name: 'wire.checksum', value: (checksumRate * BATCH * packetBytes) / 1e6, unit: 'MB/s', note: `${packetBytes}-byte packets` },
    { name: 'wire.parse-ipv4-tcp', value: parseRate * BATCH, unit: 'packets/s', note: 'parseIp + parseTcp with checksum, 1380-byte payload' },
    { name: 'wire.build-ipv4-tcp', value: buildRate * BATCH, unit: 'packets/s', note: 'buildTcp + buildIp, 1380-byte payload' },
    {
      name: 'wire.build-ipv4-tcp-single',
      value: singleBuildRate * BATCH,
      unit: 'packets/s',
      note: 'buildIpTcp (one allocation, one checksum pass; what the stack sends with), 1380-byte payload',
    },
    { name: 'wire.ip-destination', value: peekRate * BATCH, unit: 'lookups/s' },
  ]
}

export default bench
