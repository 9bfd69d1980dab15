// Node entry points: `ws` stands in for the WebSocket API that Node 20 lacks.
import WebSocket from 'ws'
import { type DerpDialer, type WebSocketConstructor, webSocketDialer } from './dialer.ts'

export { httpUpgradeDialer } from './http-dialer.ts'

/** `ws` without permessage-deflate: DERP carries WireGuard ciphertext, which does not compress. */
class DerpNodeWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, { perMessageDeflate: false })
  }
}

export function nodeWebSocketDialer(): DerpDialer {
  // 'nodebuffer' hands over each message as a view of the bytes read; 'arraybuffer' would copy it.
  return webSocketDialer(DerpNodeWebSocket as unknown as WebSocketConstructor, { binaryType: 'nodebuffer' })
}
