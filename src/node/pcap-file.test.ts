import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readPcap } from '../wire/pcap.ts'
import { PcapFile, PcapFileError } from './pcap-file.ts'

const dir = mkdtempSync(join(tmpdir(), 'burrow-pcap-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('PcapFile', () => {
  it('writes every recorded packet by the time it is closed, readable as pcap', () => {
    const path = join(dir, 'a.pcap')
    const file = PcapFile.open(path)
    const packets = Array.from({ length: 500 }, (_, i) => new Uint8Array(1400).fill(i & 255))
    for (const p of packets) file.record(p)
    file.close()
    file.record(new Uint8Array(5))
    expect(readPcap(new Uint8Array(readFileSync(path))).map((r) => r.packet)).toEqual(packets)
    expect(file.packets).toBe(500)
  })

  it('is created readable by its owner only (captures hold overlay plaintext)', () => {
    const path = join(dir, 'b.pcap')
    PcapFile.open(path).close()
    expect(statSync(path).mode & 0o077).toBe(0)
  })

  it('names the file when it cannot be written', () => {
    expect(() => PcapFile.open(join(dir, 'missing', 'c.pcap'))).toThrow(PcapFileError)
    expect(() => PcapFile.open(join(dir, 'missing', 'c.pcap'))).toThrow(/cannot write the packet capture .*missing\/c\.pcap: ENOENT/)
  })
})
