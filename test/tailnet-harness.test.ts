// The tailnet harness itself, proven with Tailscale's own nodes: two tailscaled join a Headscale
// tailnet and `tailscale ping` each other over DERP — once with Tailscale's derper as the tailnet's
// DERP server and once with `burrow relay` in its place (any DERP v2 server works in a DERP map).
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasGo, HEADSCALE_VERSION, Tailnet, TAILSCALE_VERSION, type TailscaledNode, waitUntil } from './helpers/tailnet.ts'

const isRoot = process.getuid?.() === 0

for (const derp of ['derper', 'burrow'] as const) {
  // Skipped without Go (the interop peers are built from source) or root (network namespaces).
  describe.skipIf(!hasGo || !isRoot)(
    `Headscale ${HEADSCALE_VERSION} + tailscaled ${TAILSCALE_VERSION} with ${derp === 'derper' ? "Tailscale's derper" : 'burrow relay'} as DERP`,
    () => {
      let tailnet: Tailnet | undefined
      let a: TailscaledNode
      let b: TailscaledNode

      beforeAll(async () => {
        tailnet = await Tailnet.start({ derp })
        a = await tailnet.addNode({ hostname: 'alpha', socks5Port: 1080, httpProxyPort: 3128 })
        b = await tailnet.addNode({ hostname: 'bravo' })
      }, 900_000) // a fresh machine builds Headscale and Tailscale first (cached afterwards)

      afterAll(async () => {
        await tailnet?.stop()
      })

      it('both nodes see each other online with the harness DERP region as home', async () => {
        const peerOfA = await waitUntil('alpha to see bravo online', async () => {
          const peer = await a.peer('bravo')
          return peer?.Online ? peer : undefined
        })
        expect(peerOfA.DNSName).toBe(`bravo.${tailnet!.baseDomain}.`)
        expect(peerOfA.TailscaleIPs).toContain(await b.ipv4())
        const status = await a.status()
        // Headscale's node list shows both, and alpha's own status names the lab region as its home.
        expect(JSON.stringify(status.Self)).toContain('"Relay":"lab"')
        const nodes = await tailnet!.listNodes()
        expect(nodes.map((n) => n.given_name ?? n.name).sort()).toEqual(['alpha', 'bravo'])
      })

      it('tailscale ping gets a pong over DERP in both directions', async () => {
        const bAddress = await b.ipv4()
        const aAddress = await a.ipv4()
        const ab = await a.ping(bAddress)
        expect(ab).toMatch(/^pong from bravo \(100\.\d+\.\d+\.\d+\) via DERP\(lab\) in /)
        const ba = await b.ping(aAddress)
        expect(ba).toMatch(/^pong from alpha \(100\.\d+\.\d+\.\d+\) via DERP\(lab\) in /)
      })

      it("tailscaled's SOCKS5 and HTTP proxies reach a port behind the other node over DERP, bytes exact", async () => {
        // Userspace tailscaled forwards connections to its tailnet address to the same port on its own 127.0.0.1.
        const body = randomBytes(1 << 20)
        writeFileSync(join(tailnet!.dir, 'blob'), body)
        tailnet!.serveFiles()
        const want = createHash('sha256').update(body).digest('hex')
        const url = `http://${await b.ipv4()}:8000/blob`
        const socks = await waitUntil('the file through SOCKS5', () => a.fetchThroughProxy(url, 'socks5'))
        expect(socks).toEqual({ bytes: body.length, sha256: want })
        expect(await a.fetchThroughProxy(`http://bravo.${tailnet!.baseDomain}:8000/blob`, 'http')).toEqual({ bytes: body.length, sha256: want })
      })
    },
  )
}
