// A dedicated worker that sends 1420-byte packets through a relay as fast as the browser's
// WebSocket takes them, pacing itself on bufferedAmount. `messageBytes` sets how many bytes of
// frames may share one WebSocket message (1 = one packet per message).
import { generateKeyPair, parseKey } from '../../src/crypto/index.ts'
import { DerpConnection } from '../../src/underlay/derp/connection.ts'
import { webSocketDialer } from '../../src/underlay/derp/dialer.ts'

interface Start {
  url: string
  destination: string
  messageBytes: number
  durationMs: number
}

self.onmessage = (event: MessageEvent<Start>) => {
  const { url, destination, messageBytes, durationMs } = event.data
  const connection = new DerpConnection({ url, privateKey: generateKeyPair().privateKey, dial: webSocketDialer(), messageBytes })
  const to = parseKey(destination)
  const packet = new Uint8Array(1420).fill(7)
  const channel = new MessageChannel()
  let deadline = 0
  let sent = 0
  // Yield through a MessageChannel: chained zero timers are clamped to 4 ms.
  channel.port1.onmessage = () => {
    if (performance.now() >= deadline) {
      postMessage({ type: 'done', sent })
      connection.close()
      return
    }
    for (let i = 0; i < 512 && connection.bufferedAmount < 4 << 20; i++) {
      connection.send(to, packet)
      sent++
    }
    channel.port2.postMessage(null)
  }
  connection.on('connected', () => {
    deadline = performance.now() + durationMs
    postMessage({ type: 'started' })
    channel.port2.postMessage(null)
  })
  connection.start()
}
