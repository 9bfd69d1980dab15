import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { fromBase64, toBase64 } from '../crypto/index.ts'
import { keygen } from './keygen.ts'
import { pubkey } from './pubkey.ts'
import { recordingIo } from './test-io.ts'

const wgPubkey = (privateKey: string) => execFileSync('wg', ['pubkey'], { input: privateKey }).toString()

describe('burrow keygen', () => {
  it('prints a clamped 32-byte base64 key that wg accepts', async () => {
    const io = recordingIo()
    expect(await keygen([], io)).toBe(0)
    expect(io.out).toMatch(/^[A-Za-z0-9+/]{43}=\n$/)
    const key = fromBase64(io.out)
    expect(key[0]! & 7).toBe(0)
    expect(key[31]! & 0xc0).toBe(0x40)
    expect(wgPubkey(io.out)).toMatch(/^[A-Za-z0-9+/]{43}=\n$/)
  })

  it('prints a different key each time', async () => {
    const a = recordingIo()
    const b = recordingIo()
    await keygen([], a)
    await keygen([], b)
    expect(a.out).not.toBe(b.out)
  })

  it('rejects arguments', async () => {
    const io = recordingIo()
    expect(await keygen(['extra'], io)).toBe(2)
    expect(io.err).toMatch(/usage/)
  })
})

describe('burrow pubkey', () => {
  it('matches wg pubkey for keys from wg genkey, burrow keygen and unclamped random bytes', async () => {
    const fromKeygen = recordingIo()
    await keygen([], fromKeygen)
    const unclamped = toBase64(new Uint8Array(32).map((_, i) => (i * 37 + 255) & 0xff))
    const keys = [execFileSync('wg', ['genkey']).toString(), fromKeygen.out, unclamped + '\n', unclamped]
    for (const privateKey of keys) {
      const io = recordingIo(privateKey)
      expect(await pubkey([], io)).toBe(0)
      expect(io.out).toBe(wgPubkey(privateKey))
    }
  })

  it('fails with a message for input that is not a key', async () => {
    const io = recordingIo('hello\n')
    expect(await pubkey([], io)).toBe(1)
    expect(io.out).toBe('')
    expect(io.err).toMatch(/stdin is not a private key/)
  })
})
