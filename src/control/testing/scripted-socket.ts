// Test helper: a coordination WebSocket whose far end is the test. It records what the client
// sends and delivers what the test says.
import type { SocketLike } from '../coordination-client.ts'

export class ScriptedSocket implements SocketLike {
  readyState = 1
  readonly sent: Array<{ type: string } & Record<string, unknown>> = []
  /** What the client closed the socket with, once it did. */
  closedWith: { code?: number; reason?: string } | undefined
  private readonly listeners = new Map<string, Array<(event: never) => void>>()
  constructor(readonly url = '') {}
  send(data: string): void {
    this.sent.push(JSON.parse(data) as { type: string })
  }
  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason }
    this.readyState = 3
  }
  addEventListener(type: string, listener: (event: never) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener])
  }
  deliver(message: unknown): void {
    for (const l of this.listeners.get('message') ?? []) (l as (e: { data: unknown }) => void)({ data: JSON.stringify(message) })
  }
  serverClose(code: number, reason = ''): void {
    this.readyState = 3
    for (const l of this.listeners.get('close') ?? []) (l as (e: { code: number; reason: string }) => void)({ code, reason })
  }
}
