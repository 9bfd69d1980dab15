// A packet capture written to a file as it happens (`--pcap FILE` on the CLI commands): the
// classic pcap format of src/wire/pcap.ts, buffered so a busy transfer costs one write per
// 256 KiB, and flushed on close so `tcpdump -r FILE` sees every packet.
import { closeSync, openSync, writeSync } from 'node:fs'
import { DEFAULT_SNAPLEN, pcapFileHeader, pcapRecord } from '../wire/pcap.ts'

const FLUSH_BYTES = 256 * 1024

export class PcapFileError extends Error {
  override readonly name = 'PcapFileError'
}

export class PcapFile {
  private fd: number | undefined
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  /** Packets written (or waiting in the buffer). */
  packets = 0

  private constructor(
    readonly path: string,
    fd: number,
    private readonly snaplen: number,
  ) {
    this.fd = fd
  }

  /** Creates (or truncates) `path` and writes the file header; throws PcapFileError naming the file. */
  static open(path: string, snaplen = DEFAULT_SNAPLEN): PcapFile {
    let fd: number
    try {
      fd = openSync(path, 'w', 0o600)
      writeSync(fd, pcapFileHeader(snaplen))
    } catch (error) {
      throw new PcapFileError(`cannot write the packet capture ${path}: ${(error as Error).message}`)
    }
    return new PcapFile(path, fd, snaplen)
  }

  /** Appends one packet stamped with the current wall-clock time; a no-op after close. */
  record(packet: Uint8Array): void {
    if (this.fd === undefined) return
    // performance.timeOrigin + now() gives microseconds where Date.now() has milliseconds.
    const record = pcapRecord(packet, performance.timeOrigin + performance.now(), this.snaplen)
    this.pending.push(record)
    this.pendingBytes += record.length
    this.packets++
    if (this.pendingBytes >= FLUSH_BYTES) this.flush()
  }

  flush(): void {
    if (this.fd === undefined || this.pending.length === 0) return
    const out = Buffer.concat(this.pending)
    this.pending = []
    this.pendingBytes = 0
    writeSync(this.fd, out)
  }

  /** Flushes and closes the file; later packets are ignored. */
  close(): void {
    if (this.fd === undefined) return
    try {
      this.flush()
    } finally {
      closeSync(this.fd)
      this.fd = undefined
    }
  }
}
