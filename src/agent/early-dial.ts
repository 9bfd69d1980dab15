// DERP byte streams dialed before the key that logs in to them exists. A relay speaks first
// (ServerKey, then it waits for ClientInfo: upstream derp/derpserver/derpserver.go `accept`), so
// the TCP, TLS and WebSocket handshakes and the ServerKey frame need no key: a join dials its
// expected home relay as it starts, and the DerpConnection made once the keys are loaded takes
// the stream, with what arrived meanwhile replayed to it in order.
import type { DerpDialer, DerpStream, DerpStreamHandlers } from '../underlay/derp/dialer.ts'

type StreamEvent = { kind: 'open' } | { kind: 'data'; bytes: Uint8Array } | { kind: 'close'; reason: string }

class EarlyStream {
  readonly stream: DerpStream
  /** Events not yet handed on; undefined once replayed (later ones go straight through). */
  private queue: StreamEvent[] | undefined = []
  private handlers: DerpStreamHandlers | undefined

  constructor(dial: DerpDialer, url: string) {
    this.stream = dial(url, {
      onOpen: () => this.event({ kind: 'open' }),
      onData: (bytes) => this.event({ kind: 'data', bytes }),
      onClose: (reason) => this.event({ kind: 'close', reason }),
    })
  }

  /** Hands the stream to `handlers`; what arrived so far follows a microtask later (after the dialer returned the stream). */
  attach(handlers: DerpStreamHandlers): DerpStream {
    this.handlers = handlers
    queueMicrotask(() => {
      const queue = this.queue ?? []
      this.queue = undefined
      for (const event of queue) this.deliver(event)
    })
    return this.stream
  }

  private event(event: StreamEvent): void {
    if (this.queue !== undefined) this.queue.push(event)
    else this.deliver(event)
  }

  private deliver(event: StreamEvent): void {
    const handlers = this.handlers!
    if (event.kind === 'open') handlers.onOpen()
    else if (event.kind === 'data') handlers.onData(event.bytes)
    else handlers.onClose(event.reason)
  }
}

export class EarlyDials {
  private readonly early = new Map<string, EarlyStream>()

  constructor(private readonly dial: DerpDialer) {}

  /** Dials `url` now (once per URL); the next `dialer` call for that URL gets this stream. */
  open(url: string): void {
    if (!this.early.has(url)) this.early.set(url, new EarlyStream(this.dial, url))
  }

  /** A DerpDialer that hands out an early stream of its URL once, and dials otherwise. */
  readonly dialer: DerpDialer = (url, handlers) => {
    const early = this.early.get(url)
    if (early === undefined) return this.dial(url, handlers)
    this.early.delete(url)
    return early.attach(handlers)
  }

  /** Closes the early streams nobody took. */
  closeUnused(): void {
    for (const early of this.early.values()) early.stream.close()
    this.early.clear()
  }
}
