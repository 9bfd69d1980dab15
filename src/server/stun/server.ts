// The relay's STUN Binding responder (RFC 8489 §6.3 and §12), sans-IO: one datagram and the
// address it came from in, at most one datagram to send back out. A client behind a NAT learns
// its server-reflexive address from the reply (that is all ICE needs from a STUN server).
// Anything that is not a well-formed Binding request is dropped and counted by reason, so a
// scanner or a broken client costs a decode and nothing else.
import {
  Attr,
  MAGIC_COOKIE,
  METHOD_BINDING,
  StunError,
  type StunErrorReason,
  type StunMessage,
  type TransportAddress,
  decodeStunMessage,
  encodeErrorCode,
  encodeMappedAddress,
  encodeStunMessage,
  encodeUnknownAttributes,
  encodeXorMappedAddress,
  isComprehensionRequired,
} from './message.ts'

/** Why a datagram got no reply: a decode failure (StunErrorReason) or a valid message we do not answer. */
export type StunDropReason = StunErrorReason | 'not-a-request' | 'unsupported-method'

/** Comprehension-required attributes this responder knows (RFC 8489 §18.3). It authenticates nobody,
 * so the credential attributes are understood and not checked: Binding for server-reflexive
 * discovery needs no credentials (§9, the long-term mechanism is a usage's choice, not STUN's). */
const UNDERSTOOD = new Set<number>([
  Attr.MAPPED_ADDRESS,
  Attr.USERNAME,
  Attr.MESSAGE_INTEGRITY,
  Attr.ERROR_CODE,
  Attr.UNKNOWN_ATTRIBUTES,
  Attr.REALM,
  Attr.NONCE,
  Attr.MESSAGE_INTEGRITY_SHA256,
  Attr.PASSWORD_ALGORITHM,
  Attr.USERHASH,
  Attr.XOR_MAPPED_ADDRESS,
])

export class StunCounters {
  /** Binding requests answered with a success response. */
  bindingSuccesses = 0
  /** ... of them from RFC 3489 clients (no magic cookie), answered with MAPPED-ADDRESS. */
  classicClients = 0
  /** Requests answered with an error response (420 Unknown Attribute). */
  errorResponses = 0
  readonly dropped = new Map<StunDropReason, number>()

  drop(reason: StunDropReason): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1)
  }

  /** Prometheus text exposition lines, appended to the relay's /metrics. */
  render(): string {
    const reasons: StunDropReason[] = [
      'too-short',
      'not-stun',
      'bad-length',
      'truncated-attribute',
      'bad-fingerprint',
      'attribute-after-fingerprint',
      'bad-address',
      'not-a-request',
      'unsupported-method',
    ]
    return [
      '# HELP burrow_relay_stun_binding_responses_total STUN Binding requests answered with the mapped address.',
      '# TYPE burrow_relay_stun_binding_responses_total counter',
      `burrow_relay_stun_binding_responses_total ${this.bindingSuccesses}`,
      '# HELP burrow_relay_stun_classic_clients_total Binding requests without the magic cookie (RFC 3489 clients).',
      '# TYPE burrow_relay_stun_classic_clients_total counter',
      `burrow_relay_stun_classic_clients_total ${this.classicClients}`,
      '# HELP burrow_relay_stun_error_responses_total STUN requests answered with an error response.',
      '# TYPE burrow_relay_stun_error_responses_total counter',
      `burrow_relay_stun_error_responses_total ${this.errorResponses}`,
      '# HELP burrow_relay_stun_dropped_total Datagrams on the STUN port ignored, by reason.',
      '# TYPE burrow_relay_stun_dropped_total counter',
      ...reasons.map((r) => `burrow_relay_stun_dropped_total{reason="${r}"} ${this.dropped.get(r) ?? 0}`),
    ].join('\n')
  }
}

export interface StunResponderOptions {
  /** SOFTWARE attribute of responses (RFC 8489 §14.14); omitted when empty. */
  software?: string
  counters?: StunCounters
}

export class StunResponder {
  readonly counters: StunCounters
  private readonly software: Uint8Array | undefined

  constructor(options: StunResponderOptions = {}) {
    this.counters = options.counters ?? new StunCounters()
    const software = options.software ?? 'burrow relay'
    this.software = software ? new TextEncoder().encode(software) : undefined
  }

  /** The reply to send back to `from` (from the address the request arrived at), or undefined to stay silent. */
  handle(datagram: Uint8Array, from: TransportAddress): Uint8Array | undefined {
    let request: StunMessage
    try {
      request = decodeStunMessage(datagram)
    } catch (error) {
      if (!(error instanceof StunError)) throw error
      this.counters.drop(error.reason)
      return undefined
    }
    // Indications get no reply by definition (§6.3.2; Binding indications are keepalives), and
    // responses here answer nothing we sent.
    if (request.class !== 'request') {
      this.counters.drop('not-a-request')
      return undefined
    }
    // Binding is the only method of this usage; an Allocate or Refresh means a TURN client aimed at
    // the wrong port. Staying silent adds nothing for a reflector to amplify.
    if (request.method !== METHOD_BINDING) {
      this.counters.drop('unsupported-method')
      return undefined
    }
    // RFC 8489 §12: no magic cookie means an RFC 3489 client; copy its cookie field and answer
    // with MAPPED-ADDRESS, which it understands (it predates XOR-MAPPED-ADDRESS and FINGERPRINT).
    const classic = request.cookie !== MAGIC_COOKIE
    const unknown = this.unknownRequired(request)
    if (unknown.length > 0) {
      // §6.3.1.1: unknown comprehension-required attributes in a request get 420 with UNKNOWN-ATTRIBUTES.
      this.counters.errorResponses++
      return encodeStunMessage({
        method: METHOD_BINDING,
        class: 'error',
        cookie: request.cookie,
        transactionId: request.transactionId,
        attributes: [
          { type: Attr.ERROR_CODE, value: encodeErrorCode(420, 'Unknown Attribute') },
          // RFC 3489 §11.2.9 wanted an even count (repeat one); RFC 8489 pads instead.
          { type: Attr.UNKNOWN_ATTRIBUTES, value: encodeUnknownAttributes(classic && unknown.length % 2 === 1 ? [...unknown, unknown.at(-1)!] : unknown) },
          ...this.softwareAttr(),
        ],
        fingerprint: !classic,
      })
    }
    this.counters.bindingSuccesses++
    if (classic) this.counters.classicClients++
    const mapped = classic
      ? { type: Attr.MAPPED_ADDRESS, value: encodeMappedAddress(from) }
      : { type: Attr.XOR_MAPPED_ADDRESS, value: encodeXorMappedAddress(from, request.transactionId) }
    return encodeStunMessage({
      method: METHOD_BINDING,
      class: 'success',
      cookie: request.cookie,
      transactionId: request.transactionId,
      attributes: [mapped, ...this.softwareAttr()],
      // FINGERPRINT is optional (§14.7); ICE agents demultiplexing STUN from media check for it,
      // and RFC 3489 clients have never heard of it.
      fingerprint: !classic,
    })
  }

  private unknownRequired(request: StunMessage): number[] {
    const unknown: number[] = []
    for (const a of request.attributes) {
      if (!isComprehensionRequired(a.type) || UNDERSTOOD.has(a.type)) continue
      // CHANGE-REQUEST (RFC 5780 §7.2) asking for no change is a plain Binding request, which is
      // how RFC 3489 clients send their first test. Asking for another IP or port needs a second
      // address this server does not have, so then it is an attribute we cannot honour.
      if (a.type === Attr.CHANGE_REQUEST && a.value.length === 4 && (a.value[3]! & 0x06) === 0) continue
      if (!unknown.includes(a.type)) unknown.push(a.type)
    }
    return unknown
  }

  private softwareAttr(): { type: number; value: Uint8Array }[] {
    return this.software ? [{ type: Attr.SOFTWARE, value: this.software }] : []
  }
}
