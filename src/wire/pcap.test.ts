import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAddress } from './address.ts'
import { buildIpTcp } from './ip-packet.ts'
import { LINKTYPE_RAW, PacketCapture, pcapFileHeader, pcapRecord, readPcap } from './pcap.ts'
import { SYN } from './tcp.ts'
import { hex } from './testing.ts'

const syn = buildIpTcp(
  { src: parseAddress('100.64.0.1'), dst: parseAddress('100.64.0.2') },
  { srcPort: 51000, dstPort: 80, seq: 1000, ack: 0, flags: SYN, window: 65535, urgent: 0, options: { mss: 1380 }, payload: new Uint8Array() },
)

describe('pcap files (libpcap classic format, LINKTYPE_RAW)', () => {
  it('writes the 24-byte file header byte for byte: magic a1b2c3d4 LE, v2.4, snaplen, link type 101', () => {
    expect(pcapFileHeader()).toEqual(hex('d4c3b2a1 0200 0400 00000000 00000000 ffff0000 65000000'))
    expect(LINKTYPE_RAW).toBe(101)
  })

  it('stamps a record with seconds and microseconds of wall-clock time and both lengths', () => {
    const record = pcapRecord(new Uint8Array([0x45, 1, 2]), 1_700_000_000_123.456)
    expect(record.subarray(0, 16)).toEqual(hex('00f15365 40e20100 03000000 03000000'))
    expect(record.subarray(16)).toEqual(new Uint8Array([0x45, 1, 2]))
  })

  it('cuts a packet longer than the snaplen but keeps its original length', () => {
    const record = pcapRecord(new Uint8Array(100).fill(7), 0, 40)
    const view = new DataView(record.buffer)
    expect(view.getUint32(8, true)).toBe(40)
    expect(view.getUint32(12, true)).toBe(100)
    expect(record.length).toBe(56)
  })

  it('reads back what the capture recorded, in order, with its timestamps', () => {
    let t = 1_000
    const capture = new PacketCapture({ wallClock: () => (t += 1.5) })
    capture.record(syn)
    capture.record(syn.subarray(0, 20))
    const file = new Uint8Array(capture.byteLength)
    let at = 0
    for (const part of capture.parts()) {
      file.set(part, at)
      at += part.length
    }
    const records = readPcap(file)
    expect(records.map((r) => r.packet)).toEqual([syn, syn.subarray(0, 20)])
    expect(records.map((r) => r.wallClockMs)).toEqual([1001.5, 1003])
    expect(capture.packets).toBe(2)
  })

  it('stops recording at maxBytes and counts what it left out', () => {
    const capture = new PacketCapture({ maxBytes: 24 + 16 + syn.length })
    capture.record(syn)
    capture.record(syn)
    capture.record(syn)
    expect(capture.packets).toBe(1)
    expect(capture.dropped).toBe(2)
    expect(capture.byteLength).toBe(24 + 16 + syn.length)
  })

  it('copies packets, so a buffer reused or transferred after recording does not change the capture', () => {
    const capture = new PacketCapture()
    const packet = syn.slice()
    capture.record(packet)
    packet.fill(0)
    expect(capture.parts()[1]!.subarray(16)).toEqual(syn)
  })

  it('rejects files it cannot read with a message naming the problem', () => {
    expect(() => readPcap(new Uint8Array(10))).toThrow(/shorter than its 24-byte header/)
    expect(() => readPcap(new Uint8Array(24))).toThrow(/bad magic/)
    const truncated = new Uint8Array([...pcapFileHeader(), ...pcapRecord(syn, 0)]).subarray(0, 24 + 16 + 5)
    expect(() => readPcap(truncated)).toThrow(/file ends first/)
  })

  it('round-trips any packets through record and read', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (packets) => {
        const capture = new PacketCapture({ wallClock: () => 0 })
        for (const p of packets) capture.record(p)
        const file = new Uint8Array(capture.parts().reduce((n, p) => n + p.length, 0))
        let at = 0
        for (const part of capture.parts()) {
          file.set(part, at)
          at += part.length
        }
        expect(readPcap(file).map((r) => r.packet)).toEqual(packets)
      }),
    )
  })
})
