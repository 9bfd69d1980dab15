// ts2021 over an HTTP/1.1 Upgrade (Node only): `POST /ts2021` with the initiation in the
// X-Tailscale-Handshake header; after `101 Switching Protocols` the socket carries the Noise
// stream (controlhttp/client.go, controlhttpserver.acceptHTTP).
import { dialHttpUpgrade } from '../../http/node-upgrade.ts'
import type { Ts2021Dialer } from './dial.ts'
import { HANDSHAKE_HEADER, TS2021_PATH, UPGRADE_PROTOCOL } from './ts2021.ts'

export function httpUpgradeDialer(): Ts2021Dialer {
  return (controlURL, handshake, handlers) => {
    const url = new URL(controlURL)
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`control URL must be http(s), got ${url.protocol}`)
    return dialHttpUpgrade(
      { url, method: 'POST', path: TS2021_PATH, protocol: UPGRADE_PROTOCOL, headers: [`${HANDSHAKE_HEADER}: ${handshake}`, 'Content-Length: 0'], serverName: 'control server' },
      {
        onOpen: () => handlers.onOpen(),
        onData: (bytes) => handlers.onData(bytes),
        onClose: (reason, refused) => handlers.onClose(reason, refused && { status: refused.status, body: refused.body }),
      },
    )
  }
}
