// DERP over a raw TCP (or TLS) connection with an HTTP/1.1 `Upgrade: DERP` (Node only).
import { isIP, connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { type DerpDialer, DerpUrlError } from './dialer.ts'

const MAX_RESPONSE_HEAD = 16 * 1024

export function httpUpgradeDialer(): DerpDialer {
  return (url, handlers) => {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new DerpUrlError(`not a relay URL: ${JSON.stringify(url)}`)
    }
    const secure = parsed.protocol === 'https:' || parsed.protocol === 'wss:'
    if (!secure && parsed.protocol !== 'http:' && parsed.protocol !== 'ws:') throw new DerpUrlError(`relay URL must be http(s), got ${parsed.protocol}`)
    const host = parsed.hostname.replace(/^\[|\]$/g, '')
    const port = Number(parsed.port || (secure ? 443 : 80))
    const path = parsed.pathname === '/' || parsed.pathname === '' ? '/derp' : parsed.pathname
    let closed = false
    let upgraded = false
    let head = new Uint8Array(0)
    const finish = (reason: string): void => {
      if (closed) return
      closed = true
      socket.destroy()
      handlers.onClose(reason)
    }
    const socket: Socket = secure ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }) }) : netConnect({ host, port })
    socket.setNoDelay(true)
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${parsed.host}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nUser-Agent: burrow\r\n\r\n`)
    })
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) {
        handlers.onData(chunk)
        return
      }
      const merged = new Uint8Array(head.length + chunk.length)
      merged.set(head)
      merged.set(chunk, head.length)
      head = merged
      const end = indexOfHeadEnd(head)
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD) finish('relay HTTP response head too long')
        return
      }
      const status = new TextDecoder().decode(head.subarray(0, end)).split('\r\n')[0] ?? ''
      if (!/^HTTP\/1\.[01] 101\b/.test(status)) {
        finish(`relay refused the DERP upgrade: ${status}`)
        return
      }
      upgraded = true
      const rest = head.subarray(end + 4)
      head = new Uint8Array(0)
      handlers.onOpen()
      if (rest.length > 0 && !closed) handlers.onData(rest)
    })
    socket.on('error', (error) => finish(`relay connection error: ${error.message}`))
    socket.on('close', () => finish('relay connection closed'))
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
}

function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i
  }
  return -1
}
