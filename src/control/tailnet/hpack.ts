// HPACK (RFC 7541): header compression for HTTP/2, with Huffman coding and the dynamic table.
// Go's encoder (the control server's side) uses both, so a decoder without either cannot read
// Headscale's responses. Header names and values are octet strings; here each octet is one
// char (latin1), so `string.length` is the octet length RFC 7541 §4.1 counts.
import { HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables.ts'

export type HeaderList = Array<[name: string, value: string]>

export class HpackError extends Error {
  override readonly name = 'HpackError'
}

/** RFC 7541 §4.1: an entry's size is its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32
const STATIC_COUNT = STATIC_TABLE.length
const EOS = 256

// --- Huffman (RFC 7541 §5.2, Appendix B) ---

const huffmanLength = new Uint8Array(257)
const huffmanCode = new Uint32Array(257)
/** Decoding tree: node n's children at [2n] and [2n+1]; a leaf is stored as -(symbol + 1). */
const huffmanTree = new Int32Array(2 * 512)
{
  for (let i = 0; i < 257; i++) huffmanLength[i] = HUFFMAN_LENGTHS.charCodeAt(i) - 0x61 + 5
  // Canonical code: by (length, symbol), each code is the previous + 1, shifted left on a longer length.
  const order = Array.from({ length: 257 }, (_, i) => i).sort((a, b) => huffmanLength[a]! - huffmanLength[b]! || a - b)
  let code = 0
  let previousLength = huffmanLength[order[0]!]!
  let nodes = 1
  for (let j = 0; j < order.length; j++) {
    const symbol = order[j]!
    const length = huffmanLength[symbol]!
    if (j > 0) code = (code + 1) * 2 ** (length - previousLength)
    previousLength = length
    huffmanCode[symbol] = code
    let node = 0
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = 2 * node + (Math.floor(code / 2 ** bit) & 1)
      if (bit === 0) huffmanTree[slot] = -(symbol + 1)
      else {
        if (huffmanTree[slot] === 0) huffmanTree[slot] = nodes++
        node = huffmanTree[slot]!
      }
    }
  }
}

export function huffmanEncodedLength(text: string): number {
  let bits = 0
  for (let i = 0; i < text.length; i++) bits += huffmanLength[text.charCodeAt(i) & 0xff]!
  return Math.ceil(bits / 8)
}

export function huffmanEncode(text: string): Uint8Array {
  const out = new Uint8Array(huffmanEncodedLength(text))
  let acc = 0 // at most 7 pending bits + a 30-bit code: exact in a double
  let bits = 0
  let o = 0
  for (let i = 0; i < text.length; i++) {
    const symbol = text.charCodeAt(i) & 0xff
    acc = acc * 2 ** huffmanLength[symbol]! + huffmanCode[symbol]!
    bits += huffmanLength[symbol]!
    while (bits >= 8) {
      bits -= 8
      const byte = Math.floor(acc / 2 ** bits)
      out[o++] = byte
      acc -= byte * 2 ** bits
    }
  }
  // §5.2: pad with the most significant bits of EOS (all ones).
  if (bits > 0) out[o++] = (acc << (8 - bits)) | (0xff >> bits)
  return out
}

export function huffmanDecode(bytes: Uint8Array): string {
  const chars: number[] = []
  let node = 0
  let depth = 0 // bits consumed since the last complete symbol
  let allOnes = true
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >> bit) & 1
      const next = huffmanTree[2 * node + b]!
      depth++
      allOnes &&= b === 1
      if (next < 0) {
        const symbol = -next - 1
        // §5.2: "A Huffman-encoded string literal containing the EOS symbol MUST be treated as a decoding error."
        if (symbol === EOS) throw new HpackError('Huffman string contains EOS')
        chars.push(symbol)
        node = 0
        depth = 0
        allOnes = true
      } else if (next === 0) {
        throw new HpackError('invalid Huffman code')
      } else node = next
    }
  }
  // §5.2: padding longer than 7 bits, or not the EOS prefix (all ones), is a decoding error.
  if (depth > 7) throw new HpackError('Huffman padding longer than 7 bits')
  if (!allOnes) throw new HpackError('Huffman padding is not the EOS prefix')
  return latin1(chars)
}

function latin1(codes: ArrayLike<number>): string {
  let s = ''
  for (let i = 0; i < codes.length; i += 8192) s += String.fromCharCode(...Array.prototype.slice.call(codes, i, i + 8192))
  return s
}

// --- Primitive representations (RFC 7541 §5.1, §5.2) ---

class Reader {
  offset = 0
  constructor(readonly bytes: Uint8Array) {}
  get done(): boolean {
    return this.offset >= this.bytes.length
  }
  byte(): number {
    if (this.offset >= this.bytes.length) throw new HpackError('header block truncated')
    return this.bytes[this.offset++]!
  }
  /** §5.1: an N-bit prefix integer; the first byte's high bits are the caller's flags. */
  integer(prefixBits: number): number {
    const max = (1 << prefixBits) - 1
    let value = this.byte() & max
    if (value < max) return value
    let shift = 0
    for (;;) {
      const b = this.byte()
      value += (b & 0x7f) * 2 ** shift
      shift += 7
      // Nothing legitimate needs more than 2^31: refuse before the number stops being exact.
      if (value > 0x7fff_ffff) throw new HpackError('integer overflow in header block')
      if ((b & 0x80) === 0) return value
    }
  }
  string(limit: number): string {
    const huffman = (this.bytes[this.offset] ?? 0) & 0x80
    const length = this.integer(7)
    if (length > limit) throw new HpackError(`header string of ${length} octets exceeds the ${limit}-octet limit`)
    if (this.offset + length > this.bytes.length) throw new HpackError('header string truncated')
    const raw = this.bytes.subarray(this.offset, this.offset + length)
    this.offset += length
    return huffman ? huffmanDecode(raw) : latin1(raw)
  }
}

class Writer {
  #chunks: number[] = []
  integer(value: number, prefixBits: number, flags: number): void {
    const max = (1 << prefixBits) - 1
    if (value < max) {
      this.#chunks.push(flags | value)
      return
    }
    this.#chunks.push(flags | max)
    value -= max
    while (value >= 128) {
      this.#chunks.push((value % 128) | 0x80)
      value = Math.floor(value / 128)
    }
    this.#chunks.push(value)
  }
  string(text: string, huffman: boolean): void {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) throw new RangeError(`header text must be octets (latin1), got ${JSON.stringify(text.slice(0, 40))}`)
    if (huffman) {
      const coded = huffmanEncode(text)
      this.integer(coded.length, 7, 0x80)
      for (const b of coded) this.#chunks.push(b)
    } else {
      this.integer(text.length, 7, 0)
      for (let i = 0; i < text.length; i++) this.#chunks.push(text.charCodeAt(i))
    }
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.#chunks)
  }
}

// --- Dynamic table (RFC 7541 §2.3.2, §4) ---

export class DynamicTable {
  /** Newest first: entries[0] is index 62. */
  readonly entries: Array<[string, string]> = []
  size = 0
  constructor(public maxSize: number) {}
  add(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD
    // §4.4: an entry larger than the whole table empties it and is not added.
    this.#evictTo(this.maxSize - entrySize)
    if (entrySize <= this.maxSize) {
      this.entries.unshift([name, value])
      this.size += entrySize
    }
  }
  resize(maxSize: number): void {
    this.maxSize = maxSize
    this.#evictTo(maxSize)
  }
  #evictTo(limit: number): void {
    while (this.size > Math.max(0, limit) && this.entries.length > 0) {
      const [n, v] = this.entries.pop()!
      this.size -= n.length + v.length + ENTRY_OVERHEAD
    }
    if (limit < 0) this.entries.length = 0
  }
  get(index: number): [string, string] {
    if (index >= 1 && index <= STATIC_COUNT) return STATIC_TABLE[index - 1] as [string, string]
    const entry = this.entries[index - STATIC_COUNT - 1]
    if (index < 1 || !entry) throw new HpackError(`header index ${index} is not in the table`)
    return entry
  }
}

export interface DecoderOptions {
  /** Our SETTINGS_HEADER_TABLE_SIZE: the most a size update may ask for (RFC 7541 §6.3). */
  maxTableSize?: number
  /** The most octets of names and values one header block may decode to (RFC 9113 §6.5.2). */
  maxHeaderListSize?: number
}

/**
 * Decodes header blocks. Any error leaves the shared table state unknown, so HTTP/2 treats it as
 * a connection error (RFC 9113 §4.3, COMPRESSION_ERROR); the decoder refuses further blocks.
 */
export class HpackDecoder {
  readonly table: DynamicTable
  readonly #maxTableSize: number
  readonly #maxHeaderListSize: number
  #failed: HpackError | undefined

  constructor(options: DecoderOptions = {}) {
    this.#maxTableSize = options.maxTableSize ?? 4096
    this.#maxHeaderListSize = options.maxHeaderListSize ?? 256 * 1024
    this.table = new DynamicTable(this.#maxTableSize)
  }

  decode(block: Uint8Array): HeaderList {
    if (this.#failed) throw this.#failed
    try {
      return this.#decodeBlock(block)
    } catch (error) {
      this.#failed = error instanceof HpackError ? error : new HpackError(String(error))
      throw this.#failed
    }
  }

  #decodeBlock(block: Uint8Array): HeaderList {
    const r = new Reader(block)
    const headers: HeaderList = []
    let listSize = 0
    let sawField = false
    while (!r.done) {
      const first = block[r.offset]!
      let name: string
      let value: string
      if (first & 0x80) {
        // §6.1 indexed header field
        const index = r.integer(7)
        if (index === 0) throw new HpackError('header index 0')
        ;[name, value] = this.table.get(index)
      } else if ((first & 0xe0) === 0x20) {
        // §6.3 dynamic table size update: only at the start of a block (§4.2)
        if (sawField) throw new HpackError('dynamic table size update after a header field')
        const size = r.integer(5)
        if (size > this.#maxTableSize) throw new HpackError(`dynamic table size update to ${size} exceeds our limit ${this.#maxTableSize}`)
        this.table.resize(size)
        continue
      } else {
        // §6.2.1 incremental indexing (01, 6-bit index); §6.2.2 without / §6.2.3 never indexed (0000/0001, 4-bit)
        const indexing = (first & 0xc0) === 0x40
        const index = r.integer(indexing ? 6 : 4)
        const room = this.#maxHeaderListSize - listSize
        name = index === 0 ? r.string(room) : this.table.get(index)[0]
        value = r.string(room)
        if (indexing) this.table.add(name, value)
      }
      sawField = true
      listSize += name.length + value.length + ENTRY_OVERHEAD
      if (listSize > this.#maxHeaderListSize) throw new HpackError(`header list exceeds ${this.#maxHeaderListSize} octets`)
      headers.push([name, value])
    }
    return headers
  }
}

export interface EncoderOptions {
  /** 'shorter' (default) Huffman-codes a string when that saves octets. */
  huffman?: 'always' | 'never' | 'shorter'
  /** The table size both sides start with (SETTINGS_HEADER_TABLE_SIZE already agreed), default 4096. */
  tableSize?: number
}

/**
 * A simple, correct encoder: an exact match (static first, then dynamic) is sent indexed; any
 * other field is a literal with incremental indexing, naming a static (else dynamic) entry when
 * one has the name. Fields that must not be stored (`never` set) use the never-indexed form.
 */
export class HpackEncoder {
  readonly table: DynamicTable
  readonly #huffman: 'always' | 'never' | 'shorter'
  #pendingSize: number | undefined

  constructor(options: EncoderOptions = {}) {
    this.#huffman = options.huffman ?? 'shorter'
    this.table = new DynamicTable(options.tableSize ?? 4096)
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE: we use min(4096, it) and announce the change (§6.3). */
  setMaxTableSize(size: number): void {
    const next = Math.min(4096, size)
    if (next === this.table.maxSize && this.#pendingSize === undefined) return
    this.#pendingSize = next
    this.table.resize(next)
  }

  encode(headers: HeaderList, never: ReadonlySet<string> = new Set()): Uint8Array {
    const w = new Writer()
    if (this.#pendingSize !== undefined) {
      w.integer(this.#pendingSize, 5, 0x20)
      this.#pendingSize = undefined
    }
    for (const [name, value] of headers) {
      let exact = 0
      let named = 0
      for (let i = 0; i < STATIC_COUNT && !exact; i++) {
        const [n, v] = STATIC_TABLE[i]!
        if (n === name) {
          if (v === value) exact = i + 1
          else if (!named) named = i + 1
        }
      }
      const dynamic = this.table.entries
      for (let i = 0; i < dynamic.length && !exact; i++) {
        const [n, v] = dynamic[i]!
        if (n === name) {
          if (v === value) exact = STATIC_COUNT + 1 + i
          else if (!named) named = STATIC_COUNT + 1 + i
        }
      }
      if (exact && !never.has(name)) {
        w.integer(exact, 7, 0x80)
        continue
      }
      if (never.has(name)) w.integer(named, 4, 0x10)
      else w.integer(named, 6, 0x40)
      if (!named) w.string(name, this.#useHuffman(name))
      w.string(value, this.#useHuffman(value))
      if (!never.has(name)) this.table.add(name, value)
    }
    return w.bytes()
  }

  #useHuffman(text: string): boolean {
    if (this.#huffman === 'always') return true
    if (this.#huffman === 'never') return false
    return huffmanEncodedLength(text) < text.length
  }
}
