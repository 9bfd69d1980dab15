import type { Socket } from 'node:net'

/** A Node `net.Socket` as a Direct-Sockets-shaped pair of WHATWG streams, with backpressure both ways. */
export interface NodeByteStreamSocket {
  readable: ReadableStream<Uint8Array>
  writable: WritableStream<Uint8Array>
  remoteAddress: string
  remotePort: number
  close(): void
}

const READ_HIGH_WATER_BYTES = 64 * 1024

export function fromNodeSocket(socket: Socket): NodeByteStreamSocket {
  // The HTTP layer coalesces its own writes; Nagle would only add delayed-ACK stalls.
  socket.setNoDelay(true)
  let readDone = false
  const readable = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        socket.on('data', (chunk: Buffer) => {
          if (readDone) return
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
          // Stop the socket until the consumer catches up: TCP flow control does the rest.
          if ((controller.desiredSize ?? 0) <= 0) socket.pause()
        })
        socket.on('end', () => {
          if (readDone) return
          readDone = true
          controller.close()
        })
        socket.on('close', () => {
          if (readDone) return
          readDone = true
          controller.error(new Error('socket closed before its end of stream'))
        })
        socket.on('error', (error) => {
          if (readDone) return
          readDone = true
          controller.error(error)
        })
      },
      pull() {
        socket.resume()
      },
      cancel() {
        readDone = true
        socket.destroy()
      },
    },
    { highWaterMark: READ_HIGH_WATER_BYTES, size: (chunk) => chunk.byteLength },
  )
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise<void>((resolve, reject) => {
        socket.write(chunk, (error) => (error ? reject(error) : resolve()))
      })
    },
    close() {
      return new Promise<void>((resolve) => {
        socket.end(resolve)
      })
    },
    abort() {
      socket.destroy()
    },
  })
  return {
    readable,
    writable,
    remoteAddress: socket.remoteAddress ?? '',
    remotePort: socket.remotePort ?? 0,
    close: () => socket.destroy(),
  }
}
