import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadOrCreateRelayKey, RelayKeyError } from './relay-key.ts'
import { RelayMetrics } from './metrics.ts'
import { SendQueue } from './send-queue.ts'

describe('relay key file', () => {
  it('is created once with mode 0600 and then reused', () => {
    const root = mkdtempSync(join(tmpdir(), 'burrow-key-'))
    const dir = join(root, 'nested')
    const first = loadOrCreateRelayKey(dir)
    expect(first.created).toBe(true)
    expect(statSync(first.path).mode & 0o777).toBe(0o600)
    const second = loadOrCreateRelayKey(dir)
    expect(second.created).toBe(false)
    expect(second.privateKey).toEqual(first.privateKey)
    rmSync(root, { recursive: true, force: true })
  })

  it('refuses a file that does not hold a key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-key-'))
    writeFileSync(join(dir, 'relay.key'), 'hello\n', { mode: 0o600 })
    expect(() => loadOrCreateRelayKey(dir)).toThrow(RelayKeyError)
    rmSync(dir, { recursive: true, force: true })
  })
})

describe('SendQueue', () => {
  it('drops the oldest packets past the count bound and a packet that can never fit', () => {
    const q = new SendQueue(2, 100)
    q.pushControl(new Uint8Array([9]))
    expect(q.pushData(new Uint8Array(10).fill(1))).toEqual({ oldest: 0, newest: 0 })
    q.pushData(new Uint8Array(10).fill(2))
    expect(q.pushData(new Uint8Array(10).fill(3))).toEqual({ oldest: 1, newest: 0 })
    expect(q.pushData(new Uint8Array(101))).toEqual({ oldest: 0, newest: 1 })
    expect(q.pushData(new Uint8Array(90).fill(4))).toEqual({ oldest: 1, newest: 0 }) // 10 + 90 fits the 100-byte bound
    const out = q.take(1000)!
    expect([out[0], out[1], out[11]]).toEqual([9, 3, 4])
    expect(out.length).toBe(101)
    expect(q.isEmpty).toBe(true)
  })

  it('hands out control frames first and never more than the message size (unless one frame is larger)', () => {
    const q = new SendQueue(10, 10_000)
    q.pushData(new Uint8Array(600))
    q.pushData(new Uint8Array(600))
    q.pushControl(new Uint8Array(5).fill(9))
    const first = q.take(1000)!
    expect(first.length).toBe(605) // the control frame, then as much data as fits
    expect([...first.subarray(0, 6)]).toEqual([9, 9, 9, 9, 9, 0])
    expect(q.take(100)!.length).toBe(600) // one frame larger than the limit still goes
    expect(q.take(100)).toBeUndefined()
  })
})

describe('RelayMetrics', () => {
  it('renders Prometheus text with drops by reason', () => {
    const m = new RelayMetrics()
    m.clients = 3
    m.drop('queue_full_oldest', 2)
    m.closed('protocol_error')
    const text = m.render()
    expect(text).toContain('# TYPE burrow_relay_clients gauge\nburrow_relay_clients 3\n')
    expect(text).toContain('burrow_relay_packets_dropped_total{reason="queue_full_oldest"} 2\n')
    expect(text).toContain('burrow_relay_packets_dropped_total{reason="unknown_dest"} 0\n')
    expect(text).toContain('burrow_relay_connections_closed_total{kind="protocol_error"} 1\n')
  })
})
