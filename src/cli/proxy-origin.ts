// The proxy origin `burrow start` serves next to the demo: the same host on another port, so a
// proxied app is a different origin from the demo (no access to its DOM, storage or node) yet the
// same site (a cross-site iframe may not register a Service Worker where third-party storage is
// blocked). It serves the Service Worker and the bridge page, and nothing else: no demo, no repo.
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { PUBLIC_DIR } from './build-proxy.ts'

const FILES: Record<string, string> = {
  '/burrow-sw.js': 'text/javascript; charset=utf-8',
  '/burrow-proxy.html': 'text/html; charset=utf-8',
}

export function startProxyOrigin(host: string, port: number, publicDir = PUBLIC_DIR): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]!
    const type = FILES[path]
    if (type && (request.method === 'GET' || request.method === 'HEAD')) {
      let body: Buffer
      try {
        body = readFileSync(join(publicDir, path))
      } catch {
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
        return response.end(`${path} is missing: run npm run build\n`)
      }
      response.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache' })
      return response.end(request.method === 'HEAD' ? undefined : body)
    }
    // Only requests the Service Worker did not take get here (not registered yet, or its page gone).
    const text = path.startsWith('/.burrow/')
      ? `Burrow proxy: ${request.url} reached the server, so no proxy Service Worker handled it. Open the demo first (it starts the proxy), then reload.\n`
      : 'Burrow proxy origin: proxied apps live under /.burrow/<peer>/<port>/.\n'
    response.writeHead(path.startsWith('/.burrow/') ? 503 : 404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
    response.end(text)
  })
  // WebSockets bypass Service Workers; an upgrade from a proxied app must fail, not hang.
  server.on('upgrade', (_request, socket) => {
    socket.end('HTTP/1.1 501 Not Implemented\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nBurrow proxy: WebSocket connections through the proxy are not supported.\n')
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}
