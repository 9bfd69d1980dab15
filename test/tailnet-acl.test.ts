// A Headscale ACL policy enforced on both ends: the policy admits TCP port 8001 between the nodes
// and nothing else. tailscaled refuses a SYN to its port 8002 from Burrow (its ACL-drop metric
// counts it), Burrow refuses a SYN to its port 8002 from tailscaled (dropped, counted, logged at
// debug), and port 8001 works in both directions.
import { randomBytes, createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Burrow } from '../src/node.ts'
import { hasGo, Tailnet, type TailscaledNode, waitUntil } from './helpers/tailnet.ts'

const isRoot = process.getuid?.() === 0
const SOCKS5_PORT = 1080
const ALLOWED = 8001
const DENIED = 8002

/** `tailscaled_inbound_dropped_packets_total{reason="acl"}` from `tailscale metrics print` (util/usermetric). */
async function aclDrops(node: TailscaledNode): Promise<number> {
  const text = await node.tailscale(['metrics', 'print'])
  const line = /^tailscaled_inbound_dropped_packets_total\{reason="acl"\} (\d+)$/m.exec(text)
  return line ? Number(line[1]) : 0
}

describe.skipIf(!hasGo || !isRoot)('a Headscale ACL policy (allow TCP 8001, deny the rest) between a Burrow Node peer and tailscaled', () => {
  let tailnet: Tailnet | undefined
  let alpha: TailscaledNode
  let burrow: Burrow | undefined
  const debugLines: string[] = []
  const served: number[] = []
  const body = randomBytes(64 * 1024)
  const sha = createHash('sha256').update(body).digest('hex')

  beforeAll(async () => {
    tailnet = await Tailnet.start({ derp: 'derper', policy: { acls: [{ action: 'accept', src: ['*'], dst: [`*:${ALLOWED}`] }] } })
    alpha = await tailnet.addNode({ hostname: 'alpha', socks5Port: SOCKS5_PORT })
    writeFileSync(join(tailnet.dir, 'body'), body)
    for (const port of [ALLOWED, DENIED]) {
      tailnet.serveFiles(port)
    }
    burrow = await Burrow.start({
      ...(await tailnet.burrowJoin('burrow')),
      debug: (line) => debugLines.push(line),
    })
    for (const port of [ALLOWED, DENIED]) {
      burrow.serve(port, () => {
        served.push(port)
        return new Response(body)
      })
    }
    await waitUntil('Burrow to see alpha', () => burrow!.peers().some((p) => p.hostname === 'alpha'))
    await waitUntil('python to serve both ports', async () => {
      for (const port of [ALLOWED, DENIED]) await tailnet!.namespace.run('curl', ['-sSf', '-o', '/dev/null', `http://127.0.0.1:${port}/body`])
      return true
    })
  }, 900_000)

  afterAll(async () => {
    await burrow?.close()
    await tailnet?.stop()
  })

  it('the allowed port works both ways: Burrow fetches from alpha:8001, tailscaled fetches from Burrow:8001', async () => {
    const response = await burrow!.fetch(`http://${await alpha.ipv4()}:${ALLOWED}/body`)
    expect(response.status).toBe(200)
    expect(
      createHash('sha256')
        .update(new Uint8Array(await response.arrayBuffer()))
        .digest('hex'),
    ).toBe(sha)
    const got = await alpha.fetchThroughProxy(`http://${burrow!.addresses[0]}:${ALLOWED}/body`, 'socks5')
    expect(got).toEqual({ bytes: body.length, sha256: sha })
    expect(served).toContain(ALLOWED)
  })

  it('tailscaled drops a SYN from Burrow to its denied port (its ACL metric counts it), the connection never opens, and the TSMP reject it sends back is dropped and counted by Burrow', async () => {
    const before = await aclDrops(alpha)
    const tsmp = async (): Promise<number> => (await burrow!.status()).counters?.['filter.tsmp'] ?? 0
    const tsmpBefore = await tsmp()
    const socket = burrow!.connect(await alpha.ipv4(), DENIED)
    let opened = false
    socket.opened.then(
      () => (opened = true),
      () => {},
    )
    try {
      await waitUntil('tailscaled to count an ACL drop', async () => (await aclDrops(alpha)) > before, 60_000)
      // net/tstun/wrap.go answers a dropped IPv4 SYN with a TSMP "rejected" packet (IP protocol 99).
      await waitUntil('Burrow to count the TSMP reject', async () => (await tsmp()) > tsmpBefore, 60_000)
      expect(opened).toBe(false)
    } finally {
      void socket.close()
    }
  })

  it('Burrow drops a SYN from tailscaled to its denied port: counted as filtered, logged at debug, the handler never runs, curl fails', async () => {
    const counter = async (): Promise<number> => (await burrow!.status()).counters?.['filter.filtered'] ?? 0
    const before = await counter()
    await expect(alpha.fetchThroughProxy(`http://${burrow!.addresses[0]}:${DENIED}/body`, 'socks5', 20_000)).rejects.toThrow(/curl .* failed/)
    expect(await counter()).toBeGreaterThan(before)
    expect(debugLines.some((line) => new RegExp(`filter: dropped packet .*TCP .*:${DENIED} `).test(line))).toBe(true)
    expect(served).not.toContain(DENIED)
    const peer = (await burrow!.status()).peers.find((p) => (p.drops.filtered ?? 0) > 0)
    expect(peer).toBeDefined()
  })
})
