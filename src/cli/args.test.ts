import { describe, expect, it } from 'vitest'
import { numberFlag, parseArgs, UsageError } from './args.ts'

describe('parseArgs', () => {
  it('reads --flag value, --flag=value and positionals', () => {
    const parsed = parseArgs(['--config', 'a.conf', 'x', '--count=3', '--', '--not-a-flag'], ['config', 'count'])
    expect(Object.fromEntries(parsed.flags)).toEqual({ config: 'a.conf', count: '3' })
    expect(parsed.positionals).toEqual(['x', '--not-a-flag'])
  })

  it('rejects unknown, valueless and repeated flags', () => {
    expect(() => parseArgs(['--nope', '1'], ['config'])).toThrow(/unknown option --nope/)
    expect(() => parseArgs(['--config'], ['config'])).toThrow(/--config needs a value/)
    expect(() => parseArgs(['--config', 'a', '--config', 'b'], ['config'])).toThrow(UsageError)
  })

  it('checks numeric flags', () => {
    const parsed = parseArgs(['--count', '2.5', '--interval', '0.5'], ['count', 'interval'])
    expect(() => numberFlag(parsed, 'count', 4, 1, 10, true)).toThrow(/--count must be a whole number from 1 to 10, got "2.5"/)
    expect(numberFlag(parsed, 'interval', 1, 0.01, 60, false)).toBe(0.5)
    expect(numberFlag(parsed, 'timeout', 5, 0, 60, false)).toBe(5)
  })
})
