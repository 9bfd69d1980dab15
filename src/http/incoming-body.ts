import type { HttpConnection } from './connection.ts'
import { HttpConnectionError } from './errors.ts'

/**
 * The body of the request currently being served. Reads are serialized here as well as in the
 * connection, so that once the end has been seen nobody reads on into the next pipelined request.
 */
export class IncomingBody {
  private readonly connection: HttpConnection
  private chain: Promise<unknown> = Promise.resolve()
  private state: 'open' | 'ended' | 'failed' = 'open'
  private error: unknown
  private detached = false
  /** Sends `100 Continue` once the handler starts reading, for a client that waits for it. */
  private continueBeforeReading: (() => Promise<void>) | undefined

  private readonly onFailure: ((error: unknown) => void) | undefined

  constructor(connection: HttpConnection, hooks: { continueBeforeReading?: () => Promise<void>; onFailure?: (error: unknown) => void } = {}) {
    this.connection = connection
    this.continueBeforeReading = hooks.continueBeforeReading
    this.onFailure = hooks.onFailure
  }

  /** The error that broke the body (a parse error means the client sent garbage). */
  get failure(): unknown {
    return this.state === 'failed' ? this.error : undefined
  }

  get ended(): boolean {
    return this.state === 'ended'
  }

  /** The next chunk, or `null` once the body has ended. */
  read(): Promise<Uint8Array | null> {
    const result = this.chain.then(() => this.readOnce())
    this.chain = result.catch(() => {})
    return result
  }

  private async readOnce(): Promise<Uint8Array | null> {
    if (this.state === 'ended') return null
    if (this.state === 'failed') throw this.error
    try {
      const sendContinue = this.continueBeforeReading
      this.continueBeforeReading = undefined
      if (sendContinue !== undefined) await sendContinue()
      const event = await this.connection.nextEvent()
      if (event.type === 'body') return event.data
      if (event.type === 'end') {
        this.state = 'ended'
        return null
      }
      throw new HttpConnectionError(`unexpected ${event.type} event inside a request body`)
    } catch (error) {
      this.state = 'failed'
      this.error = error
      this.onFailure?.(error)
      throw error
    }
  }

  /**
   * The response is about to be sent: a `100 Continue` can no longer precede it, so none is sent;
   * the client then either sends the body anyway or not, and the connection closes after this exchange.
   */
  forgoContinue(): boolean {
    const pending = this.continueBeforeReading !== undefined
    this.continueBeforeReading = undefined
    if (pending) this.awaitingContinue = true
    return pending
  }

  private awaitingContinue = false

  /** The body as the stream a `Request` carries; pulled only as the handler reads. */
  stream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          if (this.detached) {
            controller.error(new HttpConnectionError('request body read after the response was sent'))
            return
          }
          try {
            const chunk = await this.read()
            if (chunk === null) controller.close()
            else controller.enqueue(chunk)
          } catch (error) {
            controller.error(error)
          }
        },
        // What the handler leaves unread is drained (or the connection closed) after the response.
      },
      { highWaterMark: 0 },
    )
  }

  /**
   * Reads and drops the rest of the body so the connection can carry the next request.
   * Returns false when more than `limit` bytes remain or the body is broken: then close instead.
   */
  async discardRest(limit: number): Promise<boolean> {
    this.detached = true
    // The client is still waiting for permission to send the body; closing beats guessing whether it will.
    if (this.continueBeforeReading !== undefined || this.awaitingContinue) return false
    let discarded = 0
    try {
      for (;;) {
        const chunk = await this.read()
        if (chunk === null) return true
        discarded += chunk.length
        if (discarded > limit) return false
      }
    } catch {
      return false
    }
  }
}
