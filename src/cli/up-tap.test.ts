import { describe, expect, it } from 'vitest'
import { parseAddress } from '../wire/address.ts'
import { buildIpUdp } from '../wire/ip-packet.ts'
import type { LogLevel } from '../server/log.ts'
import { tapFor } from './up.ts'
import { parseUpArgs } from './up-args.ts'

const packet = buildIpUdp({ src: parseAddress('100.64.0.1'), dst: parseAddress('100.64.0.2') }, { srcPort: 1000, dstPort: 53, payload: new Uint8Array(4) })

describe('burrow up packet tap', () => {
  it('at --log-level debug logs one summary line per overlay packet, with its direction', () => {
    const lines: Array<[LogLevel, string, unknown]> = []
    const tap = tapFor(parseUpArgs(['--control', 'http://x', '--log-level', 'debug']), undefined, (level, msg, fields) => lines.push([level, msg, fields]))
    tap!(packet, 'in')
    expect(lines).toEqual([['debug', 'packet', { direction: 'in', summary: 'IP 100.64.0.1.1000 > 100.64.0.2.53: UDP len 4' }]])
  })

  it('costs nothing per packet without --pcap or debug logging', () => {
    expect(tapFor(parseUpArgs(['--control', 'http://x']), undefined, () => {})).toBeUndefined()
  })
})
