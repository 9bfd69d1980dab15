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

describe('parseStartOptions: debug', () => {
  it('a debug callback is handed back to the page and the join asks the worker for debug lines', () => {
    const debug = (): void => {}
    const parsed = parseStartOptions({ controlURL: 'http://control.test', debug }, defaults)
    expect(parsed.debug).toBe(debug)
    expect(parsed.join.debug).toBe(true)
  })

  it('without one the worker posts no debug lines', () => {
    const parsed = parseStartOptions({ controlURL: 'http://control.test' }, defaults)
    expect(parsed.debug).toBeUndefined()
    expect(parsed.join.debug).toBeUndefined()
  })

  it('a debug that is not a function is a bad-options BurrowError naming it', () => {
    const bad = (): unknown => parseStartOptions({ controlURL: 'http://control.test', debug: true as unknown as () => void }, defaults)
    expect(bad).toThrow(BurrowError)
    expect(bad).toThrow(/debug must be a function/)
    try {
      bad()
    } catch (error) {
      expect((error as BurrowError).code).toBe('bad-options')
    }
  })
})
