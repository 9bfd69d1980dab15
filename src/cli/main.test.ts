import { describe, expect, it } from 'vitest'
import { main } from './main.ts'
import { recordingIo } from './test-io.ts'

describe('burrow main', () => {
  it('prints usage for help, no command and --help', async () => {
    for (const argv of [['help'], [], ['--help']]) {
      const io = recordingIo()
      expect(await main(argv, io)).toBe(0)
      expect(io.out).toMatch(/usage: burrow <command>/)
      expect(io.out).toMatch(/keygen/)
      expect(io.out).toMatch(/ping --config FILE/)
    }
  })

  it('rejects an unknown command with usage and exit 2', async () => {
    const io = recordingIo()
    expect(await main(['fly'], io)).toBe(2)
    expect(io.err).toMatch(/unknown command "fly"/)
    const proto = recordingIo()
    expect(await main(['toString'], proto)).toBe(2)
  })

  it('start refuses unknown options with usage and exit 2 (running it is covered by e2e/demo.test.ts)', async () => {
    const io = recordingIo()
    expect(await main(['start', '--bogus', '1'], io)).toBe(2)
    expect(io.err).toMatch(/unknown option --bogus/)
  })

  it('dispatches to keygen', async () => {
    const io = recordingIo()
    expect(await main(['keygen'], io)).toBe(0)
    expect(io.out).toMatch(/^[A-Za-z0-9+/]{43}=\n$/)
  })
})
