// ts2021 over an HTTP/1.1 Upgrade (Node only): `POST /ts2021` with the initiation in the
// X-Tailscale-Handshake header; after `101 Switching Protocols` the socket carries the Noise
// stream (controlhttp/client.go, controlhttpserver.acceptHTTP).
import { isIP, connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { Ts2021Dialer } from './dial.ts'
import { HANDSHAKE_HEADER, TS2021_PATH, UPGRADE_PROTOCOL } from './ts2021.ts'

const MAX_RESPONSE_HEAD = 16 * 1024

export function httpUpgradeDialer(): Ts2021Dialer {
  return (controlURL, handshake, handlers) => {
    const url = new URL(controlURL)
    const secure = url.protocol === 'https:'
    if (!secure && url.protocol !== 'http:') throw new TypeError(`control URL must be http(s), got ${url.protocol}`)
    const host = url.hostname.replace(/^\[|\]$/g, '')
    const port = Number(url.port || (secure ? 443 : 80))
    let closed = false
    let upgraded = false
    let head: Uint8Array = new Uint8Array(0)
    let refused: { status: number; statusLine: string } | undefined
    const finish = (reason: string, detail?: { status?: number; body?: string }): void => {
      if (closed) return
      closed = true
      socket.destroy()
      handlers.onClose(reason, detail)
    }
    const socket: Socket = secure ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }) }) : netConnect({ host, port })
    socket.setNoDelay(true)
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      socket.write(
        `POST ${TS2021_PATH} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: ${UPGRADE_PROTOCOL}\r\nConnection: upgrade\r\n` +
          `${HANDSHAKE_HEADER}: ${handshake}\r\nContent-Length: 0\r\nUser-Agent: burrow\r\n\r\n`,
      )
    })
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) return handlers.onData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))
      head = concat(head, chunk)
      if (refused) {
        if (head.length > MAX_RESPONSE_HEAD) finishRefused()
        return
      }
      const end = indexOfHeadEnd(head)
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD) finish('control server HTTP response head too long')
        return
      }
      const statusLine = new TextDecoder().decode(head.subarray(0, end)).split('\r\n')[0] ?? ''
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)
      if (!match || match[1] !== '101') {
        // Keep reading the (short) error body until the server closes, to say what it said.
        refused = { status: match ? Number(match[1]) : 0, statusLine }
        head = head.subarray(end + 4)
        return
      }
      upgraded = true
      const rest = head.subarray(end + 4)
      head = new Uint8Array(0)
      handlers.onOpen()
      if (rest.length > 0 && !closed) handlers.onData(rest)
    })
    const finishRefused = (): void => {
      const body = new TextDecoder().decode(head.subarray(0, 2048)).trim()
      finish(`control server refused the ts2021 upgrade: ${refused!.statusLine}${body ? ` — ${body}` : ''}`, { status: refused!.status, body })
    }
    socket.on('error', (error) => finish(`control connection error: ${error.message}`))
    socket.on('close', () => (refused ? finishRefused() : finish(upgraded ? 'control connection closed' : 'control server closed the connection before answering the upgrade')))
    return {
      send: (bytes) => {
        if (upgraded && !closed) socket.write(bytes)
      },
      close: () => finish('closed locally'),
    }
  }
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
