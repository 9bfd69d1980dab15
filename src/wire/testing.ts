// Test support for the wire codecs: hex literals, error assertions and fast-check arbitraries.
// Imported only by tests (here and in other modules' tests); never by production code.
import fc from 'fast-check'
import { expect } from 'vitest'
import { WireError, type WireErrorCode } from './errors.ts'

/** Bytes from hex text; spaces and newlines are ignored so captures can be pasted as dumped. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '')
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex literal: ${text}`)
  const out = new Uint8Array(clean.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16)
  return out
}

export function toHexString(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Asserts that `run` throws a WireError with `code`. */
export function expectWireError(run: () => unknown, code: WireErrorCode): void {
  let thrown: unknown
  try {
    run()
  } catch (error) {
    thrown = error
  }
  expect(thrown, `expected WireError(${code})`).toBeInstanceOf(WireError)
  expect((thrown as WireError).code).toBe(code)
}

/** Runs `parse`; anything thrown that is not a WireError fails the property. */
export function throwsOnlyWireError(parse: () => unknown): boolean {
  try {
    parse()
  } catch (error) {
    if (!(error instanceof WireError)) throw error
  }
  return true
}

export const arbIpv4 = fc.uint8Array({ minLength: 4, maxLength: 4 })

/** IPv6 addresses biased towards zero groups, so "::" compression paths are exercised. */
export const arbIpv6 = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }).map((groups) => {
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8
    out[2 * i + 1] = g & 0xff
  })
  return out
})

export const arbAddress = fc.oneof(arbIpv4, arbIpv6)

/** A source/destination pair of one family, with its version. */
export const arbAddressPair = fc.oneof(
  fc.record({ version: fc.constant(4 as const), src: arbIpv4, dst: arbIpv4 }),
  fc.record({ version: fc.constant(6 as const), src: arbIpv6, dst: arbIpv6 }),
)
