import { describe, expect, it } from 'vitest'
import { parseAddress } from '../../wire/address.ts'
import { buildEcho, parseEcho } from '../../wire/icmp.ts'
import { buildIp, parseIp, PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP } from '../../wire/ip.ts'
import { echoReplyFor } from './echo-responder.ts'

const me4 = parseAddress('10.9.0.2')
const me6 = parseAddress('fd09::2')
const them4 = parseAddress('10.9.0.1')
const them6 = parseAddress('fd09::1')
const data = new Uint8Array([1, 2, 3, 4, 5])

function request(version: 4 | 6, src: Uint8Array, dst: Uint8Array): Uint8Array {
  const payload = buildEcho({ kind: 'request', id: 0x1234, seq: 7, data }, version, src, dst)
  return buildIp({ src, dst, protocol: version === 4 ? PROTO_ICMP : PROTO_ICMPV6, payload })
}

describe('echoReplyFor', () => {
  for (const [version, me, them] of [[4, me4, them4], [6, me6, them6]] as const) {
    it(`answers an ICMPv${version === 4 ? '4' : '6'} echo request to a local address`, () => {
      const reply = echoReplyFor(request(version, them, me), [me4, me6])!
      const ip = parseIp(reply)
      expect(ip.src).toEqual(me)
      expect(ip.dst).toEqual(them)
      const echo = parseEcho(ip.payload, version, ip.src, ip.dst)
      expect(echo).toMatchObject({ kind: 'reply', id: 0x1234, seq: 7 })
      expect([...echo!.data]).toEqual([...data])
    })
  }

  it('ignores requests to other addresses, replies, other protocols and garbage', () => {
    expect(echoReplyFor(request(4, them4, parseAddress('10.9.0.3')), [me4])).toBeUndefined()
    const reply = buildEcho({ kind: 'reply', id: 1, seq: 1, data }, 4, them4, me4)
    expect(echoReplyFor(buildIp({ src: them4, dst: me4, protocol: PROTO_ICMP, payload: reply }), [me4])).toBeUndefined()
    expect(echoReplyFor(buildIp({ src: them4, dst: me4, protocol: PROTO_UDP, payload: new Uint8Array(8) }), [me4])).toBeUndefined()
    expect(echoReplyFor(new Uint8Array([0x45, 0, 0]), [me4])).toBeUndefined()
  })

  it('ignores a request whose ICMP checksum is wrong', () => {
    const packet = request(4, them4, me4)
    packet[packet.length - 1]! ^= 0xff
    expect(echoReplyFor(packet, [me4])).toBeUndefined()
  })
})
