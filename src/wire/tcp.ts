import { type IpAddress } from './address.ts'
import { transportChecksum as imported_transportChecksum } from './checksum.ts'
import { WireError } from './errors.ts'
import {
  checkAddressPair as imported_checkAddressPair,
  checkUint as imported_checkUint,
  readUint16 as imported_readUint16,
  readUint32 as imported_readUint32,
  writeUint16 as imported_writeUint16,
  writeUint32 as imported_writeUint32,
} from './fields.ts'
import { PROTO_TCP as imported_PROTO_TCP } from './ip.ts'

// Module-local copies of the imports the per-packet path calls: under Node's ESM→CJS interop
// (tsx, vitest) every use of an imported binding is a getter call, ~10 % of a 1420-byte profile.
const transportChecksum = imported_transportChecksum
const checkAddressPair = imported_checkAddressPair
const checkUint = imported_checkUint
const readUint16 = imported_readUint16
const readUint32 = imported_readUint32
const writeUint16 = imported_writeUint16
const writeUint32 = imported_writeUint32
const PROTO_TCP = imported_PROTO_TCP

export const FIN = 1
export const SYN = 2
export const RST = 4
export const PSH = 8
export const ACK = 16
export const URG = 32
export const ECE = 64
export const CWR = 128

const TCP_HEADER_LENGTH = 20
const MAX_OPTIONS_LENGTH = 40
/** RFC 7323 §2.3: a larger shift count is treated as 14. */
export const MAX_WINDOW_SCALE = 14

const OPT_EOL = 0
const OPT_NOP = 1
const OPT_MSS = 2
const OPT_WINDOW_SCALE = 3
const OPT_SACK_PERMITTED = 4
const OPT_SACK = 5
const OPT_TIMESTAMP = 8
const SACK_PERMITTED_ALONE = new Uint8Array([OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2])

export interface TcpOptions {
  mss?: number
  /** Shift count; values above 14 received on the wire are clamped to 14. */
  windowScale?: number
  sackPermitted?: boolean
  /** SACK blocks as [left edge, right edge) sequence numbers. */
  sack?: Array<[start: number, end: number]>
  timestamp?: { value: number; echo: number }
}

export interface TcpSegment {
  srcPort: number
  dstPort: number
  seq: number
  ack: number
  flags: number
  window: number
  urgent: number
  options: TcpOptions
  payload: Uint8Array
}

function checkOptionLength(expected: boolean, name: string, length: number): void {
  if (!expected) throw new WireError('bad-option', `TCP ${name} option has bad length ${length}`)
}

function parseOptions(segment: Uint8Array, end: number): TcpOptions {
  const options: TcpOptions = {}
  let offset = TCP_HEADER_LENGTH
  while (offset < end) {
    const kind = segment[offset]!
    if (kind === OPT_EOL) break
    if (kind === OPT_NOP) {
      offset++
      continue
    }
    if (offset + 1 >= end) throw new WireError('bad-option', `TCP option ${kind} has no length byte`)
    const length = segment[offset + 1]!
    if (length < 2 || offset + length > end) {
      throw new WireError('bad-option', `TCP option ${kind} has length ${length} with ${end - offset} bytes left`)
    }
    switch (kind) {
      case OPT_MSS:
        checkOptionLength(length === 4, 'MSS', length)
        options.mss = readUint16(segment, offset + 2)
        break
      case OPT_WINDOW_SCALE:
        checkOptionLength(length === 3, 'window scale', length)
        options.windowScale = Math.min(segment[offset + 2]!, MAX_WINDOW_SCALE)
        break
      case OPT_SACK_PERMITTED:
        checkOptionLength(length === 2, 'SACK-permitted', length)
        options.sackPermitted = true
        break
      case OPT_SACK: {
        checkOptionLength(length >= 10 && (length - 2) % 8 === 0, 'SACK', length)
        const blocks: Array<[number, number]> = []
        for (let at = offset + 2; at < offset + length; at += 8) {
          blocks.push([readUint32(segment, at), readUint32(segment, at + 4)])
        }
        options.sack = blocks
        break
      }
      case OPT_TIMESTAMP:
        checkOptionLength(length === 10, 'timestamp', length)
        options.timestamp = { value: readUint32(segment, offset + 2), echo: readUint32(segment, offset + 6) }
        break
      default:
        // Unknown options are skipped (RFC 9293 §3.1: they must be ignored).
        break
    }
    offset += length
  }
  return options
}

/**
 * Parses a TCP segment (the IP payload). Unknown options are skipped; malformed option lengths
 * throw `bad-option`. `payload` is a view into `segment`.
 */
export function parseTcp(segment: Uint8Array, src: IpAddress, dst: IpAddress, verifyChecksum = true): TcpSegment {
  checkAddressPair(src, dst)
  if (segment.length < TCP_HEADER_LENGTH) {
    throw new WireError('truncated', `TCP segment of ${segment.length} bytes is shorter than its 20-byte header`)
  }
  const headerLength = (segment[12]! >> 4) * 4
  if (headerLength < TCP_HEADER_LENGTH) throw new WireError('bad-length', `TCP data offset ${headerLength} is below 20`)
  if (headerLength > segment.length) {
    throw new WireError('truncated', `TCP header of ${headerLength} bytes exceeds the ${segment.length}-byte segment`)
  }
  if (verifyChecksum && transportChecksum(segment, src, dst, PROTO_TCP) !== 0) {
    throw new WireError('bad-checksum', 'TCP checksum mismatch')
  }
  return {
    srcPort: readUint16(segment, 0),
    dstPort: readUint16(segment, 2),
    seq: readUint32(segment, 4),
    ack: readUint32(segment, 8),
    flags: segment[13]!,
    window: readUint16(segment, 14),
    urgent: readUint16(segment, 18),
    options: parseOptions(segment, headerLength),
    payload: segment.subarray(headerLength),
  }
}

/** Byte length of the encoded options, before padding. */
function optionsLength(o: TcpOptions): number {
  let length = 0
  if (o.mss !== undefined) length += 4
  if (o.timestamp !== undefined)
    length += 12 // SACK-permitted or NOP NOP, then the 10-byte timestamp
  else if (o.sackPermitted) length += 4
  if (o.windowScale !== undefined) length += 4
  if (o.sack !== undefined && o.sack.length > 0) length += 4 + 8 * o.sack.length
  return length
}

function checkOptions(o: TcpOptions): void {
  if (o.mss !== undefined) checkUint('TCP MSS', o.mss, 16)
  if (o.windowScale !== undefined && (!Number.isInteger(o.windowScale) || o.windowScale < 0 || o.windowScale > MAX_WINDOW_SCALE)) {
    throw new WireError('bad-option', `TCP window scale ${o.windowScale} is outside 0..${MAX_WINDOW_SCALE}`)
  }
  if (o.timestamp !== undefined) {
    checkUint('TCP timestamp value', o.timestamp.value, 32)
    checkUint('TCP timestamp echo', o.timestamp.echo, 32)
  }
  for (const [start, end] of o.sack ?? []) {
    checkUint('TCP SACK block start', start, 32)
    checkUint('TCP SACK block end', end, 32)
  }
}

// Layout follows common practice (Linux): 32-bit aligned groups with NOP fill, so the option
// area is always a multiple of 4 and fixed fields such as timestamps sit on word boundaries.
function writeOptions(o: TcpOptions, out: Uint8Array, start: number): void {
  let at = start
  if (o.mss !== undefined) {
    out[at] = OPT_MSS
    out[at + 1] = 4
    writeUint16(out, at + 2, o.mss)
    at += 4
  }
  if (o.timestamp !== undefined) {
    if (o.sackPermitted) {
      out[at] = OPT_SACK_PERMITTED
      out[at + 1] = 2
    } else {
      out[at] = OPT_NOP
      out[at + 1] = OPT_NOP
    }
    out[at + 2] = OPT_TIMESTAMP
    out[at + 3] = 10
    writeUint32(out, at + 4, o.timestamp.value)
    writeUint32(out, at + 8, o.timestamp.echo)
    at += 12
  } else if (o.sackPermitted) {
    out.set(SACK_PERMITTED_ALONE, at)
    at += 4
  }
  if (o.windowScale !== undefined) {
    out[at] = OPT_NOP
    out[at + 1] = OPT_WINDOW_SCALE
    out[at + 2] = 3
    out[at + 3] = o.windowScale
    at += 4
  }
  if (o.sack !== undefined && o.sack.length > 0) {
    out[at] = OPT_NOP
    out[at + 1] = OPT_NOP
    out[at + 2] = OPT_SACK
    out[at + 3] = 2 + 8 * o.sack.length
    at += 4
    for (const [left, right] of o.sack) {
      writeUint32(out, at, left)
      writeUint32(out, at + 4, right)
      at += 8
    }
  }
}

/**
 * Validates `seg` for encoding and returns its header length (20 + padded options). Internal to
 * src/wire: shared by `buildTcp` and the single-buffer IP builders so both encode identically.
 */
export function tcpHeaderLength(seg: TcpSegment): number {
  checkUint('TCP source port', seg.srcPort, 16)
  checkUint('TCP destination port', seg.dstPort, 16)
  checkUint('TCP sequence number', seg.seq, 32)
  checkUint('TCP acknowledgment number', seg.ack, 32)
  checkUint('TCP flags', seg.flags, 8)
  checkUint('TCP window', seg.window, 16)
  checkUint('TCP urgent pointer', seg.urgent, 16)
  checkOptions(seg.options)
  const optionBytes = optionsLength(seg.options)
  if (optionBytes > MAX_OPTIONS_LENGTH) {
    throw new WireError('bad-option', `TCP options need ${optionBytes} bytes, more than the 40 available`)
  }
  const headerLength = TCP_HEADER_LENGTH + optionBytes
  const length = headerLength + seg.payload.length
  if (length > 0xffff) throw new WireError('bad-length', `TCP segment of ${length} bytes exceeds 65535`)
  return headerLength
}

/**
 * Writes the header, options and payload of an already validated `seg` at `out[at..]`, with the
 * checksum field zero (internal to src/wire). `out` must be zero-filled there.
 */
export function writeTcpSegment(seg: TcpSegment, headerLength: number, out: Uint8Array, at: number): void {
  writeUint16(out, at, seg.srcPort)
  writeUint16(out, at + 2, seg.dstPort)
  writeUint32(out, at + 4, seg.seq)
  writeUint32(out, at + 8, seg.ack)
  out[at + 12] = (headerLength / 4) << 4
  out[at + 13] = seg.flags
  writeUint16(out, at + 14, seg.window)
  writeUint16(out, at + 18, seg.urgent)
  writeOptions(seg.options, out, at + TCP_HEADER_LENGTH)
  out.set(seg.payload, at + headerLength)
}

/** Builds a TCP header + options + payload with the checksum filled in (the IP header is not included). */
export function buildTcp(seg: TcpSegment, src: IpAddress, dst: IpAddress): Uint8Array {
  checkAddressPair(src, dst)
  const headerLength = tcpHeaderLength(seg)
  const segment = new Uint8Array(headerLength + seg.payload.length)
  writeTcpSegment(seg, headerLength, segment, 0)
  writeUint16(segment, 16, transportChecksum(segment, src, dst, PROTO_TCP))
  return segment
}
