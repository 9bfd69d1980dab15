// RFC 7541 Appendix C, every example: C.1 integers, C.2 single fields, C.3–C.6 header lists on
// one connection (decoder and encoder each must reproduce the exact bytes and table state).
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fromHex } from '../../crypto/index.ts'
import { HpackDecoder, HpackEncoder, HpackError, huffmanDecode, huffmanEncode, type HeaderList } from './hpack.ts'

const hex = (s: string): Uint8Array => fromHex(s.replace(/\s+/g, ''))
const toHexString = (b: Uint8Array): string => Buffer.from(b).toString('hex')

interface Step {
  bytes: string
  headers: HeaderList
  table: HeaderList
  size: number
}

const C3_HEADERS: HeaderList[] = [
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ],
]
const C3_TABLES: HeaderList[] = [
  [[':authority', 'www.example.com']],
  [
    ['cache-control', 'no-cache'],
    [':authority', 'www.example.com'],
  ],
  [
    ['custom-key', 'custom-value'],
    ['cache-control', 'no-cache'],
    [':authority', 'www.example.com'],
  ],
]
const C3_SIZES = [57, 110, 164]
const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT'
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT'
const LOCATION = 'https://www.example.com'
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'
const C5_HEADERS: HeaderList[] = [
  [
    [':status', '302'],
    ['cache-control', 'private'],
    ['date', DATE1],
    ['location', LOCATION],
  ],
  [
    [':status', '307'],
    ['cache-control', 'private'],
    ['date', DATE1],
    ['location', LOCATION],
  ],
  [
    [':status', '200'],
    ['cache-control', 'private'],
    ['date', DATE2],
    ['location', LOCATION],
    ['content-encoding', 'gzip'],
    ['set-cookie', COOKIE],
  ],
]
const C5_TABLES: HeaderList[] = [
  [
    ['location', LOCATION],
    ['date', DATE1],
    ['cache-control', 'private'],
    [':status', '302'],
  ],
  [
    [':status', '307'],
    ['location', LOCATION],
    ['date', DATE1],
    ['cache-control', 'private'],
  ],
  [
    ['set-cookie', COOKIE],
    ['content-encoding', 'gzip'],
    ['date', DATE2],
  ],
]
const C5_SIZES = [222, 222, 215]

const series = (bytes: string[], headers: HeaderList[], tables: HeaderList[], sizes: number[]): Step[] =>
  bytes.map((b, i) => ({ bytes: b, headers: headers[i]!, table: tables[i]!, size: sizes[i]! }))

const SERIES: Array<[string, number, 'never' | 'always', Step[]]> = [
  [
    'C.3 requests without Huffman',
    4096,
    'never',
    series(
      ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', '8286 84be 5808 6e6f 2d63 6163 6865', '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'],
      C3_HEADERS,
      C3_TABLES,
      C3_SIZES,
    ),
  ],
  [
    'C.4 requests with Huffman',
    4096,
    'always',
    series(
      ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', '8286 84be 5886 a8eb 1064 9cbf', '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'],
      C3_HEADERS,
      C3_TABLES,
      C3_SIZES,
    ),
  ],
  [
    'C.5 responses without Huffman (table size 256, evictions)',
    256,
    'never',
    series(
      [
        '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
        '4803 3330 37c1 c0bf',
        '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
      ],
      C5_HEADERS,
      C5_TABLES,
      C5_SIZES,
    ),
  ],
  [
    'C.6 responses with Huffman (table size 256, evictions)',
    256,
    'always',
    series(
      [
        '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
        '4883 640e ffc1 c0bf',
        '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
      ],
      C5_HEADERS,
      C5_TABLES,
      C5_SIZES,
    ),
  ],
]

describe('HPACK (RFC 7541 Appendix C)', () => {
  it('C.1 integers: 10 and 1337 with a 5-bit prefix, 42 at an octet boundary', () => {
    // Decoded through indexed-field and size-update representations, which carry raw prefix integers.
    const d = new HpackDecoder({ maxTableSize: 4096 })
    d.decode(hex('2a')) // size update to 10 (001 01010)
    expect(d.table.maxSize).toBe(10)
    d.decode(hex('3f 9a 0a')) // 001 11111, 1337 - 31 = 1306 = 0x9a 0x0a
    expect(d.table.maxSize).toBe(1337)
    const e = new HpackEncoder({ tableSize: 4096 })
    e.setMaxTableSize(1337)
    expect(toHexString(e.encode([]))).toBe('3f9a0a')
    e.setMaxTableSize(10)
    expect(toHexString(e.encode([]))).toBe('2a')
  })

  const C2: Array<[string, string, [string, string], HeaderList]> = [
    ['C.2.1 literal with indexing', '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', ['custom-key', 'custom-header'], [['custom-key', 'custom-header']]],
    ['C.2.2 literal without indexing', '040c 2f73 616d 706c 652f 7061 7468', [':path', '/sample/path'], []],
    ['C.2.3 literal never indexed', '1008 7061 7373 776f 7264 0673 6563 7265 74', ['password', 'secret'], []],
    ['C.2.4 indexed', '82', [':method', 'GET'], []],
  ]
  for (const [name, bytes, header, table] of C2) {
    it(`${name}: decodes to one field and leaves the table as the RFC shows`, () => {
      const d = new HpackDecoder()
      expect(d.decode(hex(bytes))).toEqual([header])
      expect(d.table.entries).toEqual(table)
    })
  }
  it('C.2.1, C.2.3, C.2.4: the encoder produces the RFC bytes (C.2.2 is a form it never chooses)', () => {
    expect(toHexString(new HpackEncoder({ huffman: 'never' }).encode([['custom-key', 'custom-header']]))).toBe(C2[0]![1].replace(/\s/g, ''))
    expect(toHexString(new HpackEncoder({ huffman: 'never' }).encode([['password', 'secret']], new Set(['password'])))).toBe(C2[2]![1].replace(/\s/g, ''))
    expect(toHexString(new HpackEncoder().encode([[':method', 'GET']]))).toBe('82')
  })

  for (const [name, tableSize, huffman, steps] of SERIES) {
    it(`${name}: the decoder yields each header list and the RFC's table and size after each`, () => {
      const d = new HpackDecoder({ maxTableSize: tableSize })
      d.table.resize(tableSize)
      for (const step of steps) {
        expect(d.decode(hex(step.bytes))).toEqual(step.headers)
        expect(d.table.entries).toEqual(step.table)
        expect(d.table.size).toBe(step.size)
      }
    })
    it(`${name}: the encoder emits the RFC bytes for each header list`, () => {
      const e = new HpackEncoder({ huffman, tableSize })
      for (const step of steps) {
        expect(toHexString(e.encode(step.headers))).toBe(step.bytes.replace(/\s/g, ''))
        expect(e.table.entries).toEqual(step.table)
        expect(e.table.size).toBe(step.size)
      }
    })
  }
})

describe('HPACK errors and round trips', () => {
  const errorOf = (bytes: string, d = new HpackDecoder()): string => {
    try {
      d.decode(hex(bytes))
    } catch (error) {
      expect(error).toBeInstanceOf(HpackError)
      return (error as Error).message
    }
    throw new Error('expected HpackError')
  }
  it('rejects Huffman padding over 7 bits, padding that is not all ones, and an encoded EOS', () => {
    expect(() => huffmanDecode(hex('ff ff'))).toThrow(/padding/) // 16 one-bits: no symbol ends, padding too long
    expect(() => huffmanDecode(hex('00'))).toThrow(/padding/) // '0' (00000) then 000 padding
    expect(() => huffmanDecode(hex('ff ff ff ff'))).toThrow(/EOS/)
  })
  it('rejects index 0, an index past the table, a size update over our limit or after a field, truncation', () => {
    expect(errorOf('80')).toMatch(/index 0/)
    expect(errorOf('be')).toMatch(/not in the table/)
    expect(errorOf('3fe21f', new HpackDecoder({ maxTableSize: 4096 }))).toMatch(/exceeds our limit/)
    expect(errorOf('82 20')).toMatch(/after a header field/)
    expect(errorOf('400a 6375')).toMatch(/truncated/)
    expect(errorOf('ff ff ff ff ff ff 7f')).toMatch(/overflow/)
  })
  it('after an error the decoder refuses every later block (the shared table is lost)', () => {
    const d = new HpackDecoder()
    expect(() => d.decode(hex('80'))).toThrow(HpackError)
    expect(() => d.decode(hex('82'))).toThrow(HpackError)
  })
  it('a header list over the size limit is refused', () => {
    const e = new HpackEncoder()
    const block = e.encode([['x-big', 'a'.repeat(2000)]])
    expect(() => new HpackDecoder({ maxHeaderListSize: 1000 }).decode(block)).toThrow(/limit|exceeds/)
  })
  it('any header lists survive encoder → decoder across one shared table, and Huffman round-trips any octets', () => {
    const octets = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 40 })
    fc.assert(
      fc.property(octets, (s) => huffmanDecode(huffmanEncode(s)) === s),
      { numRuns: 300 },
    )
    const header = fc.tuple(fc.constantFrom(':path', 'content-type', 'x-a', 'x-b', 'date'), octets) as fc.Arbitrary<[string, string]>
    fc.assert(
      fc.property(fc.array(fc.array(header, { maxLength: 8 }), { maxLength: 8 }), fc.integer({ min: 0, max: 4096 }), (lists, size) => {
        const e = new HpackEncoder()
        const d = new HpackDecoder()
        e.setMaxTableSize(size)
        for (const list of lists) expect(d.decode(e.encode(list))).toEqual(list)
        expect(d.table.entries).toEqual(e.table.entries)
      }),
      { numRuns: 200 },
    )
  })
  it('arbitrary bytes only ever give an HpackError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          new HpackDecoder().decode(bytes)
        } catch (error) {
          if (!(error instanceof HpackError)) throw error
        }
      }),
      { numRuns: 2000 },
    )
  })
})
