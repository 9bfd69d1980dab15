// ts2021 transports as byte streams. The WebSocket form works in browsers and Node: the server
// (controlhttp/controlhttpserver acceptWebsocket) treats binary messages as one byte stream, so
// message boundaries mean nothing. Node's HTTP Upgrade form lives in dial-node.ts (node:net).
import { HANDSHAKE_HEADER, TS2021_PATH, UPGRADE_PROTOCOL } from './ts2021.ts'

export interface ByteStreamHandlers {
  /** The transport is up; bytes may be sent. */
  onOpen(): void
  onData(bytes: Uint8Array): void
  /** Called once, whatever ended the stream; `reason` is for people. */
  onClose(reason: string, detail?: { status?: number; body?: string }): void
}

export interface ByteStream {
  send(bytes: Uint8Array): void
  close(): void
}

/** Opens the control transport to `controlURL` carrying `handshake` (std base64 of the initiation). */
export type Ts2021Dialer = (controlURL: string, handshake: string, handlers: ByteStreamHandlers) => ByteStream

interface WebSocketLike {
  binaryType: string
  readyState: number
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}
export type WebSocketConstructor = new (url: string, protocols: string | string[]) => WebSocketLike

/** `http(s)://host[:port]` → `ws(s)://host[:port]/ts2021?X-Tailscale-Handshake=…`. */
export function ts2021WebSocketUrl(controlURL: string, handshake: string): string {
  const url = new URL(controlURL)
  if (url.protocol === 'http:') url.protocol = 'ws:'
  else if (url.protocol === 'https:') url.protocol = 'wss:'
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`control URL must be http(s), got ${url.protocol}`)
  url.pathname = TS2021_PATH
  url.search = `?${HANDSHAKE_HEADER}=${encodeURIComponent(handshake)}`
  return url.toString()
}

/** The WebSocket dialer; `Impl` defaults to the global WebSocket (every browser, Node ≥ 22). */
export function webSocketDialer(Impl?: WebSocketConstructor): Ts2021Dialer {
  return (controlURL, handshake, handlers) => {
    const Ctor = Impl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (!Ctor) throw new TypeError('no WebSocket implementation: pass one (e.g. the ws package) to webSocketDialer')
    const socket = new Ctor(ts2021WebSocketUrl(controlURL, handshake), UPGRADE_PROTOCOL)
    socket.binaryType = 'arraybuffer'
    let closed = false
    const finish = (reason: string): void => {
      if (closed) return
      closed = true
      try {
        socket.close()
      } catch {
        // already closing
      }
      handlers.onClose(reason)
    }
    socket.onopen = () => handlers.onOpen()
    socket.onmessage = (event) => {
      const data = event.data
      if (data instanceof ArrayBuffer) handlers.onData(new Uint8Array(data))
      else if (ArrayBuffer.isView(data)) handlers.onData(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
      else finish('control WebSocket sent a text message (ts2021 is binary only)')
    }
    socket.onerror = () => finish('control WebSocket error')
    socket.onclose = (event) => finish(`control WebSocket closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`)
    return {
      send: (bytes) => {
        if (!closed) socket.send(bytes)
      },
      close: () => finish('closed locally'),
    }
  }
}
