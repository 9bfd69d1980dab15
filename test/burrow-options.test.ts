// parseStartOptions needs no processes; it sits here because src/ has no layer row for a test of the api entry files.
import { describe, expect, it } from 'vitest'
import { BurrowError } from '../src/burrow-errors.ts'
import { parseStartOptions } from '../src/burrow-options.ts'

const defaults = { storage: 'memory' as const }

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
