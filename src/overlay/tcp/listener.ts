import type { IpAddress } from '../../wire/index.ts'
import type { TcpConnection } from './connection.ts'

/**
 * A passive-open port. Connections count against the backlog from their SYN until the
 * application accepts them; SYNs beyond it are dropped so the client retries later (as Linux
 * does) instead of being refused.
 */
export class TcpListener {
  private readonly ready: TcpConnection[] = []
  private readonly pending = new Set<TcpConnection>()
  closed = false
  /** Called when a connection completes its handshake and joins the accept queue. */
  onConnection: (() => void) | undefined

  constructor(
    readonly port: number,
    readonly backlog: number,
    /** Only accept connections to this local address (undefined: any of the stack's). */
    readonly address: IpAddress | undefined,
    private readonly release: (listener: TcpListener) => void,
  ) {}

  get queued(): number {
    return this.ready.length + this.pending.size
  }

  get hasRoom(): boolean {
    return !this.closed && this.queued < this.backlog
  }

  /** A SYN created `connection`; it waits here until established or dead. */
  adopt(connection: TcpConnection): void {
    this.pending.add(connection)
  }

  /** Called by the stack when an adopted connection is established. */
  promote(connection: TcpConnection): void {
    if (!this.pending.delete(connection)) return
    this.ready.push(connection)
    this.onConnection?.()
  }

  /** An adopted connection died before being accepted. */
  forget(connection: TcpConnection): void {
    this.pending.delete(connection)
    const i = this.ready.indexOf(connection)
    if (i >= 0) this.ready.splice(i, 1)
  }

  /** The oldest established connection, or undefined. */
  accept(): TcpConnection | undefined {
    return this.ready.shift()
  }

  /** Stops listening; connections not yet accepted are reset. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const c of [...this.pending, ...this.ready]) c.abort()
    this.pending.clear()
    this.ready.length = 0
    this.release(this)
  }
}
