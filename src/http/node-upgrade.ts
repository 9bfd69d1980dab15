// One HTTP/1.1 Upgrade over a Node TCP or TLS socket (Node only), shared by the DERP dialer
// (`Upgrade: DERP`, tailscale derp/derphttp) and the ts2021 control dialer (`Upgrade:
// tailscale-control-protocol`, tailscale control/controlhttp). After `101 Switching Protocols`
// the socket carries the upgraded protocol's bytes (RFC 9110 §7.8, RFC 9112 §9.9 for the head).
import { isIP, connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

/** Longest response head (and refusal body) read before giving up on the server. */
const MAX_RESPONSE_HEAD = 16 * 1024

export interface UpgradeRefusal {
  /** The HTTP status (0 when the status line was not HTTP at all). */
  status: number
  statusLine: string
  /** The start of the response body, which usually says why. */
  body: string
}

export interface UpgradeRequest {
  /** `http:`/`https:` (or `ws:`/`wss:`, the same sockets) URL of the server. */
  url: URL
  method: 'GET' | 'POST'
  path: string
  /** The `Upgrade` header's protocol token. */
  protocol: string
  /** Further header lines, each without CRLF. */
  headers?: readonly string[]
  /** Who the server is, for error messages ("relay", "control server"). */
  serverName: string
}

export interface UpgradeHandlers {
  onOpen(): void
  onData(bytes: Uint8Array): void
  /** Called once, whatever ended the connection; `refused` is set when the server answered other than 101. */
  onClose(reason: string, refused?: UpgradeRefusal): void
}

export interface UpgradedSocket {
  send(bytes: Uint8Array): void
  /** Bytes written but not yet handed to the kernel. */
  readonly bufferedAmount: number
  close(): void
}

export function dialHttpUpgrade(request: UpgradeRequest, handlers: UpgradeHandlers): UpgradedSocket {
  const { url, serverName } = request
  const secure = url.protocol === 'https:' || url.protocol === 'wss:'
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const port = Number(url.port || (secure ? 443 : 80))
  let closed = false
  let upgraded = false
  let head: Uint8Array = new Uint8Array(0)
  let refused: { status: number; statusLine: string; bodyLength: number | undefined; chunked: boolean } | undefined
  const finish = (reason: string, refusal?: UpgradeRefusal): void => {
    if (closed) return
    closed = true
    socket.destroy()
    handlers.onClose(reason, refusal)
  }
  const finishRefused = (): void => {
    const body = new TextDecoder().decode(head.subarray(0, Math.min(2048, refused!.bodyLength ?? 2048))).trim()
    const { status, statusLine } = refused!
    finish(`${serverName} refused the ${request.protocol} upgrade: ${statusLine}${body ? ` — ${body}` : ''}`, { status, statusLine, body })
  }
  const socket: Socket = secure ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }) }) : netConnect({ host, port })
  socket.setNoDelay(true)
  socket.once(secure ? 'secureConnect' : 'connect', () => {
    const lines = [
      `${request.method} ${request.path} HTTP/1.1`,
      `Host: ${url.host}`,
      `Upgrade: ${request.protocol}`,
      'Connection: Upgrade',
      ...(request.headers ?? []),
      'User-Agent: burrow',
    ]
    socket.write(`${lines.join('\r\n')}\r\n\r\n`)
  })
  socket.on('data', (chunk: Buffer) => {
    if (upgraded) return handlers.onData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))
    head = concat(head, chunk)
    if (refused) {
      if (refusalBodyComplete(head, refused) || head.length > MAX_RESPONSE_HEAD) finishRefused()
      return
    }
    const end = indexOfHeadEnd(head)
    if (end < 0) {
      if (head.length > MAX_RESPONSE_HEAD) finish(`${serverName} HTTP response head too long`)
      return
    }
    const headLines = new TextDecoder().decode(head.subarray(0, end)).split('\r\n')
    const statusLine = headLines[0] ?? ''
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)
    if (!match || match[1] !== '101') {
      // Read the (short) error body to say what the server said: up to its Content-Length, the
      // last chunk, or the server closing (a keep-alive server would otherwise leave us waiting).
      const lengthHeader = headLines.find((line) => /^content-length:/i.test(line))
      const chunked = headLines.some((line) => /^transfer-encoding:.*chunked/i.test(line))
      refused = { status: match ? Number(match[1]) : 0, statusLine, bodyLength: lengthHeader ? Number(lengthHeader.split(':')[1]) : undefined, chunked }
      head = head.subarray(end + 4)
      if (refusalBodyComplete(head, refused)) finishRefused()
      return
    }
    upgraded = true
    const rest = head.subarray(end + 4)
    head = new Uint8Array(0)
    handlers.onOpen()
    if (rest.length > 0 && !closed) handlers.onData(rest)
  })
  socket.on('error', (error) => finish(`${serverName} connection error: ${error.message}`))
  socket.on('close', () => (refused ? finishRefused() : finish(upgraded ? `${serverName} connection closed` : `${serverName} closed the connection before answering the upgrade`)))
  return {
    send: (bytes) => {
      if (upgraded && !closed) socket.write(bytes)
    },
    get bufferedAmount() {
      return socket.writableLength
    },
    close: () => finish('closed locally'),
  }
}

function refusalBodyComplete(body: Uint8Array, refused: { bodyLength: number | undefined; chunked: boolean }): boolean {
  if (refused.bodyLength !== undefined) return body.length >= refused.bodyLength
  return refused.chunked && new TextDecoder().decode(body.subarray(Math.max(0, body.length - 7))).endsWith('0\r\n\r\n')
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i
  }
  return -1
}
