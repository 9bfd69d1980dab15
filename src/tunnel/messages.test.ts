import { describe, expect, it } from 'vitest'
import {
  COOKIE_REPLY_LENGTH,
  decodeCookieReply,
  decodeInitiation,
  decodeResponse,
  encodeCookieReply,
  encodeInitiation,
  encodeResponse,
  INITIATION_LENGTH,
  MessageFormatError,
  messageType,
  RESPONSE_LENGTH,
} from './messages.ts'

const filled = (length: number, value: number) => new Uint8Array(length).fill(value)

describe('message codecs (whitepaper §5.4)', () => {
  it('lays out an initiation in 148 bytes: LE type with zero top bytes, LE sender, fields in order', () => {
    const bytes = encodeInitiation({ sender: 0x04030201, ephemeral: filled(32, 0xe0), encryptedStatic: filled(48, 0x5a), encryptedTimestamp: filled(28, 0x7c) })
    expect(bytes.length).toBe(INITIATION_LENGTH)
    expect([...bytes.subarray(0, 8)]).toEqual([1, 0, 0, 0, 1, 2, 3, 4])
    expect(bytes.subarray(8, 40).every((b) => b === 0xe0)).toBe(true)
    expect(bytes.subarray(40, 88).every((b) => b === 0x5a)).toBe(true)
    expect(bytes.subarray(88, 116).every((b) => b === 0x7c)).toBe(true)
    expect(bytes.subarray(116).every((b) => b === 0)).toBe(true) // MAC1 + MAC2 filled in later
    const decoded = decodeInitiation(bytes)
    expect(decoded.sender).toBe(0x04030201)
    expect(decoded.encryptedTimestamp).toEqual(filled(28, 0x7c))
  })

  it('lays out a response in 92 bytes', () => {
    const bytes = encodeResponse({ sender: 0xdeadbeef, receiver: 7, ephemeral: filled(32, 1), encryptedNothing: filled(16, 2) })
    expect(bytes.length).toBe(RESPONSE_LENGTH)
    expect([...bytes.subarray(0, 12)]).toEqual([2, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, 7, 0, 0, 0])
    expect(bytes.subarray(44, 60).every((b) => b === 2)).toBe(true)
    expect(decodeResponse(bytes)).toMatchObject({ sender: 0xdeadbeef, receiver: 7 })
  })

  it('lays out a cookie reply in 64 bytes', () => {
    const bytes = encodeCookieReply({ receiver: 0x11223344, nonce: filled(24, 9), encryptedCookie: filled(32, 8) })
    expect(bytes.length).toBe(COOKIE_REPLY_LENGTH)
    expect([...bytes.subarray(0, 8)]).toEqual([3, 0, 0, 0, 0x44, 0x33, 0x22, 0x11])
    expect(decodeCookieReply(bytes).nonce).toEqual(filled(24, 9))
  })

  it('reads the type as a u32: non-zero reserved bytes make an unknown type', () => {
    expect(messageType(new Uint8Array([4, 0, 0, 0]))).toBe(4)
    expect(messageType(new Uint8Array([4, 0, 1, 0]))).toBeUndefined()
    expect(messageType(new Uint8Array([5, 0, 0, 0]))).toBeUndefined()
    expect(messageType(new Uint8Array([1, 0, 0]))).toBeUndefined()
  })

  it('refuses wrong lengths and wrong types with a MessageFormatError naming the message', () => {
    expect(() => decodeInitiation(new Uint8Array(147).fill(0, 0).map((_, i) => (i === 0 ? 1 : 0)))).toThrow(/initiation must be 148 bytes, got 147/)
    const response = encodeResponse({ sender: 1, receiver: 2, ephemeral: filled(32, 0), encryptedNothing: filled(16, 0) })
    response[3] = 1
    expect(() => decodeResponse(response)).toThrow(MessageFormatError)
    expect(() => encodeInitiation({ sender: 1, ephemeral: filled(31, 0), encryptedStatic: filled(48, 0), encryptedTimestamp: filled(28, 0) })).toThrow(/ephemeral must be 32 bytes/)
  })
})
