import { describe, type HttpConnection } from './connection.ts'
import { HttpConnectionError, HttpParseError } from './errors.ts'
import type { HeaderList, ResponseHead } from './parser.ts'
import type { ConnectionSource, Lease } from './pool.ts'
import { BodySourceError, HOP_BY_HOP, arraySource, encodeHead, framingHeader, streamSource, writeBody, type OutgoingFraming } from './serialize.ts'

const NULL_BODY_STATUSES = new Set([204, 205, 304])

export type RequestBody = { kind: 'bytes'; bytes: Uint8Array } | { kind: 'stream'; stream: ReadableStream<Uint8Array> } | null

export interface OutgoingRequest {
  url: URL
  method: string
  headers: Headers
  body: RequestBody
}

/**
 * The connection went quiet before any response byte: on a reused keep-alive connection this is
 * the server having closed it while idle, and the request may be sent again on a new one.
 */
class NoResponseError extends HttpConnectionError {}

/** One request and its response; retries once on a fresh connection when a reused one was stale. */
export async function exchange(source: ConnectionSource, outgoing: OutgoingRequest, signal: AbortSignal): Promise<Response> {
  // A stream body can be sent only once, so it never risks a connection that may turn out stale.
  const replayable = outgoing.body?.kind !== 'stream'
  const lease = await source.acquire(outgoing.url, signal, !replayable)
  try {
    return await exchangeOn(source, lease, outgoing, signal)
  } catch (error) {
    if (!(error instanceof NoResponseError) || !lease.reused || signal.aborted) throw error
    const retry = await source.acquire(outgoing.url, signal, true)
    return exchangeOn(source, retry, outgoing, signal)
  }
}

async function exchangeOn(source: ConnectionSource, lease: Lease, outgoing: OutgoingRequest, signal: AbortSignal): Promise<Response> {
  const { url, method } = outgoing
  const { connection, parser } = lease
  parser.expectResponseTo(method)
  const onAbort = (): void => connection.destroy(signal.reason)
  signal.addEventListener('abort', onAbort, { once: true })
  const release = (): void => signal.removeEventListener('abort', onAbort)
  const fail = (error: unknown): never => {
    release()
    connection.destroy(error)
    if (signal.aborted) throw signal.reason
    throw error
  }

  let uploadFailure: unknown
  let uploading = true
  const upload = sendRequest(connection, outgoing, lease.keepAlive).then(
    () => {
      uploading = false
    },
    (error: unknown) => {
      uploading = false
      uploadFailure = error
      // The caller's body stream broke: nothing useful can follow on this connection.
      if (error instanceof BodySourceError) connection.destroy(error)
    },
  )

  let head: ResponseHead
  try {
    head = await readFinalHead(connection, url)
  } catch (error) {
    connection.destroy(error)
    await upload
    return fail(uploadFailure instanceof BodySourceError ? uploadFailure : contextualize(error, url))
  }

  const headers = new Headers()
  try {
    for (const [name, value] of head.headers) headers.append(name, value)
  } catch (error) {
    return fail(new HttpConnectionError(`response from ${url} has a header fetch cannot represent: ${describe(error)}`, { cause: error }))
  }
  if (head.status < 200 || head.status > 599) {
    return fail(new HttpConnectionError(`response from ${url} has status ${head.status}, outside the 200–599 range a Response can hold`))
  }

  let settled = false
  const finished = (): void => {
    if (settled) return
    settled = true
    release()
    if (uploading) {
      // A server may answer before reading the whole upload; then there is nothing left to finish politely.
      connection.destroy(new HttpConnectionError('response completed before the request body was sent'))
    } else {
      source.release(lease, lease.keepAlive && head.keepAlive && uploadFailure === undefined)
    }
  }
  const bodiless = method === 'HEAD' || NULL_BODY_STATUSES.has(head.status)
  let body: ReadableStream<Uint8Array> | null = null
  if (bodiless) {
    if (head.body.kind === 'none') {
      // Consume the end event so nothing of this exchange is left unread.
      await connection.nextEvent().then(finished, fail)
    } else {
      release()
      connection.destroy(new HttpConnectionError('unread body of a bodiless response'))
    }
  } else {
    body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          try {
            for (;;) {
              const event = await connection.nextEvent()
              if (event.type === 'body') {
                controller.enqueue(event.data)
                return
              }
              if (event.type === 'end') {
                controller.close()
                finished()
                return
              }
              throw new HttpConnectionError(`unexpected ${event.type} event inside the response body`)
            }
          } catch (error) {
            const reason = signal.aborted ? signal.reason : bodyError(error, url)
            release()
            connection.destroy(reason)
            controller.error(reason)
          }
        },
        cancel(reason) {
          release()
          connection.destroy(reason)
        },
      },
      { highWaterMark: 0 },
    )
  }
  return new Response(body === null ? null : decoded(body, headers), { status: head.status, statusText: head.reason, headers })
}

async function sendRequest(connection: HttpConnection, outgoing: OutgoingRequest, keepAlive: boolean): Promise<void> {
  const { url, method, body } = outgoing
  let framing: OutgoingFraming | undefined
  if (body?.kind === 'bytes') framing = { kind: 'length', length: body.bytes.length }
  else if (body?.kind === 'stream') framing = { kind: 'chunked' }
  else if (method === 'POST' || method === 'PUT' || method === 'PATCH') framing = { kind: 'length', length: 0 }

  const fields: HeaderList = [['host', url.host]]
  for (const [name, value] of outgoing.headers) {
    if (HOP_BY_HOP.has(name) || name === 'host') continue
    fields.push([name, value])
  }
  if (!outgoing.headers.has('accept')) fields.push(['accept', '*/*'])
  if (!outgoing.headers.has('accept-encoding') && canDecode) fields.push(['accept-encoding', 'gzip, deflate'])
  const framingField = framing === undefined ? undefined : framingHeader(framing)
  if (framingField !== undefined) fields.push(framingField)
  if (!keepAlive) fields.push(['connection', 'close'])
  const target = `${url.pathname}${url.search}`
  const head = encodeHead(`${method} ${target} HTTP/1.1`, fields)
  // A streamed body may take a while to produce its first chunk; the head should not wait for it.
  if (body?.kind === 'stream') {
    await connection.write(head)
    await writeBody(connection, streamSource(body.stream.getReader()), framing!)
  } else {
    await writeBody(connection, arraySource(body === null ? [] : [body.bytes]), framing ?? { kind: 'length', length: 0 }, head)
  }
}

const canDecode = typeof DecompressionStream === 'function'

/**
 * Undoes a gzip or deflate content coding as fetch does (the headers stay as sent). Other or
 * stacked codings are passed through untouched: the caller sees Content-Encoding and decides.
 */
function decoded(body: ReadableStream<Uint8Array>, headers: Headers): ReadableStream<Uint8Array> {
  const coding = (headers.get('content-encoding') ?? '').trim().toLowerCase()
  const format = coding === 'gzip' || coding === 'x-gzip' ? 'gzip' : coding === 'deflate' ? 'deflate' : undefined
  if (format === undefined || !canDecode) return body
  return body.pipeThrough(new DecompressionStream(format) as unknown as ReadableWritablePair<Uint8Array, Uint8Array>)
}

/** Reads past interim 1xx responses to the final head. */
async function readFinalHead(connection: HttpConnection, url: URL): Promise<ResponseHead> {
  let first = true
  for (;;) {
    let event
    try {
      event = await connection.nextEvent()
    } catch (error) {
      // Only a connection that failed without a single response byte counts as stale (parse errors mean bytes came).
      if (first && error instanceof HttpConnectionError) {
        throw new NoResponseError(`connection to ${url.host} failed before any response arrived: ${describe(error)}`, { cause: error })
      }
      throw error
    }
    if (event.type === 'closed') throw new NoResponseError(`connection to ${url.host} closed before any response arrived`)
    if (event.type !== 'head' || event.head.kind !== 'response') throw new HttpConnectionError(`unexpected ${event.type} before the response head`)
    first = false
    const head = event.head
    if (head.status === 101) throw new HttpConnectionError(`${url} answered 101 Switching Protocols, but no upgrade was asked for`)
    if (head.status >= 200) return head
    await connection.nextEvent() // the interim response's end
  }
}

function contextualize(error: unknown, url: URL): unknown {
  if (error instanceof HttpParseError) {
    return new HttpConnectionError(`malformed response from ${url}: ${error.message}`, { cause: error })
  }
  return error
}

function bodyError(error: unknown, url: URL): unknown {
  if (error instanceof HttpParseError || error instanceof HttpConnectionError) {
    return new HttpConnectionError(`response body from ${url} failed: ${error.message}`, { cause: error })
  }
  return error
}
