// Node entry points: `ws` stands in for the WebSocket API that Node 20 lacks.
import WebSocket from 'ws'
import { type DerpDialer, type WebSocketConstructor, webSocketDialer } from './dialer.ts'

export { httpUpgradeDialer } from './http-dialer.ts'

export function nodeWebSocketDialer(): DerpDialer {
  return webSocketDialer(WebSocket as unknown as WebSocketConstructor)
}
