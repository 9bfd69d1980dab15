import type { ByteStreamSocket } from './connection.ts'

/** What a Direct Sockets `TCPSocket` (and Burrow's overlay `TCPSocket`) offers before it is open. */
export interface DirectSocketLike {
  opened: Promise<{ readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array>; remoteAddress?: string; remotePort?: number }>
  close?(): void | Promise<void>
}

export interface OpenedSocket extends ByteStreamSocket {
  remoteAddress?: string
  remotePort?: number
  close(): void | Promise<void>
}

/**
 * Waits for a Direct-Sockets-style socket to open and returns its streams together with its
 * `close()`, the shape `httpFetch`'s `open` and `serveHttp` work with:
 * `httpFetch((host, port) => openedSocket(sockets.connect({ host, port })), url)`.
 */
export async function openedSocket(socket: DirectSocketLike): Promise<OpenedSocket> {
  const info = await socket.opened
  const opened: OpenedSocket = {
    readable: info.readable,
    writable: info.writable,
    close: () => socket.close?.(),
  }
  if (info.remoteAddress !== undefined) opened.remoteAddress = info.remoteAddress
  if (info.remotePort !== undefined) opened.remotePort = info.remotePort
  return opened
}
