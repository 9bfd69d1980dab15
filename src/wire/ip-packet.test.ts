import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAddress } from './address.ts'
import { WireError } from './errors.ts'
import { PROTO_TCP, PROTO_UDP, buildIp, parseIp } from './ip.ts'
import { buildIpTcp, buildIpUdp } from './ip-packet.ts'
import { ACK, MAX_WINDOW_SCALE, PSH, buildTcp, parseTcp, type TcpOptions, type TcpSegment } from './tcp.ts'
import { arbAddressPair, expectWireError, hex } from './testing.ts'
import { buildUdp, parseUdp, type UdpDatagram } from './udp.ts'

const A4 = parseAddress('100.64.0.1')
const B4 = parseAddress('100.64.0.2')
const A6 = parseAddress('fd7a:115c:a1e0::1')
const B6 = parseAddress('fd7a:115c:a1e0::2')

function twoStepTcp(src: Uint8Array, dst: Uint8Array, seg: TcpSegment, ttl?: number, id?: number): Uint8Array {
  return buildIp({ src, dst, protocol: PROTO_TCP, payload: buildTcp(seg, src, dst), ttl, id })
}

function twoStepUdp(src: Uint8Array, dst: Uint8Array, d: UdpDatagram, ttl?: number, id?: number): Uint8Array {
  return buildIp({ src, dst, protocol: PROTO_UDP, payload: buildUdp(d, src, dst), ttl, id })
}

/** The bytes `build` returns, or the code of the WireError it throws (anything else fails the test). */
function outcome(build: () => Uint8Array): Uint8Array | string {
  try {
    return build()
  } catch (error) {
    if (!(error instanceof WireError)) throw error
    return error.code
  }
}

const DATA_SEGMENT: TcpSegment = {
  srcPort: 40000,
  dstPort: 443,
  seq: 0x01020304,
  ack: 0xa0b0c0d0,
  flags: ACK | PSH,
  window: 0x1234,
  urgent: 0,
  options: { timestamp: { value: 7, echo: 9 }, sack: [[100, 200]] },
  payload: new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x01]),
}

describe('buildIpTcp goldens', () => {
  it('encodes an IPv4 data segment with timestamps and SACK exactly as buildIp(buildTcp(…))', () => {
    const packet = buildIpTcp({ src: A4, dst: B4, id: 0x0102 }, DATA_SEGMENT)
    // Checksums computed independently with Python; pinned so a change in either path shows up as a byte diff, not only as disagreement.
    expect(packet).toEqual(
      hex(`4500 0045 0102 4000 4006 712e 6440 0001 6440 0002
           9c40 01bb 01020304 a0b0c0d0 b018 1234 c285 0000
           0101 080a 00000007 00000009 0101 050a 00000064 000000c8
           dead beef 01`),
    )
    expect(packet).toEqual(twoStepTcp(A4, B4, DATA_SEGMENT, undefined, 0x0102))
  })

  it('encodes an IPv6 SYN exactly as buildIp(buildTcp(…))', () => {
    const syn: TcpSegment = {
      ...DATA_SEGMENT,
      flags: 2,
      ack: 0,
      options: { mss: 1380, sackPermitted: true, timestamp: { value: 1, echo: 0 }, windowScale: 7 },
      payload: new Uint8Array(0),
    }
    const packet = buildIpTcp({ src: A6, dst: B6, ttl: 3 }, syn)
    expect(packet).toEqual(twoStepTcp(A6, B6, syn, 3))
    const ip = parseIp(packet)
    expect(ip.ttl).toBe(3)
    expect(parseTcp(ip.payload, ip.src, ip.dst)).toEqual(syn)
  })

  it('round-trips through parseIp + parseTcp with the checksums verified', () => {
    const ip = parseIp(buildIpTcp({ src: B4, dst: A4 }, DATA_SEGMENT))
    expect(ip.protocol).toBe(PROTO_TCP)
    expect(parseTcp(ip.payload, ip.src, ip.dst)).toEqual(DATA_SEGMENT)
  })

  it('rejects what the two-step build rejects, with the same error code', () => {
    expectWireError(() => buildIpTcp({ src: A4, dst: B6 }, DATA_SEGMENT), 'bad-address')
    expectWireError(() => buildIpTcp({ src: A4, dst: B4 }, { ...DATA_SEGMENT, srcPort: 70000 }), 'bad-length')
    expectWireError(() => buildIpTcp({ src: A4, dst: B4, ttl: 256 }, DATA_SEGMENT), 'bad-length')
    expectWireError(() => buildIpTcp({ src: A4, dst: B4 }, { ...DATA_SEGMENT, payload: new Uint8Array(65535 - 40) }), 'bad-length')
    expectWireError(() => buildIpTcp({ src: A6, dst: B6 }, { ...DATA_SEGMENT, payload: new Uint8Array(65536) }), 'bad-length')
    // Fits TCP's 16-bit length but not IPv4's total length: the IP layer is the one to refuse.
    const big = { ...DATA_SEGMENT, options: {}, payload: new Uint8Array(65535 - 20 - 10) }
    expect(buildTcp(big, A4, B4).length).toBe(65525)
    expectWireError(() => buildIpTcp({ src: A4, dst: B4 }, big), 'bad-length')
    expect(buildIpTcp({ src: A6, dst: B6 }, big)).toEqual(twoStepTcp(A6, B6, big))
  })
})

describe('buildIpUdp goldens', () => {
  it('encodes IPv4 and IPv6 datagrams exactly as buildIp(buildUdp(…))', () => {
    const d: UdpDatagram = { srcPort: 53, dstPort: 5353, payload: new Uint8Array([1, 2, 3]) }
    const packet = buildIpUdp({ src: A4, dst: B4, id: 9 }, d)
    expect(packet).toEqual(hex('4500 001f 0009 4000 4011 7242 6440 0001 6440 0002 0035 14e9 000b 1e35 010203'))
    expect(packet).toEqual(twoStepUdp(A4, B4, d, undefined, 9))
    expect(buildIpUdp({ src: A6, dst: B6 }, d)).toEqual(twoStepUdp(A6, B6, d))
    const ip = parseIp(packet)
    expect(parseUdp(ip.payload, ip.src, ip.dst)).toEqual(d)
  })

  it('sends a computed zero checksum as all ones, like buildUdp', () => {
    // Search small payloads for one whose checksum computes to zero, then compare both builders on it.
    let found: Uint8Array | undefined
    for (let x = 0; x <= 0xffff && !found; x++) {
      const payload = new Uint8Array([x >> 8, x & 0xff])
      const packet = buildIpUdp({ src: A4, dst: B4 }, { srcPort: 1, dstPort: 2, payload })
      if (packet[26] === 0xff && packet[27] === 0xff) found = payload
    }
    expect(found).toBeDefined()
    const d = { srcPort: 1, dstPort: 2, payload: found! }
    expect(buildIpUdp({ src: A4, dst: B4 }, d)).toEqual(twoStepUdp(A4, B4, d))
  })
})

describe('single-buffer builders equal the two-step build', () => {
  const uint32 = fc.nat({ max: 0xffffffff })
  const arbOptions: fc.Arbitrary<TcpOptions> = fc.record(
    {
      mss: fc.nat(0xffff),
      windowScale: fc.nat(MAX_WINDOW_SCALE),
      sackPermitted: fc.constant(true),
      sack: fc.array(fc.tuple(uint32, uint32), { minLength: 0, maxLength: 5 }),
      timestamp: fc.record({ value: uint32, echo: uint32 }),
    },
    { requiredKeys: [] },
  )
  // Mostly valid fields, sometimes out of range, so the error paths are compared too.
  const field = (bits: number): fc.Arbitrary<number> =>
    fc.oneof({ weight: 8, arbitrary: fc.nat(2 ** bits - 1) }, { weight: 1, arbitrary: fc.oneof(fc.constant(-1), fc.constant(2 ** bits), fc.constant(0.5)) })
  const arbSegment: fc.Arbitrary<TcpSegment> = fc.record({
    srcPort: field(16),
    dstPort: field(16),
    seq: field(32),
    ack: field(32),
    flags: field(8),
    window: field(16),
    urgent: field(16),
    options: arbOptions,
    payload: fc.uint8Array({ maxLength: 300 }),
  })
  const arbIpFields = fc.record({ ttl: fc.option(field(8), { nil: undefined }), id: fc.option(field(16), { nil: undefined }) })
  const arbPair = fc.oneof({ weight: 9, arbitrary: arbAddressPair }, { weight: 1, arbitrary: fc.constant({ version: 4 as const, src: A4, dst: B6 }) })

  it('buildIpTcp(ip, seg) == buildIp(buildTcp(seg)) for arbitrary inputs, bytes or error code', () => {
    fc.assert(
      fc.property(arbPair, arbIpFields, arbSegment, ({ src, dst }, { ttl, id }, seg) => {
        const expected = outcome(() => twoStepTcp(src, dst, seg, ttl, id))
        expect(outcome(() => buildIpTcp({ src, dst, ttl, id }, seg))).toEqual(expected)
      }),
      { numRuns: 500 },
    )
  })

  it('buildIpUdp(ip, d) == buildIp(buildUdp(d)) for arbitrary inputs, bytes or error code', () => {
    const arbDatagram = fc.record({ srcPort: field(16), dstPort: field(16), payload: fc.uint8Array({ maxLength: 300 }) })
    fc.assert(
      fc.property(arbPair, arbIpFields, arbDatagram, ({ src, dst }, { ttl, id }, d) => {
        const expected = outcome(() => twoStepUdp(src, dst, d, ttl, id))
        expect(outcome(() => buildIpUdp({ src, dst, ttl, id }, d))).toEqual(expected)
      }),
      { numRuns: 500 },
    )
  })
})
