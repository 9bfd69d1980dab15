// DERP over a raw TCP (or TLS) connection with an HTTP/1.1 `Upgrade: DERP` (Node only;
// tailscale derp/derphttp/derphttp_client.go).
import { dialHttpUpgrade } from '../../http/node-upgrade.ts'
import { type DerpDialer, DerpUrlError } from './dialer.ts'

export function httpUpgradeDialer(): DerpDialer {
  return (url, handlers) => {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new DerpUrlError(`not a relay URL: ${JSON.stringify(url)}`)
    }
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol)) throw new DerpUrlError(`relay URL must be http(s), got ${parsed.protocol}`)
    const path = parsed.pathname === '/' || parsed.pathname === '' ? '/derp' : parsed.pathname
    return dialHttpUpgrade(
      { url: parsed, method: 'GET', path, protocol: 'DERP', serverName: 'relay' },
      { onOpen: () => handlers.onOpen(), onData: (bytes) => handlers.onData(bytes), onClose: (reason) => handlers.onClose(reason) },
    )
  }
}
