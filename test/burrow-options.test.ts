import { describe, expect, it } from 'vitest'
import { BurrowError } from '../src/burrow-errors.ts'
import { parseStartOptions } from '../src/burrow-options.ts'

const base = { controlURL: 'http://127.0.0.1:8080', storage: 'memory' as const }
const defaults = { storage: 'memory' as const }

describe('Burrow.start tcp options', () => {
  it('passes maxReceiveWindow and maxSendBuffer on to the TCP/IP stack, and nothing when unset', () => {
    expect(parseStartOptions({ ...base, tcp: { maxReceiveWindow: 16 << 20, maxSendBuffer: 8 << 20 } }, defaults).tcp).toEqual({
      maxReceiveWindow: 16 << 20,
      maxSendBuffer: 8 << 20,
    })
    expect(parseStartOptions(base, defaults).tcp).toEqual({})
  })

  it('rejects a window cap that is not a whole number of bytes in 4096..2^30 with a bad-options BurrowError naming it', () => {
    for (const [tcp, name, got] of [
      [{ maxReceiveWindow: 1000 }, 'maxReceiveWindow', '1000'],
      [{ maxReceiveWindow: 1.5e6 + 0.5 }, 'maxReceiveWindow', '1500000.5'],
      [{ maxSendBuffer: 2 ** 31 }, 'maxSendBuffer', String(2 ** 31)],
    ] as const) {
      let error: unknown
      try {
        parseStartOptions({ ...base, tcp }, defaults)
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(BurrowError)
      expect(error).toMatchObject({ code: 'bad-options', message: `tcp.${name} must be a whole number of bytes from 4096 to 1073741824, got ${got}` })
    }
    expect(() => parseStartOptions({ ...base, tcp: 5 as never }, defaults)).toThrow(/tcp must be an object/)
  })
})
