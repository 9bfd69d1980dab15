import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { concatBytes } from '../crypto/index.ts'
import { HttpParser, type HeaderList, type MessageHead } from './parser.ts'
import { HttpParseError } from './errors.ts'

const enc = new TextEncoder()
const bytes = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))
const text = (data: Uint8Array): string => String.fromCharCode(...data)

interface ParsedMessage {
  head: MessageHead
  body: string
  trailers: HeaderList
}

interface ParseOutcome {
  messages: ParsedMessage[]
  /** 'closed' when the input ended cleanly, 'open' when more bytes were awaited, else the error code. */
  ending: string
}

/** Feeds `chunks` one at a time, draining events after each, then finishes. */
function parseChunks(kind: 'request' | 'response', chunks: Uint8Array[], methods: string[] = []): ParseOutcome {
  const parser = new HttpParser(kind)
  for (const method of methods) parser.expectResponseTo(method)
  const messages: ParsedMessage[] = []
  let current: ParsedMessage | undefined
  const drain = (): string | undefined => {
    for (;;) {
      const event = parser.next()
      if (event === null) return undefined
      switch (event.type) {
        case 'head':
          current = { head: event.head, body: '', trailers: [] }
          break
        case 'body':
          current!.body += text(event.data)
          break
        case 'end':
          current!.trailers = event.trailers
          messages.push(current!)
          current = undefined
          break
        case 'closed':
          return 'closed'
      }
    }
  }
  try {
    for (const chunk of chunks) {
      parser.push(chunk)
      drain()
    }
    parser.finish()
    return { messages, ending: drain() ?? 'open' }
  } catch (error) {
    if (!(error instanceof HttpParseError)) throw error
    return { messages, ending: error.code }
  }
}

const parseText = (kind: 'request' | 'response', input: string, methods?: string[]): ParseOutcome => parseChunks(kind, [bytes(input)], methods)

function splitAt(input: Uint8Array, points: number[]): Uint8Array[] {
  const sorted = [...new Set(points)].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let start = 0
  for (const point of sorted) {
    chunks.push(input.slice(start, point))
    start = point
  }
  chunks.push(input.slice(start))
  return chunks
}

const GOLDEN_REQUESTS: Record<string, string> = {
  get: 'GET /index.html?q=1 HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n\r\n',
  post: 'POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world',
  chunked: 'PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n',
  pipelined: 'GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.0\r\n\r\n',
  lfOnly: 'GET / HTTP/1.1\nHost: h\n\n',
}

const GOLDEN_RESPONSES: Record<string, string> = {
  length: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  chunked: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\nExpires: never\r\nX-T: 1\r\n\r\n',
  untilClose: 'HTTP/1.0 200 OK\r\n\r\nall of this until the end',
  informational: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok',
  noContent: 'HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n',
}

describe('HttpParser golden requests', () => {
  it('parses a GET with its headers and no body', () => {
    const { messages, ending } = parseText('request', GOLDEN_REQUESTS.get!)
    expect(ending).toBe('closed')
    expect(messages).toHaveLength(1)
    const head = messages[0]!.head
    expect(head).toMatchObject({ kind: 'request', method: 'GET', target: '/index.html?q=1', minorVersion: 1, keepAlive: true })
    expect(head.headers).toEqual([
      ['Host', 'example.test'],
      ['Accept', '*/*'],
    ])
    expect(head.body).toEqual({ kind: 'none' })
  })

  it('parses a Content-Length body', () => {
    const { messages } = parseText('request', GOLDEN_REQUESTS.post!)
    expect(messages[0]!.head.body).toEqual({ kind: 'length', length: 11 })
    expect(messages[0]!.body).toBe('hello world')
  })

  it('parses a chunked body with extensions and hands back trailers separately', () => {
    const { messages, ending } = parseText('request', GOLDEN_REQUESTS.chunked!)
    expect(ending).toBe('closed')
    expect(messages[0]!.body).toBe('hello world')
    expect(messages[0]!.trailers).toEqual([['X-Checksum', 'abc']])
  })

  it('parses pipelined requests one after another', () => {
    const { messages } = parseText('request', GOLDEN_REQUESTS.pipelined!)
    expect(messages.map((m) => [(m.head as { target: string }).target, m.body, m.head.keepAlive])).toEqual([
      ['/a', '', true],
      ['/b', 'xyz', true],
      ['/c', '', false],
    ])
  })

  it('accepts bare LF line endings and leading empty lines', () => {
    expect(parseText('request', GOLDEN_REQUESTS.lfOnly!).messages).toHaveLength(1)
    expect(parseText('request', '\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n').messages).toHaveLength(1)
  })

  it('honours Connection options', () => {
    const close = parseText('request', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, close\r\n\r\n')
    expect(close.messages[0]!.head.keepAlive).toBe(false)
    const keep10 = parseText('request', 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    expect(keep10.messages[0]!.head.keepAlive).toBe(true)
  })
})

describe('HttpParser golden responses', () => {
  it('parses Content-Length and chunked bodies', () => {
    expect(parseText('response', GOLDEN_RESPONSES.length!).messages[0]!.body).toBe('hello')
    const chunked = parseText('response', GOLDEN_RESPONSES.chunked!)
    expect(chunked.messages[0]!.body).toBe('abc0123456789')
    expect(chunked.messages[0]!.trailers).toEqual([
      ['Expires', 'never'],
      ['X-T', '1'],
    ])
  })

  it('reads a body without framing until the connection closes', () => {
    const { messages, ending } = parseText('response', GOLDEN_RESPONSES.untilClose!)
    expect(messages[0]!.head.body).toEqual({ kind: 'until-close' })
    expect(messages[0]!.head.keepAlive).toBe(false)
    expect(messages[0]!.body).toBe('all of this until the end')
    expect(ending).toBe('closed')
  })

  it('passes interim 1xx responses through before the final one', () => {
    const { messages } = parseText('response', GOLDEN_RESPONSES.informational!)
    expect(messages.map((m) => (m.head as { status: number }).status)).toEqual([100, 201])
    expect(messages[1]!.body).toBe('ok')
  })

  it('gives 204 and 304 responses no body whatever their headers say', () => {
    const { messages, ending } = parseText('response', GOLDEN_RESPONSES.noContent!)
    expect(messages.map((m) => [(m.head as { status: number }).status, m.body])).toEqual([
      [204, ''],
      [304, ''],
    ])
    expect(ending).toBe('closed')
  })

  it('gives a response to HEAD no body even with Content-Length', () => {
    const input = 'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi'
    const { messages } = parseText('response', input, ['HEAD', 'GET'])
    expect(messages.map((m) => m.body)).toEqual(['', 'hi'])
  })

  it('keeps the reason phrase, including an empty one', () => {
    const a = parseText('response', 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n').messages[0]!.head
    expect(a).toMatchObject({ status: 404, reason: 'Not Found' })
    const b = parseText('response', 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n').messages[0]!.head
    expect(b).toMatchObject({ status: 200, reason: '' })
  })

  it('unfolds obsolete line folding in responses', () => {
    const head = parseText('response', 'HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nContent-Length: 0\r\n\r\n').messages[0]!.head
    expect(head.headers[0]).toEqual(['X-Long', 'a b'])
  })

  it('lets Transfer-Encoding override Content-Length in a response', () => {
    const input = 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n'
    expect(parseText('response', input).messages[0]!.body).toBe('x')
  })
})

describe('HttpParser rejects malformed input with a named problem', () => {
  const cases: Array<[string, 'request' | 'response', string, string]> = [
    ['garbage request line', 'request', 'HELLO\r\n\r\n', 'invalid-start-line'],
    ['HTTP/2 request', 'request', 'GET / HTTP/2.0\r\n\r\n', 'unsupported-version'],
    ['space before colon', 'request', 'GET / HTTP/1.1\r\nHost : h\r\n\r\n', 'invalid-header'],
    ['header without colon', 'request', 'GET / HTTP/1.1\r\nHost\r\n\r\n', 'invalid-header'],
    ['obs-fold in request', 'request', 'GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n', 'invalid-header'],
    ['NUL in value', 'request', 'GET / HTTP/1.1\r\nA: b\0c\r\n\r\n', 'invalid-header'],
    ['bare CR', 'request', 'GET / HTTP/1.1\r\nA: b\rc\r\n\r\n', 'invalid-header'],
    ['bad Content-Length', 'request', 'POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n', 'invalid-content-length'],
    ['negative Content-Length', 'request', 'POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 'invalid-content-length'],
    ['two Content-Lengths', 'request', 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'invalid-content-length'],
    ['huge Content-Length', 'request', 'POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n', 'invalid-content-length'],
    ['TE and CL together', 'request', 'POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 'conflicting-framing'],
    ['gzip coding', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'unsupported-transfer-encoding'],
    ['chunked not last', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n', 'unsupported-transfer-encoding'],
    ['non-hex chunk size', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'invalid-chunk-size'],
    ['empty chunk size', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n', 'invalid-chunk-size'],
    ['huge chunk size', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n', 'invalid-chunk-size'],
    ['chunk overrun', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', 'invalid-chunk-terminator'],
    ['status line garbage', 'response', 'HTTP/1.1 OK\r\n\r\n', 'invalid-start-line'],
    ['status below 100', 'response', 'HTTP/1.1 099 Low\r\n\r\n', 'invalid-start-line'],
    ['truncated length body', 'response', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', 'unexpected-eof'],
    ['truncated chunked body', 'response', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab', 'unexpected-eof'],
    ['truncated head', 'response', 'HTTP/1.1 200 OK\r\nContent-', 'unexpected-eof'],
  ]
  for (const [name, kind, input, code] of cases) {
    it(name, () => {
      expect(parseText(kind, input).ending).toBe(code)
    })
  }

  it('says what was wrong in the message', () => {
    const parser = new HttpParser('response')
    parser.push(bytes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnope\r\n'))
    expect(parser.next()?.type).toBe('head')
    expect(() => parser.next()).toThrow(/invalid chunk size line "nope"/)
    // The failure sticks: the parser never resumes on a corrupted stream.
    expect(() => parser.next()).toThrow(HttpParseError)
    expect(() => parser.push(bytes('0\r\n\r\n'))).toThrow(HttpParseError)
  })

  it('names the byte counts when the body is cut short', () => {
    const parser = new HttpParser('response')
    parser.push(bytes('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'))
    parser.next()
    parser.next()
    parser.finish()
    expect(() => parser.next()).toThrow('connection closed after 3 of 10 body bytes')
  })

  it('limits the head to 64 KiB even when it arrives slowly and never ends', () => {
    const parser = new HttpParser('request')
    parser.push(bytes('GET / HTTP/1.1\r\n'))
    let error: unknown
    try {
      for (let i = 0; i < 100; i++) {
        parser.push(bytes(`X-Filler-${i}: ${'a'.repeat(1000)}\r\n`))
        expect(parser.next()).toBeNull()
      }
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(HttpParseError)
    expect((error as HttpParseError).code).toBe('head-too-large')
  })

  it('limits a single line that never ends', () => {
    const parser = new HttpParser('request', { maxHeadBytes: 1024 })
    parser.push(bytes('GET /'))
    expect(parser.next()).toBeNull()
    parser.push(bytes('a'.repeat(2000)))
    expect(() => parser.next()).toThrow(/request head exceeds 1024 bytes/)
  })

  it('limits the trailer section', () => {
    const input = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${'X: y\r\n'.repeat(20000)}\r\n`
    expect(parseText('response', input).ending).toBe('trailers-too-large')
  })
})

describe('HttpParser is indifferent to how the input is split', () => {
  const goldens: Array<['request' | 'response', string, string]> = [
    ...Object.entries(GOLDEN_REQUESTS).map(([name, input]) => ['request', name, input] as ['request', string, string]),
    ...Object.entries(GOLDEN_RESPONSES).map(([name, input]) => ['response', name, input] as ['response', string, string]),
  ]
  for (const [kind, name, input] of goldens) {
    it(`${kind} ${name}: every single split point and byte-at-a-time give the same result`, () => {
      const data = bytes(input)
      const whole = parseChunks(kind, [data])
      for (let i = 0; i <= data.length; i++) {
        expect(parseChunks(kind, splitAt(data, [i]))).toEqual(whole)
      }
      expect(
        parseChunks(
          kind,
          Array.from(data, (b) => Uint8Array.of(b)),
        ),
      ).toEqual(whole)
    })
  }

  const tokenArb = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/)
  const valueArb = fc.stringMatching(/^[!-~]([ !-~]{0,30}[!-~])?$/)
  const headerArb = fc.tuple(
    tokenArb.filter((name) => !['content-length', 'transfer-encoding', 'connection'].includes(name.toLowerCase())),
    valueArb,
  )
  const bodyArb = fc.uint8Array({ maxLength: 300 })
  const messageArb = fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
    target: fc.stringMatching(/^\/[!-~]{0,40}$/),
    headers: fc.array(headerArb, { maxLength: 8 }),
    body: bodyArb,
    chunked: fc.boolean(),
    chunkSizes: fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 10 }),
    lfOnly: fc.boolean(),
  })

  type Generated = typeof messageArb extends fc.Arbitrary<infer T> ? T : never

  function encodeRequest(m: Generated): Uint8Array {
    const eol = m.lfOnly ? '\n' : '\r\n'
    let head = `${m.method} ${m.target} HTTP/1.1${eol}`
    for (const [name, value] of m.headers) head += `${name}: ${value}${eol}`
    const parts: Uint8Array[] = []
    if (m.chunked) {
      head += `Transfer-Encoding: chunked${eol}${eol}`
      parts.push(enc.encode(head))
      let offset = 0
      let i = 0
      while (offset < m.body.length) {
        const size = Math.min(m.chunkSizes[i++ % m.chunkSizes.length]!, m.body.length - offset)
        parts.push(enc.encode(`${size.toString(16)}${eol}`), m.body.subarray(offset, offset + size), enc.encode(eol))
        offset += size
      }
      parts.push(enc.encode(`0${eol}${eol}`))
    } else {
      head += `Content-Length: ${m.body.length}${eol}${eol}`
      parts.push(enc.encode(head), m.body)
    }
    return concatBytes(parts)
  }

  it('generated requests: any split gives the same messages, matching what was encoded', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 12 }), (generated, cuts) => {
        const encoded = generated.map(encodeRequest)
        const stream = new Uint8Array(encoded.reduce((n, e) => n + e.length, 0))
        let at = 0
        for (const e of encoded) {
          stream.set(e, at)
          at += e.length
        }
        const points = cuts.map((c) => c % (stream.length + 1))
        const outcome = parseChunks('request', splitAt(stream, points))
        expect(outcome.ending).toBe('closed')
        expect(outcome).toEqual(parseChunks('request', [stream.slice()]))
        expect(outcome.messages).toHaveLength(generated.length)
        for (const [i, m] of generated.entries()) {
          const parsed = outcome.messages[i]!
          expect(parsed.head).toMatchObject({ method: m.method, target: m.target })
          expect(parsed.head.headers.slice(0, m.headers.length)).toEqual(m.headers)
          expect(parsed.body).toBe(text(m.body))
        }
      }),
      { numRuns: 300 },
    )
  })

  const responseArb = fc.record({
    status: fc.constantFrom(200, 201, 204, 206, 301, 304, 404, 500),
    reason: fc.stringMatching(/^[A-Za-z ]{0,20}$/),
    headers: fc.array(headerArb, { maxLength: 6 }),
    body: bodyArb,
    framing: fc.constantFrom('length', 'chunked'),
    chunkSizes: fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 10 }),
    extensions: fc.boolean(),
    trailers: fc.array(headerArb, { maxLength: 3 }),
    head: fc.boolean(),
  })
  type GeneratedResponse = typeof responseArb extends fc.Arbitrary<infer T> ? T : never

  /** Encodes a response; returns the bytes and the body a correct parser must report. */
  function encodeResponse(r: GeneratedResponse): { bytes: Uint8Array; body: Uint8Array } {
    const bodiless = r.head || r.status === 204 || r.status === 304
    let text = `HTTP/1.1 ${r.status} ${r.reason}\r\n`
    for (const [name, value] of r.headers) text += `${name}: ${value}\r\n`
    const parts: Uint8Array[] = []
    if (r.framing === 'chunked') {
      text += 'Transfer-Encoding: chunked\r\n\r\n'
      parts.push(bytes(text))
      if (!bodiless) {
        let offset = 0
        let i = 0
        while (offset < r.body.length) {
          const size = Math.min(r.chunkSizes[i++ % r.chunkSizes.length]!, r.body.length - offset)
          parts.push(bytes(`${size.toString(16)}${r.extensions ? ';ext="q v";x=1' : ''}\r\n`), r.body.subarray(offset, offset + size), bytes('\r\n'))
          offset += size
        }
        let trailer = '0\r\n'
        for (const [name, value] of r.trailers) trailer += `${name}: ${value}\r\n`
        parts.push(bytes(`${trailer}\r\n`))
      }
    } else {
      parts.push(bytes(`${text}Content-Length: ${r.body.length}\r\n\r\n`))
      if (!bodiless) parts.push(r.body)
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let at = 0
    for (const part of parts) {
      out.set(part, at)
      at += part.length
    }
    return { bytes: out, body: bodiless ? new Uint8Array(0) : r.body }
  }

  it('generated responses (HEAD, 204/304, chunked with extensions and trailers): any split gives what was encoded', () => {
    fc.assert(
      fc.property(fc.array(responseArb, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 12 }), (generated, cuts) => {
        const encoded = generated.map(encodeResponse)
        const stream = new Uint8Array(encoded.reduce((n, e) => n + e.bytes.length, 0))
        let at = 0
        for (const e of encoded) {
          stream.set(e.bytes, at)
          at += e.bytes.length
        }
        const methods = generated.map((r) => (r.head ? 'HEAD' : 'GET'))
        const points = cuts.map((c) => c % (stream.length + 1))
        const outcome = parseChunks('response', splitAt(stream, points), methods)
        expect(outcome).toEqual(parseChunks('response', [stream.slice()], methods))
        expect(outcome.ending).toBe('closed')
        expect(outcome.messages.map((m) => (m.head as { status: number }).status)).toEqual(generated.map((r) => r.status))
        for (const [i, e] of encoded.entries()) {
          expect(outcome.messages[i]!.body).toBe(text(e.body))
          const r = generated[i]!
          const hasTrailers = r.framing === 'chunked' && !r.head && r.status !== 204 && r.status !== 304
          expect(outcome.messages[i]!.trailers).toEqual(hasTrailers ? r.trailers : [])
        }
      }),
      { numRuns: 300 },
    )
  })

  it('garbage yields only HttpParseError or a clean/pending ending, never a hang or another error', () => {
    const prefixArb = fc.constantFrom('', 'GET / HTTP/1.1\r\n', 'HTTP/1.1 200 OK\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
    fc.assert(
      fc.property(
        fc.constantFrom<'request' | 'response'>('request', 'response'),
        prefixArb,
        fc.uint8Array({ maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (kind, prefix, noise, cuts) => {
          const input = new Uint8Array([...bytes(prefix), ...noise])
          const points = cuts.map((c) => c % (input.length + 1))
          const outcome = parseChunks(kind, splitAt(input, points))
          expect(outcome).toEqual(parseChunks(kind, [input.slice()]))
          expect(outcome.ending).not.toBe('open')
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('garbage built from HTTP-ish tokens is handled the same way', () => {
    const pieces = fc.constantFrom(
      'GET',
      'HTTP/1.1',
      'HTTP/1.0',
      ' ',
      '\r\n',
      '\n',
      '\r',
      ':',
      'Content-Length',
      'Transfer-Encoding',
      'chunked',
      '0',
      '5',
      'ff',
      ';ext',
      'Host',
      'x',
      '\t',
      '\0',
      '200',
      'OK',
    )
    fc.assert(
      fc.property(
        fc.constantFrom<'request' | 'response'>('request', 'response'),
        fc.array(pieces, { maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (kind, parts, cuts) => {
          const input = bytes(parts.join(''))
          const points = cuts.map((c) => c % (input.length + 1))
          const outcome = parseChunks(kind, splitAt(input, points))
          expect(outcome).toEqual(parseChunks(kind, [input.slice()]))
          expect(outcome.ending).not.toBe('open')
        },
      ),
      { numRuns: 1000 },
    )
  })
})
