import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { addressEquals, formatAddress, formatPrefix, parseAddress, parsePrefix, prefixContains } from './address.ts'
import { arbAddress, arbIpv4, arbIpv6, expectWireError, hex, throwsOnlyWireError } from './testing.ts'

describe('parseAddress / formatAddress', () => {
  it('parses IPv4 dotted quads', () => {
    expect(parseAddress('192.0.2.1')).toEqual(new Uint8Array([192, 0, 2, 1]))
    expect(parseAddress('0.0.0.0')).toEqual(new Uint8Array(4))
    expect(formatAddress(new Uint8Array([255, 255, 255, 255]))).toBe('255.255.255.255')
  })

  it.each([
    // RFC 5952 §4.1 leading zeros, §4.3 lowercase
    ['2001:0DB8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8::0001', '2001:db8::1'],
    // §4.2.2: a single zero group is not compressed
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // §4.2.3: the longest run is compressed; the first of equal runs wins
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:2:3:4:5:6::8', '1:2:3:4:5:6:0:8'],
    ['fe80::', 'fe80::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    // §5: IPv4-mapped addresses keep the dotted tail
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::ffff:c000:0201', '::ffff:192.0.2.1'],
    // Other embedded-IPv4 input is just hex on output
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('formats %s as %s', (input, canonical) => {
    expect(formatAddress(parseAddress(input))).toBe(canonical)
  })

  it('keeps IPv6 byte order', () => {
    expect(parseAddress('2001:db8::ff00:42:8329')).toEqual(hex('20010db8000000000000ff0000428329'))
  })

  it.each([
    '',
    ' 10.0.0.1',
    '10.0.0',
    '10.0.0.1.2',
    '10.0.0.256',
    '10.0.0.01',
    '10.0.0.-1',
    '10.0.0.0x1',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7::8',
    '1::2::3',
    ':1::2',
    '1::2:',
    '12345::',
    'g::',
    '::1.2.3',
    '::1.2.3.4:5',
    '1.2.3.4::',
    'fe80::1%eth0',
    ':::',
  ])('rejects %j', (text) => {
    expectWireError(() => parseAddress(text), 'bad-address')
  })

  it('refuses to format an address that is neither 4 nor 16 bytes', () => {
    expectWireError(() => formatAddress(new Uint8Array(5)), 'bad-address')
  })

  it('round-trips any address through text', () => {
    fc.assert(fc.property(arbAddress, (a) => addressEquals(parseAddress(formatAddress(a)), a)))
  })

  it('agrees with the WHATWG URL host serializer (same compression rules as RFC 5952)', () => {
    fc.assert(
      fc.property(arbIpv6, (a) => {
        const ours = formatAddress(a)
        fc.pre(!ours.startsWith('::ffff:') || !ours.includes('.')) // WHATWG prints mapped IPv4 in hex
        expect(`[${ours}]`).toBe(new URL(`http://[${ours}]/`).hostname)
        expect(new URL(`http://[${ours}]/`).hostname).toBe(new URL(`http://[${expandedText(a)}]/`).hostname)
      }),
    )
    fc.assert(fc.property(arbIpv4, (a) => formatAddress(a) === new URL(`http://${formatAddress(a)}/`).hostname))
  })

  it('throws nothing but WireError for arbitrary text', () => {
    fc.assert(fc.property(fc.string(), (text) => throwsOnlyWireError(() => parseAddress(text))))
    const addressish = fc.stringMatching(/^[0-9a-fA-F:.]{0,45}$/)
    fc.assert(fc.property(addressish, (text) => throwsOnlyWireError(() => formatAddress(parseAddress(text)))))
  })
})

/** Uncompressed, zero-padded text, so the oracle does its own compression. */
function expandedText(a: Uint8Array): string {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((a[i]! << 8) | a[i + 1]!).toString(16).padStart(4, '0'))
  return groups.join(':')
}

describe('prefixes', () => {
  it('masks host bits off', () => {
    expect(formatPrefix(parsePrefix('10.1.2.3/8'))).toBe('10.0.0.0/8')
    expect(formatPrefix(parsePrefix('192.168.77.255/20'))).toBe('192.168.64.0/20')
    expect(formatPrefix(parsePrefix('fd7a:115c:a1e0:ab12:4843:cd96:6258:b240/48'))).toBe('fd7a:115c:a1e0::/48')
    expect(formatPrefix(parsePrefix('2001:db8::1/127'))).toBe('2001:db8::/127')
  })

  it('reads a bare address as a host prefix', () => {
    expect(parsePrefix('100.64.0.1')).toEqual({ address: new Uint8Array([100, 64, 0, 1]), bits: 32 })
    expect(parsePrefix('::1').bits).toBe(128)
  })

  it.each(['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/08', '10.0.0.0/-1', '/8', '::/129', '10.0.0.0/8/8', 'x/8'])('rejects %j', (text) => {
    expectWireError(() => parsePrefix(text), 'bad-address')
  })

  it('throws nothing but WireError for arbitrary text', () => {
    const prefixish = fc.stringMatching(/^[0-9a-fA-F:./]{0,50}$/)
    fc.assert(fc.property(fc.oneof(fc.string(), prefixish), (text) => throwsOnlyWireError(() => formatPrefix(parsePrefix(text)))))
  })

  it('contains exactly the addresses that share its leading bits', () => {
    const p = parsePrefix('10.64.0.0/10')
    expect(prefixContains(p, parseAddress('10.127.255.255'))).toBe(true)
    expect(prefixContains(p, parseAddress('10.128.0.0'))).toBe(false)
    expect(prefixContains(parsePrefix('0.0.0.0/0'), parseAddress('8.8.8.8'))).toBe(true)
    expect(prefixContains(parsePrefix('::/0'), parseAddress('8.8.8.8'))).toBe(false)
    expect(prefixContains(parsePrefix('0.0.0.0/0'), parseAddress('::ffff:8.8.8.8'))).toBe(false)
  })

  it('matches a bit-by-bit comparison for any prefix and address', () => {
    const arbCase = fc.oneof(fc.tuple(arbIpv4, arbIpv4, fc.integer({ min: 0, max: 32 })), fc.tuple(arbIpv6, arbIpv6, fc.integer({ min: 0, max: 128 })))
    fc.assert(
      fc.property(arbCase, fc.boolean(), ([base, other, bits], nearby) => {
        // Half the time, make `other` share a long prefix with `base` so both outcomes are common.
        const candidate = nearby ? base.map((b, i) => (i < base.length - 1 ? b : other[i]!)) : other
        const prefix = parsePrefix(`${formatAddress(base)}/${bits}`)
        const bitAt = (a: Uint8Array, i: number): number => (a[i >> 3]! >> (7 - (i & 7))) & 1
        let shares = true
        for (let i = 0; i < bits; i++) if (bitAt(base, i) !== bitAt(candidate, i)) shares = false
        expect(prefixContains(prefix, candidate)).toBe(shares)
        expect(formatPrefix(parsePrefix(formatPrefix(prefix)))).toBe(formatPrefix(prefix))
      }),
    )
  })
})
