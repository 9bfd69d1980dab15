// What a DERP connection needs from a byte stream, and the WebSocket implementation of it (browser
// WebSocket, or `ws` in Node, which has no global WebSocket before v22).

export interface DerpStreamHandlers {
  onOpen(): void
  onData(bytes: Uint8Array): void
  /** Called once, whether the stream failed to open, broke, or was closed by either side. */
  onClose(reason: string): void
}

export interface DerpStream {
  send(bytes: Uint8Array): void
  /** Bytes accepted by `send` but not yet handed to the network. */
  readonly bufferedAmount: number
  close(): void
}

/** Opens a byte stream to a relay URL (`http(s)://host[:port]/derp` or `ws(s)://…`). */
export type DerpDialer = (url: string, handlers: DerpStreamHandlers) => DerpStream

/** The part of the WebSocket API that DERP uses; both the browser's WebSocket and `ws` have it. */
export interface WebSocketLike {
  binaryType: string
  readonly bufferedAmount: number
  readonly readyState: number
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

export class DerpUrlError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DerpUrlError'
  }
}

/** `http://h/derp` → `ws://h/derp`; a bare origin gets the `/derp` path. */
export function webSocketUrl(url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new DerpUrlError(`not a relay URL: ${JSON.stringify(url)}`)
  }
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[parsed.protocol]
  if (!scheme) throw new DerpUrlError(`relay URL must be http(s) or ws(s), got ${parsed.protocol}`)
  parsed.protocol = scheme
  if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = '/derp'
  return parsed.toString()
}

/**
 * The largest WebSocket message Tailscale's DERP server reads. derper accepts WebSocket DERP with
 * github.com/coder/websocket (`derp/derpserver/websocket.go`, tailscale.com v1.102.x) and never
 * calls `SetReadLimit`, so the library's default read limit of 32768 bytes applies: a longer
 * message fails the read ("websocket: message too big: read limited at 32769 bytes") and derper
 * drops the connection, with every packet queued behind it. The socket is a byte stream to DERP
 * (`wsconn.NetConn`), so a longer write is simply split across messages.
 */
export const DERP_WEBSOCKET_MESSAGE_LIMIT = 32768

export interface WebSocketDialerOptions {
  /** Longest message sent; longer writes are split (default DERP_WEBSOCKET_MESSAGE_LIMIT, what derper reads). */
  maxMessageBytes?: number
  /**
   * How the implementation delivers binary messages: 'arraybuffer' (browsers) or an implementation's
   * own type of Uint8Array view (`ws`: 'nodebuffer', which spares a copy of every message).
   */
  binaryType?: string
}

/** DERP over WebSocket: subprotocol `derp`, binary messages, the socket treated as a byte stream. */
export function webSocketDialer(WebSocketImpl: WebSocketConstructor = globalThis.WebSocket as unknown as WebSocketConstructor, options: WebSocketDialerOptions = {}): DerpDialer {
  const binaryType = options.binaryType ?? 'arraybuffer'
  const maxMessageBytes = options.maxMessageBytes ?? DERP_WEBSOCKET_MESSAGE_LIMIT
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1) throw new DerpUrlError(`maxMessageBytes must be a positive whole number, got ${maxMessageBytes}`)
  if (!WebSocketImpl) throw new DerpUrlError('no WebSocket implementation: pass one (e.g. `ws` in Node 20)')
  return (url, handlers) => {
    let closed = false
    const finish = (reason: string): void => {
      if (closed) return
      closed = true
      handlers.onClose(reason)
    }
    let ws: WebSocketLike
    try {
      ws = new WebSocketImpl(webSocketUrl(url), 'derp')
    } catch (error) {
      queueMicrotask(() => finish(`cannot open WebSocket: ${(error as Error).message}`))
      return { send() {}, bufferedAmount: 0, close() {} }
    }
    ws.binaryType = binaryType
    ws.onopen = () => handlers.onOpen()
    ws.onmessage = (event) => {
      const data = event.data
      if (data instanceof ArrayBuffer) handlers.onData(new Uint8Array(data))
      else if (ArrayBuffer.isView(data)) handlers.onData(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
      else {
        finish('relay sent a text WebSocket message (DERP is binary only)')
        ws.close(1003, 'binary only')
      }
    }
    ws.onerror = () => finish('WebSocket error')
    ws.onclose = (event) => finish(`WebSocket closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`)
    return {
      send: (bytes) => {
        if (ws.readyState !== 1) return
        if (bytes.length <= maxMessageBytes) ws.send(bytes)
        else for (let offset = 0; offset < bytes.length; offset += maxMessageBytes) ws.send(bytes.subarray(offset, offset + maxMessageBytes))
      },
      get bufferedAmount() {
        return ws.bufferedAmount
      },
      close: () => {
        finish('closed locally')
        try {
          ws.close(1000, 'bye')
        } catch {
          // Closing a socket that never opened may throw in some implementations; it is gone either way.
        }
      },
    }
  }
}
