import { describe, expect, it } from 'vitest'
import type { DerpDialer, DerpStreamHandlers } from '../underlay/derp/dialer.ts'
import { EarlyDials } from './early-dial.ts'

/** A dialer whose far end is the test: it records dials and closes, and keeps each stream's handlers. */
function scripted() {
  const dials: Array<{ url: string; handlers: DerpStreamHandlers; closed: boolean }> = []
  const dial: DerpDialer = (url, handlers) => {
    const entry = { url, handlers, closed: false }
    dials.push(entry)
    return { send() {}, bufferedAmount: 0, close: () => void (entry.closed = true) }
  }
  return { dial, dials }
}

describe('EarlyDials', () => {
  it('hands the stream dialed early to the first dialer call for its URL, replaying open and data in order, then passes later events straight on', async () => {
    const { dial, dials } = scripted()
    const early = new EarlyDials(dial)
    early.open('ws://relay.test/derp')
    expect(dials.map((d) => d.url)).toEqual(['ws://relay.test/derp'])
    dials[0]!.handlers.onOpen()
    dials[0]!.handlers.onData(new Uint8Array([1]))
    const seen: string[] = []
    const stream = early.dialer('ws://relay.test/derp', {
      onOpen: () => seen.push('open'),
      onData: (bytes) => seen.push(`data ${bytes[0]}`),
      onClose: (reason) => seen.push(`close ${reason}`),
    })
    // Nothing is replayed before the dialer returned (the caller keeps the stream first).
    expect(seen).toEqual([])
    dials[0]!.handlers.onData(new Uint8Array([2]))
    await Promise.resolve()
    expect(seen).toEqual(['open', 'data 1', 'data 2'])
    dials[0]!.handlers.onClose('gone')
    expect(seen).toEqual(['open', 'data 1', 'data 2', 'close gone'])
    stream.close()
    expect(dials[0]!.closed).toBe(true)
    // Taken once: a reconnect dials anew.
    early.dialer('ws://relay.test/derp', { onOpen() {}, onData() {}, onClose() {} })
    expect(dials).toHaveLength(2)
  })

  it('dials a URL it has no early stream for, and closes the early streams nobody took', () => {
    const { dial, dials } = scripted()
    const early = new EarlyDials(dial)
    early.open('ws://a.test/derp')
    early.open('ws://a.test/derp')
    expect(dials).toHaveLength(1)
    early.dialer('ws://b.test/derp', { onOpen() {}, onData() {}, onClose() {} })
    expect(dials.map((d) => d.url)).toEqual(['ws://a.test/derp', 'ws://b.test/derp'])
    early.closeUnused()
    expect(dials.map((d) => d.closed)).toEqual([true, false])
    early.dialer('ws://a.test/derp', { onOpen() {}, onData() {}, onClose() {} })
    expect(dials).toHaveLength(3)
  })
})
