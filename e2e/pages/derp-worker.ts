// A dedicated worker running Burrow's DERP client over the browser's own WebSocket: it logs in
// and echoes every packet back to its sender, counting the WebSocket messages it writes.
import { formatNodeKey, generateKeyPair } from '../../src/crypto/index.ts'
import { DerpConnection } from '../../src/underlay/derp/connection.ts'
import { type DerpDialer, webSocketDialer } from '../../src/underlay/derp/dialer.ts'

let connection: DerpConnection | undefined
let echoed = 0
let messagesSent = 0

/** The browser WebSocket dialer, counting the messages handed to the socket. */
function countingDialer(): DerpDialer {
  const dial = webSocketDialer()
  return (url, handlers) => {
    const stream = dial(url, handlers)
    return {
      send: (bytes) => {
        messagesSent++
        stream.send(bytes)
      },
      get bufferedAmount() {
        return stream.bufferedAmount
      },
      close: () => stream.close(),
    }
  }
}

self.onmessage = (event: MessageEvent<{ type: 'start'; url: string } | { type: 'stats' }>) => {
  const request = event.data
  if (request.type === 'stats') {
    postMessage({ type: 'stats', echoed, messagesSent })
    return
  }
  const keys = generateKeyPair()
  connection = new DerpConnection({ url: request.url, privateKey: keys.privateKey, dial: countingDialer() })
  connection.on('packet', (source, packet) => {
    connection!.send(source.slice(), packet.slice())
    echoed++
  })
  connection.on('connected', () => postMessage({ type: 'ready', publicKey: formatNodeKey(keys.publicKey), usesNativeWebSocket: typeof WebSocket === 'function' }))
  connection.on('disconnected', (reason) => {
    if (connection!.stats.connects === 0) postMessage({ type: 'failed', message: reason })
  })
  connection.start()
}
