import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fromHex } from '../../crypto/index.ts'
import {
  Attr,
  MAGIC_COOKIE,
  METHOD_BINDING,
  StunError,
  crc32,
  decodeErrorCode,
  decodeStunMessage,
  decodeXorMappedAddress,
  encodeStunMessage,
  encodeXorMappedAddress,
  messageType,
} from './message.ts'

const hex = (s: string) => fromHex(s.replace(/\s+/g, ''))

// RFC 5769 §2.2 and §2.3: the sample Binding success responses (IPv4 and IPv6), byte for byte.
const RFC5769_IPV4_RESPONSE = hex(`
  0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200008 0001a147 e112a643
  00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
  80280004 c07d4c96`)
const RFC5769_IPV6_RESPONSE = hex(`
  01010048 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
  00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
  80280004 c8fb0b4c`)
const TXID = hex('b7e7a701bc34d686fa87dfae')

describe('STUN message codec (RFC 8489)', () => {
  it('decodes the RFC 5769 IPv4 sample response: Binding success, FINGERPRINT verified, XOR-MAPPED-ADDRESS 192.0.2.1:32853', () => {
    const m = decodeStunMessage(RFC5769_IPV4_RESPONSE)
    expect(m).toMatchObject({ method: METHOD_BINDING, class: 'success', cookie: MAGIC_COOKIE, fingerprint: true })
    expect(m.transactionId).toEqual(TXID)
    expect(new TextDecoder().decode(m.attributes.find((a) => a.type === Attr.SOFTWARE)!.value)).toBe('test vector')
    const mapped = decodeXorMappedAddress(m.attributes.find((a) => a.type === Attr.XOR_MAPPED_ADDRESS)!.value, m.transactionId)
    expect(mapped).toEqual({ family: 4, address: new Uint8Array([192, 0, 2, 1]), port: 32853 })
  })

  it('decodes the RFC 5769 IPv6 sample response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853', () => {
    const m = decodeStunMessage(RFC5769_IPV6_RESPONSE)
    expect(m.fingerprint).toBe(true)
    const mapped = decodeXorMappedAddress(m.attributes.find((a) => a.type === Attr.XOR_MAPPED_ADDRESS)!.value, m.transactionId)
    expect(mapped).toEqual({ family: 6, address: hex('20010db8123456780011223344556677'), port: 32853 })
  })

  it('encodes XOR-MAPPED-ADDRESS exactly as the RFC 5769 samples carry it', () => {
    expect(encodeXorMappedAddress({ family: 4, address: new Uint8Array([192, 0, 2, 1]), port: 32853 }, TXID)).toEqual(hex('0001a147e112a643'))
    expect(encodeXorMappedAddress({ family: 6, address: hex('20010db8123456780011223344556677'), port: 32853 }, TXID)).toEqual(hex('0002a1470113a9faa5d3f179bc25f4b5bed2b9d9'))
  })

  it('re-encodes the IPv4 sample to the same bytes but for padding, with a FINGERPRINT that verifies', () => {
    const m = decodeStunMessage(RFC5769_IPV4_RESPONSE)
    const again = encodeStunMessage(m)
    // RFC 5769 pads SOFTWARE with a space; this encoder pads with zero (§14: padding is ignored).
    const expected = RFC5769_IPV4_RESPONSE.slice(0, -8)
    expected[20 + 4 + 11] = 0
    expect(again.subarray(0, -8)).toEqual(expected)
    expect(decodeStunMessage(again)).toEqual(m)
  })

  it('computes the CRC-32 zlib and Ethernet use', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926)
  })

  it('interleaves the class bits into the message type (Binding request 0x0001, success 0x0101, error 0x0111, indication 0x0011)', () => {
    expect(messageType(METHOD_BINDING, 'request')).toBe(0x0001)
    expect(messageType(METHOD_BINDING, 'success')).toBe(0x0101)
    expect(messageType(METHOD_BINDING, 'error')).toBe(0x0111)
    expect(messageType(METHOD_BINDING, 'indication')).toBe(0x0011)
    expect(messageType(0x003, 'request')).toBe(0x0003) // TURN Allocate
  })

  it('refuses a message whose FINGERPRINT is wrong by one bit', () => {
    const bad = RFC5769_IPV4_RESPONSE.slice()
    bad[bad.length - 1]! ^= 1
    expect(() => decodeStunMessage(bad)).toThrow(expect.objectContaining({ reason: 'bad-fingerprint' }))
  })

  it('refuses an attribute after FINGERPRINT', () => {
    const m = decodeStunMessage(RFC5769_IPV4_RESPONSE)
    const bytes = encodeStunMessage(m)
    const extra = new Uint8Array(bytes.length + 8)
    extra.set(bytes)
    extra.set([0x80, 0x22, 0x00, 0x04, 0x41, 0x41, 0x41, 0x41], bytes.length)
    new DataView(extra.buffer).setUint16(2, extra.length - 20)
    expect(() => decodeStunMessage(extra)).toThrow(expect.objectContaining({ reason: 'attribute-after-fingerprint' }))
  })

  it('names what is wrong with a short, non-STUN, mis-sized or truncated datagram', () => {
    const request = encodeStunMessage({ method: METHOD_BINDING, class: 'request', cookie: MAGIC_COOKIE, transactionId: TXID, attributes: [], fingerprint: false })
    expect(() => decodeStunMessage(request.subarray(0, 19))).toThrow(expect.objectContaining({ reason: 'too-short' }))
    const rtp = request.slice()
    rtp[0] = 0x80
    expect(() => decodeStunMessage(rtp)).toThrow(expect.objectContaining({ reason: 'not-stun' }))
    const longer = new Uint8Array(24)
    longer.set(request)
    expect(() => decodeStunMessage(longer)).toThrow(expect.objectContaining({ reason: 'bad-length' }))
    const truncated = new Uint8Array(24)
    truncated.set(request)
    truncated.set([0x80, 0x22, 0x00, 0x10], 20)
    truncated[3] = 4
    expect(() => decodeStunMessage(truncated)).toThrow(expect.objectContaining({ reason: 'truncated-attribute' }))
  })

  it('reads an ERROR-CODE value as class × 100 + number', () => {
    expect(decodeErrorCode(new Uint8Array([0, 0, 4, 20, 0x41]))).toEqual({ code: 420, reason: 'A' })
  })

  it('turns any garbage into a StunError or a message, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeStunMessage(bytes)
        } catch (error) {
          if (!(error instanceof StunError)) throw error
        }
      }),
      { numRuns: 5000 },
    )
  })

  it('survives garbage behind a valid header (the length field agrees, the attributes do not)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 120 }).map((b) => b.subarray(0, b.length & ~3)),
        fc.boolean(),
        (body, cookie) => {
          const bytes = new Uint8Array(20 + body.length)
          bytes.set([0x00, 0x01, body.length >> 8, body.length & 0xff])
          if (cookie) new DataView(bytes.buffer).setUint32(4, MAGIC_COOKIE)
          bytes.set(body, 20)
          try {
            const m = decodeStunMessage(bytes)
            for (const a of m.attributes) if (a.type === Attr.XOR_MAPPED_ADDRESS) decodeXorMappedAddress(a.value, m.transactionId)
          } catch (error) {
            if (!(error instanceof StunError)) throw error
          }
        },
      ),
      { numRuns: 5000 },
    )
  })
})
