// A Burrow Node peer as a member of a real Headscale tailnet, next to a real tailscaled node,
// everything over the tailnet's DERP server (Tailscale's derper): it registers with a pre-auth
// key, Headscale and tailscaled see it online, and it fetches from and pings the tailscaled node.
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Burrow } from '../src/node.ts'
import { hasGo, Tailnet, type TailscaledNode, waitUntil } from './helpers/tailnet.ts'

const isRoot = process.getuid?.() === 0
const FILE_BYTES = 20 * 1024 * 1024

describe.skipIf(!hasGo || !isRoot)('a Burrow Node peer in a Headscale tailnet with a tailscaled node', () => {
  let tailnet: Tailnet | undefined
  let alpha: TailscaledNode
  let burrow: Burrow | undefined
  let blobSha = ''

  beforeAll(async () => {
    tailnet = await Tailnet.start({ derp: 'derper' })
    alpha = await tailnet.addNode({ hostname: 'alpha' })
    // A file behind alpha: userspace tailscaled forwards its tailnet address's ports to its own 127.0.0.1.
    const blob = randomBytes(FILE_BYTES)
    blobSha = createHash('sha256').update(blob).digest('hex')
    writeFileSync(join(tailnet.dir, 'blob'), blob)
    tailnet.namespace.spawn('python3', ['-m', 'http.server', '8000', '--bind', '127.0.0.1', '--directory', tailnet.dir])
    burrow = await Burrow.start({
      controlURL: tailnet.controlURL,
      authKey: await tailnet.createAuthKey(),
      hostname: 'burrow',
      storage: 'memory',
      derpOverHTTP: true,
      direct: false,
    })
  }, 900_000)

  afterAll(async () => {
    await burrow?.close()
    await tailnet?.stop()
  })

  it('joins with a pre-auth key: Headscale lists it, tailscaled sees it online, and it sees tailscaled', async () => {
    expect(burrow!.peers().map((p) => p.hostname)).toContain('alpha')
    const nodes = await tailnet!.listNodes()
    expect(nodes.map((n) => n.given_name ?? n.name).sort()).toEqual(['alpha', 'burrow'])
    const seen = await waitUntil('alpha to see burrow online', async () => {
      const peer = await alpha.peer('burrow')
      return peer?.Online ? peer : undefined
    })
    expect(seen.DNSName).toBe(`burrow.${tailnet!.baseDomain}.`)
  })

  it('Burrow fetches 20 MB from an HTTP server behind tailscaled over DERP, SHA-256 exact, by address and by MagicDNS name', async () => {
    const address = await alpha.ipv4()
    for (const host of [address, 'alpha', `alpha.${tailnet!.baseDomain}`]) {
      const response = await burrow!.fetch(`http://${host}:8000/blob`)
      expect(response.status).toBe(200)
      const body = new Uint8Array(await response.arrayBuffer())
      expect(body.length).toBe(FILE_BYTES)
      expect(createHash('sha256').update(body).digest('hex')).toBe(blobSha)
    }
  })

  it('Burrow pings the tailscaled node (ICMP echo over the tailnet)', async () => {
    const rtt = await burrow!.ping(await alpha.ipv4(), { timeout: 10_000 })
    expect(rtt).toBeGreaterThanOrEqual(0)
  })
})
