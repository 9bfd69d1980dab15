// Burrow.start's options for a tailnet tab: onAuthURL must be a function and stays in the page
// (the join request crosses to the worker by structured clone, which cannot carry a function).
import { describe, expect, it } from 'vitest'
import { BurrowError } from './burrow-errors.ts'
import { parseStartOptions } from './burrow-options.ts'

const defaults = { storage: 'memory' as const }

describe('parseStartOptions for tailnets', () => {
  it('refuses an onAuthURL that is not a function with bad-options naming it', () => {
    const bad = () => parseStartOptions({ controlURL: 'http://control.test', control: 'tailnet', onAuthURL: 'https://x' as unknown as () => void }, defaults)
    expect(bad).toThrow(BurrowError)
    expect(bad).toThrow(/onAuthURL must be a function/)
    try {
      bad()
    } catch (error) {
      expect((error as BurrowError).code).toBe('bad-options')
    }
  })

  it('keeps onAuthURL out of the join request, which structured clone must carry to the worker', () => {
    const { join } = parseStartOptions({ controlURL: 'http://control.test', control: 'tailnet', controlKey: `mkey:${'ab'.repeat(32)}`, onAuthURL: () => {} }, defaults)
    expect(join).toMatchObject({ control: 'tailnet', controlKey: `mkey:${'ab'.repeat(32)}` })
    expect(Object.values(join).some((value) => typeof value === 'function')).toBe(false)
    expect(structuredClone(join)).toEqual(join)
  })

  it('a Headscale or Tailscale auth key picks the tailnet protocol; a pinned control key must be mkey: and 64 hex digits', () => {
    expect(parseStartOptions({ controlURL: 'http://control.test', authKey: 'hskey-auth-abc' }, defaults).join.control).toBe('tailnet')
    expect(parseStartOptions({ controlURL: 'http://control.test', authKey: 'bwauth-abc' }, defaults).join.control).toBe('burrow')
    expect(() => parseStartOptions({ controlURL: 'http://control.test', control: 'tailnet', controlKey: 'mkey:1234' }, defaults)).toThrow(/controlKey must be/)
  })
})
