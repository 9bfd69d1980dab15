import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAddress } from './address.ts'
import { transportChecksum } from './checksum.ts'
import { PROTO_TCP } from './ip.ts'
import { ACK, MAX_WINDOW_SCALE, PSH, SYN, buildTcp, parseTcp, type TcpOptions, type TcpSegment } from './tcp.ts'
import { arbAddress, arbAddressPair, expectWireError, hex, throwsOnlyWireError } from './testing.ts'

const LOOPBACK4 = parseAddress('127.0.0.1')
const LOOPBACK6 = parseAddress('::1')

// An IPv4 ACK with timestamps captured on the Internet, as published with its checksum (0x37a6) at
// mark.kandm-solutions.com's header tables; verified independently with Python.
const PUBLISHED_ACK = hex(`4500 0034 eda5 4000 4006 4eb6 ac16 686d 4a7d 9f67 af1f 0050 e833 8b62 fc13 da66
                           8010 005c 37a6 0000 0101 080a 04b8 66f7 4add 9045`)
// SYNs captured from Linux 6.x connect() on loopback (MSS, SACK-permitted, timestamps, NOP, window scale 10).
// Loopback leaves TCP checksums to "hardware"; the values here (271b, ff90) were computed with Python.
const KERNEL_SYN4 = hex('9c40 1389 a1182903 00000000 a002 ffd7 271b 0000 0204ffd7 0402 080aa9bd054100000000 01 030 30a')
const KERNEL_SYN6 = hex('9c41 138a 8c6ae72c 00000000 a002 ffc4 ff90 0000 0204ffc4 0402 080a52b8d87900000000 01 030 30a')

function segment(overrides: Partial<TcpSegment>): TcpSegment {
  return { srcPort: 1000, dstPort: 2000, seq: 1, ack: 0, flags: ACK, window: 1024, urgent: 0, options: {}, payload: new Uint8Array(0), ...overrides }
}

/** A segment with the given raw option bytes and a valid checksum. */
function withRawOptions(options: Uint8Array, src = LOOPBACK4, dst = LOOPBACK4): Uint8Array {
  const bytes = new Uint8Array(20 + options.length)
  bytes.set(hex('03e8 07d0 00000001 00000000 0010 0400 0000 0000'))
  bytes[12] = ((20 + options.length) / 4) << 4
  bytes.set(options, 20)
  const sum = transportChecksum(bytes, src, dst, PROTO_TCP)
  bytes[16] = sum >> 8
  bytes[17] = sum & 0xff
  return bytes
}

describe('TCP goldens', () => {
  it('parses and rebuilds the published ACK byte for byte', () => {
    const src = PUBLISHED_ACK.subarray(12, 16)
    const dst = PUBLISHED_ACK.subarray(16, 20)
    const tcp = parseTcp(PUBLISHED_ACK.subarray(20), src, dst)
    expect(tcp).toEqual({
      srcPort: 0xaf1f,
      dstPort: 80,
      seq: 0xe8338b62,
      ack: 0xfc13da66,
      flags: ACK,
      window: 0x5c,
      urgent: 0,
      options: { timestamp: { value: 0x04b866f7, echo: 0x4add9045 } },
      payload: new Uint8Array(0),
    })
    expect(buildTcp(tcp, src, dst)).toEqual(PUBLISHED_ACK.subarray(20))
  })

  it.each([
    ['IPv4', KERNEL_SYN4, LOOPBACK4, 0x9c40, 0xa1182903, 0xffd7, 0xa9bd0541],
    ['IPv6', KERNEL_SYN6, LOOPBACK6, 0x9c41, 0x8c6ae72c, 0xffc4, 0x52b8d879],
  ])('parses and rebuilds the Linux %s SYN with the same option layout', (_, bytes, address, srcPort, seq, mss, tsval) => {
    const expected: TcpSegment = {
      srcPort,
      dstPort: srcPort === 0x9c40 ? 5001 : 5002,
      seq,
      ack: 0,
      flags: SYN,
      window: mss,
      urgent: 0,
      options: { mss, sackPermitted: true, timestamp: { value: tsval, echo: 0 }, windowScale: 10 },
      payload: new Uint8Array(0),
    }
    expect(parseTcp(bytes, address, address)).toEqual(expected)
    expect(buildTcp(expected, address, address)).toEqual(bytes)
  })
})

describe('parseTcp', () => {
  it('returns the payload as a view after the options', () => {
    const built = buildTcp(segment({ flags: ACK | PSH, payload: hex('68656c6c6f0a'), options: { timestamp: { value: 1, echo: 2 } } }), LOOPBACK4, LOOPBACK4)
    const tcp = parseTcp(built, LOOPBACK4, LOOPBACK4)
    expect(tcp.payload).toEqual(hex('68656c6c6f0a'))
    expect(tcp.payload.buffer).toBe(built.buffer)
    expect(tcp.payload.byteOffset).toBe(32)
  })

  it('verifies the checksum unless told not to', () => {
    const damaged = KERNEL_SYN4.slice()
    damaged[30]! ^= 1
    expectWireError(() => parseTcp(damaged, LOOPBACK4, LOOPBACK4), 'bad-checksum')
    expectWireError(() => parseTcp(KERNEL_SYN6, parseAddress('::2'), LOOPBACK6), 'bad-checksum')
    expect(parseTcp(damaged, LOOPBACK4, LOOPBACK4, false).options.mss).toBe(0xffd7)
  })

  it('skips unknown options and stops at end-of-list', () => {
    expect(parseTcp(withRawOptions(hex('1e04abcd 020405b4')), LOOPBACK4, LOOPBACK4).options).toEqual({ mss: 1460 })
    expect(parseTcp(withRawOptions(hex('00 020405b4 000000')), LOOPBACK4, LOOPBACK4).options).toEqual({})
    expect(parseTcp(withRawOptions(hex('01010101')), LOOPBACK4, LOOPBACK4).options).toEqual({})
  })

  it('decodes SACK blocks, and clamps a window scale above 14', () => {
    const options = parseTcp(withRawOptions(hex('0101 0512 00000010 00000020 fffffff0 00000004 010303 0f')), LOOPBACK4, LOOPBACK4).options
    expect(options.sack).toEqual([
      [0x10, 0x20],
      [0xfffffff0, 4],
    ])
    expect(options.windowScale).toBe(MAX_WINDOW_SCALE)
  })

  it.each([
    ['a length byte missing at the end', '01010102'],
    ['a length of zero', '1e000000'],
    ['a length of one', '1e010000'],
    ['a length that runs past the header', '1e050000'],
    ['an MSS of the wrong length', '02030500'],
    ['a window scale of the wrong length', '03040a00'],
    ['a SACK-permitted of the wrong length', '04030000'],
    ['a SACK of the wrong length', '050c 00000000 00000000 0000'],
    ['a SACK with no blocks', '05020000'],
    ['a timestamp of the wrong length', '080900000000000000000000'],
  ])('rejects %s as bad-option', (_, options) => {
    expectWireError(() => parseTcp(withRawOptions(hex(options)), LOOPBACK4, LOOPBACK4), 'bad-option')
  })

  it('rejects a data offset below 20 or beyond the segment', () => {
    const small = withRawOptions(new Uint8Array(0))
    small[12] = 0x40
    expectWireError(() => parseTcp(small, LOOPBACK4, LOOPBACK4, false), 'bad-length')
    const big = withRawOptions(new Uint8Array(0))
    big[12] = 0x60
    expectWireError(() => parseTcp(big, LOOPBACK4, LOOPBACK4, false), 'truncated')
    expectWireError(() => parseTcp(KERNEL_SYN4.subarray(0, 19), LOOPBACK4, LOOPBACK4), 'truncated')
  })

  it('throws nothing but WireError for arbitrary bytes, checksummed or not', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), arbAddress, arbAddress, fc.boolean(), (bytes, src, dst, verify) =>
        throwsOnlyWireError(() => parseTcp(bytes, src, dst, verify)),
      ),
    )
    // Valid headers around random option bytes reach deep into option parsing.
    const arbOptionBytes = fc.array(fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 5, 8, 10, 18), fc.nat(255)), { maxLength: 40 }).map((bytes) => {
      const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4)
      padded.set(bytes)
      return padded
    })
    fc.assert(fc.property(arbOptionBytes, (options) => throwsOnlyWireError(() => parseTcp(withRawOptions(options), LOOPBACK4, LOOPBACK4))))
  })
})

describe('buildTcp', () => {
  const uint32 = fc.nat({ max: 0xffffffff })
  const arbOptions: fc.Arbitrary<TcpOptions> = fc
    .record(
      {
        mss: fc.nat(0xffff),
        windowScale: fc.nat(MAX_WINDOW_SCALE),
        sackPermitted: fc.constant(true),
        sack: fc.array(fc.tuple(uint32, uint32), { minLength: 1, maxLength: 4 }),
        timestamp: fc.record({ value: uint32, echo: uint32 }),
      },
      { requiredKeys: [] },
    )
    .filter((o) => {
      // What fits in the 40 option bytes with the aligned layout.
      const length =
        (o.mss !== undefined ? 4 : 0) + (o.timestamp !== undefined ? 12 : o.sackPermitted ? 4 : 0) + (o.windowScale !== undefined ? 4 : 0) + (o.sack ? 4 + 8 * o.sack.length : 0)
      return length <= 40
    })
  const arbSegment: fc.Arbitrary<TcpSegment> = fc.record({
    srcPort: fc.nat(0xffff),
    dstPort: fc.nat(0xffff),
    seq: uint32,
    ack: uint32,
    flags: fc.nat(255),
    window: fc.nat(0xffff),
    urgent: fc.nat(0xffff),
    options: arbOptions,
    payload: fc.uint8Array({ maxLength: 64 }),
  })

  it('round-trips any segment with any combination of options', () => {
    fc.assert(
      fc.property(arbAddressPair, arbSegment, ({ src, dst }, seg) => {
        const bytes = buildTcp(seg, src, dst)
        expect(((bytes[12]! >> 4) * 4) % 4).toBe(0)
        expect(parseTcp(bytes, src, dst)).toEqual(seg)
      }),
      { numRuns: 300 },
    )
  })

  it('pads options to a 4-byte multiple', () => {
    const bytes = buildTcp(segment({ options: { windowScale: 7 } }), LOOPBACK4, LOOPBACK4)
    expect(bytes.length).toBe(24)
    expect(bytes.subarray(20)).toEqual(hex('01030307'))
    expect(buildTcp(segment({ options: { sackPermitted: true } }), LOOPBACK4, LOOPBACK4).subarray(20)).toEqual(hex('01010402'))
  })

  it('refuses options that do not fit and out-of-range fields', () => {
    const fourBlocks: Array<[number, number]> = [
      [1, 2],
      [3, 4],
      [5, 6],
      [7, 8],
    ]
    expectWireError(() => buildTcp(segment({ options: { timestamp: { value: 1, echo: 1 }, sack: fourBlocks } }), LOOPBACK4, LOOPBACK4), 'bad-option')
    expectWireError(() => buildTcp(segment({ options: { windowScale: 15 } }), LOOPBACK4, LOOPBACK4), 'bad-option')
    expectWireError(() => buildTcp(segment({ seq: 2 ** 32 }), LOOPBACK4, LOOPBACK4), 'bad-length')
    expectWireError(() => buildTcp(segment({ window: -1 }), LOOPBACK4, LOOPBACK4), 'bad-length')
    expectWireError(() => buildTcp(segment({ options: { sack: [[0, 2 ** 32]] } }), LOOPBACK4, LOOPBACK4), 'bad-length')
    expectWireError(() => buildTcp(segment({}), LOOPBACK4, LOOPBACK6), 'bad-address')
  })
})
