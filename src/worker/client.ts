// The page's handle on the dataplane worker. Every operation returns a promise that settles with
// the worker's answer; anything else that goes wrong in the worker is dispatched as an `error`
// event (a `WorkerErrorEvent`) and rejects every pending operation when the worker itself fails.
import {
  sharedNow,
  transferables,
  unpackPackets,
  WorkerOperationError,
  type KeyInput,
  type OverlayPortMessage,
  type Request,
  type Responses,
  type StartConfig,
  type UnderlaySpec,
  type WorkerMessage,
  type WorkerPeerConfig,
  type WorkerStatus,
} from './protocol.ts'

/** Dispatched on `BurrowWorker` for failures no operation is waiting for. */
export class WorkerErrorEvent extends Event {
  constructor(readonly error: Error) {
    super('error')
  }
  get message(): string {
    return this.error.message
  }
}

/** The minimum of `Worker` the client uses (lets tests host the worker side elsewhere). */
export interface WorkerLike {
  postMessage(message: unknown, transfer: Transferable[]): void
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- callers pass typed handlers ((event: MessageEvent) => void), which `unknown` or `Event` would reject
  addEventListener(type: string, listener: (event: any) => void): void
  terminate?(): void
}

interface Pending {
  op: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one table holds the resolvers of every op's differently typed promise
  resolve: (value: any) => void
  reject: (error: Error) => void
}

/**
 * Requests waiting for answers, by id: the request/response layer of both ports the page talks
 * to a worker on (the dataplane's, and the node agent's control port in src/burrow.ts).
 */
export class RequestTable {
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private failedWith: Error | undefined

  /** The error every request has been rejected with since `fail`, if it was called. */
  get failed(): Error | undefined {
    return this.failedWith
  }

  /** Posts a request with a fresh id (`post` may throw: the request rejects with that). */
  send<T>(op: string, post: (id: number) => void): Promise<T> {
    if (this.failedWith) return Promise.reject(this.failedWith)
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { op, resolve, reject })
      try {
        post(id)
      } catch (error) {
        this.pending.delete(id)
        reject(error instanceof Error ? error : new Error(String(error)))
      }
    })
  }

  /**
   * Settles request `id` with its value, or with the error `toError` makes from the answer's
   * error and the request's op. False when no request has that id.
   */
  settle<E>(id: number, answer: { ok: true; value: unknown } | { ok: false; error: E }, toError: (error: E, op: string) => Error): boolean {
    const pending = this.pending.get(id)
    if (!pending) return false
    this.pending.delete(id)
    if (answer.ok) pending.resolve(answer.value)
    else pending.reject(toError(answer.error, pending.op))
    return true
  }

  /** Rejects every pending request, and every later one, with `error`. False if already failed. */
  fail(error: Error): boolean {
    if (this.failedWith) return false
    this.failedWith = error
    for (const pending of this.pending.values()) pending.reject(error)
    this.pending.clear()
    return true
  }
}

export class BurrowWorker extends EventTarget {
  private readonly requests = new RequestTable()

  /** `worker`: the dataplane worker to drive (`createDataplaneWorker()` from `./launch.ts`, or a node agent's). */
  constructor(private readonly worker: WorkerLike) {
    super()
    worker.addEventListener('message', (event: MessageEvent) => this.onMessage(event.data as WorkerMessage))
    worker.addEventListener('error', (event: ErrorEvent) => {
      event.preventDefault?.()
      this.fail(new Error(`dataplane worker failed: ${event.message || 'unknown error (script failed to load?)'}`))
    })
    worker.addEventListener('messageerror', () => this.emitError(new Error('a message from the dataplane worker could not be deserialized')))
  }

  start(config: StartConfig): Promise<Responses['start']> {
    return this.call({ op: 'start', config })
  }

  async addPeer(peer: WorkerPeerConfig): Promise<number> {
    return (await this.call({ op: 'add-peer', peer })).peer
  }

  async removePeer(publicKey: KeyInput): Promise<void> {
    await this.call({ op: 'remove-peer', publicKey })
  }

  /** Adds an underlay of a kind the worker knows; `port` specs transfer their port. */
  async addUnderlay(spec: UnderlaySpec): Promise<number> {
    return (await this.call({ op: 'add-underlay', spec }, spec.port ? [spec.port] : [])).underlay
  }

  /** A point-to-point underlay over `port` (e.g. to another worker). The port is transferred. */
  addPortUnderlay(port: MessagePort): Promise<number> {
    return this.addUnderlay({ kind: 'port', port })
  }

  async removeUnderlay(underlay: number): Promise<void> {
    await this.call({ op: 'remove-underlay', underlay })
  }

  async setPeerRoute(publicKey: KeyInput, underlay: number, endpoint?: unknown): Promise<void> {
    await this.call({ op: 'set-peer-route', publicKey, underlay, endpoint })
  }

  /** Connects a page-side overlay (the TCP/IP stack) serving `addresses`, e.g. `['10.0.0.1/32']`. */
  async attachOverlay(addresses: string[]): Promise<OverlayPort> {
    const channel = new MessageChannel()
    try {
      const { overlay } = await this.call({ op: 'attach-overlay', port: channel.port2, addresses }, [channel.port2])
      return new OverlayPort(channel.port1, overlay, this)
    } catch (error) {
      channel.port1.close()
      throw error
    }
  }

  async detachOverlay(overlay: number): Promise<void> {
    await this.call({ op: 'detach-overlay', overlay })
  }

  status(): Promise<WorkerStatus> {
    return this.call({ op: 'status' })
  }

  async stop(): Promise<void> {
    await this.call({ op: 'stop' })
  }

  /** Stops the worker thread at once; pending operations reject. */
  terminate(): void {
    this.worker.terminate?.()
    // Asked for, so not an `error` event; operations still pending (or attempted later) reject.
    this.fail(new Error('dataplane worker terminated'), false)
  }

  private call<R extends Request>(request: R, transfer: Transferable[] = []): Promise<Responses[R['op']]> {
    return this.requests.send(request.op, (id) => this.worker.postMessage({ id, request }, transfer))
  }

  private onMessage(message: WorkerMessage): void {
    if (message?.type === 'result') {
      if (!this.requests.settle(message.id, message, (error, op) => new WorkerOperationError(error, op as Request['op']))) {
        this.emitError(new Error(`dataplane worker answered unknown request ${message.id}`))
      }
    } else if (message?.type === 'error') {
      this.emitError(new WorkerOperationError(message.error))
    } else {
      this.emitError(new Error(`unexpected message from the dataplane worker: ${JSON.stringify((message as { type?: unknown })?.type)}`))
    }
  }

  private fail(error: Error, announce = true): void {
    if (this.requests.fail(error) && announce) this.emitError(error)
  }

  /** @internal Used by OverlayPort. */
  emitError(error: Error): void {
    this.dispatchEvent(new WorkerErrorEvent(error))
  }
}

/**
 * The page's end of an overlay: send IP packets into the overlay network, receive packets for
 * our addresses, and be woken by the worker's (unthrottled) clock.
 */
export class OverlayPort {
  /** Receives each batch of IP packets for this overlay. */
  onpackets: ((packets: Uint8Array[]) => void) | undefined
  /** Called when a requested wake-up is due, with `sharedNow()`. */
  onwake: ((now: number) => void) | undefined

  constructor(
    private readonly port: MessagePort,
    readonly id: number,
    private readonly owner: BurrowWorker,
  ) {
    port.onmessage = (event: MessageEvent) => {
      const message = event.data as OverlayPortMessage
      if (message?.type === 'packets') {
        const packets = unpackPackets(message)
        if (typeof packets === 'string') owner.emitError(new Error(`overlay port: ${packets}`))
        else this.onpackets?.(packets)
      } else if (message?.type === 'wake') {
        this.onwake?.(message.now)
      } else {
        owner.emitError(new Error(`overlay port: unexpected message ${JSON.stringify((message as { type?: unknown })?.type)}`))
      }
    }
  }

  /**
   * Sends IP packets. Their buffers are transferred (detached here) when each view covers its
   * whole buffer; other views are copied first. (The stack builds each packet in a buffer of its
   * own, so transferring beats packing them into one on this side.)
   */
  send(packets: Uint8Array[]): void {
    const buffers = transferables(packets)
    const message: OverlayPortMessage = { type: 'packets', buffers }
    this.port.postMessage(message, buffers)
  }

  /** Asks for one `onwake` at `at` (on the `sharedNow()` clock), replacing any earlier request. */
  wakeAt(at: number | null): void {
    const message: OverlayPortMessage = { type: 'wake-at', at }
    this.port.postMessage(message)
  }

  /** The clock `wakeAt` deadlines are on. */
  now(): number {
    return sharedNow()
  }

  close(): void {
    this.port.onmessage = null
    this.port.close()
  }
}
