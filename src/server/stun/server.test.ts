import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  Attr,
  MAGIC_COOKIE,
  METHOD_BINDING,
  decodeErrorCode,
  decodeMappedAddress,
  decodeStunMessage,
  decodeXorMappedAddress,
  encodeStunMessage,
  type StunAttribute,
} from './message.ts'
import { StunResponder } from './server.ts'

const TXID = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
const FROM = { family: 4 as const, address: new Uint8Array([198, 51, 100, 7]), port: 40001 }

function request(options: { cookie?: number; attributes?: StunAttribute[]; fingerprint?: boolean; method?: number; cls?: 'request' | 'indication' } = {}) {
  return encodeStunMessage({
    method: options.method ?? METHOD_BINDING,
    class: options.cls ?? 'request',
    cookie: options.cookie ?? MAGIC_COOKIE,
    transactionId: TXID,
    attributes: options.attributes ?? [],
    fingerprint: options.fingerprint ?? true,
  })
}

describe('StunResponder', () => {
  it('answers a Binding request with the sender’s address in XOR-MAPPED-ADDRESS, same transaction id, with FINGERPRINT', () => {
    const responder = new StunResponder()
    const reply = decodeStunMessage(responder.handle(request(), FROM)!)
    expect(reply).toMatchObject({ method: METHOD_BINDING, class: 'success', cookie: MAGIC_COOKIE, fingerprint: true })
    expect(reply.transactionId).toEqual(TXID)
    expect(decodeXorMappedAddress(reply.attributes.find((a) => a.type === Attr.XOR_MAPPED_ADDRESS)!.value, TXID)).toEqual(FROM)
    expect(responder.counters.bindingSuccesses).toBe(1)
  })

  it('answers an IPv6 sender with its IPv6 address', () => {
    const from = { family: 6 as const, address: new Uint8Array(16).fill(0xfd, 0, 1).fill(7, 15), port: 3 }
    const reply = decodeStunMessage(new StunResponder().handle(request({ fingerprint: false }), from)!)
    expect(decodeXorMappedAddress(reply.attributes.find((a) => a.type === Attr.XOR_MAPPED_ADDRESS)!.value, TXID)).toEqual(from)
  })

  it('answers an RFC 3489 client (no magic cookie) with MAPPED-ADDRESS and its own cookie field echoed (RFC 8489 §12)', () => {
    const responder = new StunResponder()
    const reply = decodeStunMessage(
      responder.handle(request({ cookie: 0xdeadbeef, fingerprint: false, attributes: [{ type: Attr.CHANGE_REQUEST, value: new Uint8Array(4) }] }), FROM)!,
    )
    expect(reply.cookie).toBe(0xdeadbeef)
    expect(reply.fingerprint).toBe(false)
    expect(reply.attributes.some((a) => a.type === Attr.XOR_MAPPED_ADDRESS)).toBe(false)
    expect(decodeMappedAddress(reply.attributes.find((a) => a.type === Attr.MAPPED_ADDRESS)!.value)).toEqual(FROM)
    expect(responder.counters.classicClients).toBe(1)
  })

  it('answers unknown comprehension-required attributes with 420 and lists them in UNKNOWN-ATTRIBUTES; optional unknown ones are ignored', () => {
    const responder = new StunResponder()
    const bytes = request({
      attributes: [
        { type: 0x7777, value: new Uint8Array(1) },
        { type: 0xc001, value: new Uint8Array(0) },
        { type: Attr.CHANGE_REQUEST, value: new Uint8Array([0, 0, 0, 4]) },
      ],
    })
    const reply = decodeStunMessage(responder.handle(bytes, FROM)!)
    expect(reply.class).toBe('error')
    expect(decodeErrorCode(reply.attributes.find((a) => a.type === Attr.ERROR_CODE)!.value).code).toBe(420)
    expect([...reply.attributes.find((a) => a.type === Attr.UNKNOWN_ATTRIBUTES)!.value]).toEqual([0x77, 0x77, 0x00, 0x03])
    expect(responder.counters.errorResponses).toBe(1)

    const optionalOnly = decodeStunMessage(responder.handle(request({ attributes: [{ type: 0xc001, value: new Uint8Array(3) }] }), FROM)!)
    expect(optionalOnly.class).toBe('success')
  })

  it('stays silent for indications, responses and other methods, and counts each', () => {
    const responder = new StunResponder()
    expect(responder.handle(request({ cls: 'indication' }), FROM)).toBeUndefined()
    expect(responder.handle(responder.handle(request(), FROM)!, FROM)).toBeUndefined()
    expect(responder.handle(request({ method: 0x003 }), FROM)).toBeUndefined()
    expect(responder.counters.dropped.get('not-a-request')).toBe(2)
    expect(responder.counters.dropped.get('unsupported-method')).toBe(1)
  })

  it('ignores a request with a wrong FINGERPRINT and counts it', () => {
    const responder = new StunResponder()
    const bytes = request()
    bytes[bytes.length - 2]! ^= 0x40
    expect(responder.handle(bytes, FROM)).toBeUndefined()
    expect(responder.counters.dropped.get('bad-fingerprint')).toBe(1)
    expect(responder.counters.render()).toContain('burrow_relay_stun_dropped_total{reason="bad-fingerprint"} 1')
  })

  it('never throws on garbage and replies only to what decodes as a Binding request', () => {
    const responder = new StunResponder()
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const reply = responder.handle(bytes, FROM)
        if (reply) expect(decodeStunMessage(bytes)).toMatchObject({ class: 'request', method: METHOD_BINDING })
      }),
      { numRuns: 3000 },
    )
  })
})
