// Classic libpcap capture files ("pcap", not pcapng) holding raw IP packets, the format
// `tcpdump -r` and Wireshark read. Sans-IO: the writer returns the bytes to append, and the
// caller decides where they go (a file in Node, a Blob in a browser).
//
// Layout (https://www.tcpdump.org/manpages/pcap-savefile.5.txt, and IETF draft-ietf-opsawg-pcap):
//   file header, 24 bytes: magic 0xa1b2c3d4 (microsecond timestamps), version 2.4, thiszone 0,
//     sigfigs 0, snaplen, link type
//   per packet, 16 bytes: ts_sec, ts_usec, captured length, original length; then the bytes.
// All fields are written little-endian; readers tell the byte order from the magic.

/** LINKTYPE_RAW (https://www.tcpdump.org/linktypes.html): each packet begins with an IPv4 or IPv6 header. */
export const LINKTYPE_RAW = 101
const PCAP_MAGIC_MICROSECONDS = 0xa1b2c3d4
const FILE_HEADER_LENGTH = 24
const RECORD_HEADER_LENGTH = 16
/** The largest packet Burrow carries (DERP's 64 KiB limit); longer ones are cut to this. */
export const DEFAULT_SNAPLEN = 65535

/** The 24-byte pcap file header for raw IP packets. */
export function pcapFileHeader(snaplen = DEFAULT_SNAPLEN): Uint8Array {
  const header = new Uint8Array(FILE_HEADER_LENGTH)
  const view = new DataView(header.buffer)
  view.setUint32(0, PCAP_MAGIC_MICROSECONDS, true)
  view.setUint16(4, 2, true)
  view.setUint16(6, 4, true)
  // thiszone (8) and sigfigs (12) stay 0: timestamps are UTC.
  view.setUint32(16, snaplen, true)
  view.setUint32(20, LINKTYPE_RAW, true)
  return header
}

/**
 * One packet record (header and bytes, cut to `snaplen`), stamped `wallClockMs` milliseconds
 * since the Unix epoch (capture files carry wall-clock time, unlike the dataplane's monotonic clock).
 */
export function pcapRecord(packet: Uint8Array, wallClockMs: number, snaplen = DEFAULT_SNAPLEN): Uint8Array {
  const captured = Math.min(packet.length, snaplen)
  const record = new Uint8Array(RECORD_HEADER_LENGTH + captured)
  const view = new DataView(record.buffer)
  const micros = Math.max(0, Math.round(wallClockMs * 1000))
  view.setUint32(0, Math.floor(micros / 1_000_000), true)
  view.setUint32(4, micros % 1_000_000, true)
  view.setUint32(8, captured, true)
  view.setUint32(12, packet.length, true)
  record.set(packet.subarray(0, captured), RECORD_HEADER_LENGTH)
  return record
}

export interface PcapRecordView {
  wallClockMs: number
  /** The captured bytes (a view into the file). */
  packet: Uint8Array
  originalLength: number
}

/**
 * Reads back a capture this module wrote (little-endian, microseconds, LINKTYPE_RAW): for tests
 * and tools. Throws an Error naming the problem on anything else or on a truncated file.
 */
export function readPcap(file: Uint8Array): PcapRecordView[] {
  if (file.length < FILE_HEADER_LENGTH) throw new Error(`pcap file of ${file.length} bytes is shorter than its 24-byte header`)
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  if (view.getUint32(0, true) !== PCAP_MAGIC_MICROSECONDS) throw new Error('not a little-endian microsecond pcap file (bad magic)')
  const linkType = view.getUint32(20, true)
  if (linkType !== LINKTYPE_RAW) throw new Error(`pcap link type ${linkType} is not LINKTYPE_RAW (${LINKTYPE_RAW})`)
  const records: PcapRecordView[] = []
  let at = FILE_HEADER_LENGTH
  while (at < file.length) {
    if (file.length - at < RECORD_HEADER_LENGTH) throw new Error(`pcap record header at byte ${at} is truncated`)
    const seconds = view.getUint32(at, true)
    const micros = view.getUint32(at + 4, true)
    const captured = view.getUint32(at + 8, true)
    const originalLength = view.getUint32(at + 12, true)
    const start = at + RECORD_HEADER_LENGTH
    if (file.length - start < captured) throw new Error(`pcap record at byte ${at} claims ${captured} bytes but the file ends first`)
    records.push({ wallClockMs: seconds * 1000 + micros / 1000, packet: file.subarray(start, start + captured), originalLength })
    at = start + captured
  }
  return records
}

export interface PacketCaptureOptions {
  /** Stop recording once this many bytes of capture are held (0 = no limit). Default 64 MiB. */
  maxBytes?: number
  snaplen?: number
  /** Wall-clock milliseconds since the epoch. Default `Date.now`. */
  wallClock?: () => number
}

/** Default cap on an in-memory capture, so a forgotten capture cannot eat a tab's memory. */
export const DEFAULT_CAPTURE_MAX_BYTES = 64 * 1024 * 1024

/**
 * An in-memory capture: the file header first, then one record per packet, until `maxBytes` is
 * reached (later packets are counted in `dropped`, never silently lost from the count).
 */
export class PacketCapture {
  private readonly chunks: Uint8Array[] = []
  private held: number
  private readonly maxBytes: number
  private readonly snaplen: number
  private readonly wallClock: () => number
  /** Packets recorded. */
  packets = 0
  /** Packets not recorded because the capture reached `maxBytes`. */
  dropped = 0

  constructor(options: PacketCaptureOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_CAPTURE_MAX_BYTES
    this.snaplen = options.snaplen ?? DEFAULT_SNAPLEN
    this.wallClock = options.wallClock ?? Date.now
    const header = pcapFileHeader(this.snaplen)
    this.chunks.push(header)
    this.held = header.length
  }

  /** Records one packet (copied). */
  record(packet: Uint8Array): void {
    const size = RECORD_HEADER_LENGTH + Math.min(packet.length, this.snaplen)
    if (this.maxBytes > 0 && this.held + size > this.maxBytes) {
      this.dropped++
      return
    }
    this.chunks.push(pcapRecord(packet, this.wallClock(), this.snaplen))
    this.held += size
    this.packets++
  }

  /** Bytes of capture held, header included. */
  get byteLength(): number {
    return this.held
  }

  /** The capture so far, as the parts of one pcap file (concatenate them, or pass them to `new Blob`). */
  parts(): readonly Uint8Array[] {
    return this.chunks
  }
}
