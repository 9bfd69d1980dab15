// A Burrow Node peer as a member of a real Headscale tailnet, next to a real tailscaled node,
// everything over the tailnet's DERP server (Tailscale's derper): it registers with a pre-auth
// key, Headscale and tailscaled see it online, and it fetches from and pings the tailscaled node.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Burrow } from '../src/node.ts'
import { spawnBurrow } from './helpers/burrow-process.ts'
import { GiveUp, hasGo, Tailnet, type TailscaledNode, waitUntil } from './helpers/tailnet.ts'

const isRoot = process.getuid?.() === 0
const FILE_BYTES = 20 * 1024 * 1024
const SOCKS5_PORT = 1080
const HTTP_PROXY_PORT = 1081

describe.skipIf(!hasGo || !isRoot)('a Burrow Node peer in a Headscale tailnet with a tailscaled node', () => {
  let tailnet: Tailnet | undefined
  let alpha: TailscaledNode
  let burrow: Burrow | undefined
  let blobSha = ''
  let blobBody = new ArrayBuffer(0)
  const debugLines: string[] = []

  beforeAll(async () => {
    tailnet = await Tailnet.start({ derp: 'derper' })
    alpha = await tailnet.addNode({ hostname: 'alpha', socks5Port: SOCKS5_PORT, httpProxyPort: HTTP_PROXY_PORT })
    // A file behind alpha: userspace tailscaled forwards its tailnet address's ports to its own 127.0.0.1.
    const blob = randomBytes(FILE_BYTES)
    blobBody = blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.byteLength) as ArrayBuffer
    blobSha = createHash('sha256').update(blob).digest('hex')
    writeFileSync(join(tailnet.dir, 'blob'), blob)
    tailnet.serveFiles()
    burrow = await Burrow.start({
      ...(await tailnet.burrowJoin('burrow')),
      debug: (line) => debugLines.push(line),
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

  it('tailscale ping of the Burrow node, by name and by its 100.x address, gets disco pongs over DERP', async () => {
    const before = (await burrow!.status()).counters?.['disco.derp.pingsAnswered'] ?? 0
    const byName = await alpha.ping('burrow')
    expect(byName).toMatch(/^pong from burrow \(100\.[0-9.]+\) via DERP\(lab\)/)
    const byAddress = await alpha.ping(burrow!.addresses[0]!)
    expect(byAddress).toMatch(/^pong from burrow \(100\.[0-9.]+\) via DERP\(lab\)/)
    const after = (await burrow!.status()).counters?.['disco.derp.pingsAnswered'] ?? 0
    expect(after).toBeGreaterThanOrEqual(before + 2)
    expect(debugLines.some((line) => /disco: ping over DERP region 900 answered/.test(line))).toBe(true)
  })

  it('a TSMP ping (IP protocol 99) from tailscaled is dropped and counted by Burrow, with a debug line, and gets no answer', async () => {
    const counter = async (): Promise<number> => (await burrow!.status()).counters?.['filter.tsmp'] ?? 0
    const before = await counter()
    await expect(alpha.ping('burrow', { tsmp: true, attempts: 2 })).rejects.toThrow(/no pong/)
    await waitUntil('Burrow to count the TSMP packets', async () => (await counter()) > before)
    expect(debugLines.some((line) => /filter: dropped TSMP packet/.test(line))).toBe(true)
  })

  it('tailscaled downloads 20 MB from a serve() port of the Burrow node through its SOCKS5 and its HTTP proxy, SHA-256 exact', async () => {
    const server = burrow!.serve(8080, () => new Response(blobBody))
    try {
      for (const via of ['socks5', 'http'] as const) {
        const got = await alpha.fetchThroughProxy(`http://${burrow!.addresses[0]}:8080/blob`, via, 240_000)
        expect(got).toEqual({ bytes: FILE_BYTES, sha256: blobSha })
      }
    } finally {
      await server.close()
    }
  }, 300_000)

  it('`burrow up --control URL --authkey KEY --serve PORT=…` joins Headscale unchanged, answers tailscale ping, and tailscaled downloads 20 MB through it, SHA-256 exact', async () => {
    // The local service `burrow up` bridges its overlay port to.
    const local = createServer((_request, response) => {
      response.writeHead(200, { 'content-length': String(FILE_BYTES) })
      response.end(Buffer.from(blobBody))
    })
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve))
    const stateDir = mkdtempSync(join(tmpdir(), 'burrow-up-tailnet-'))
    const up = spawnBurrow(
      [
        'up',
        '--control',
        tailnet!.controlURL,
        '--authkey',
        await tailnet!.createAuthKey(),
        '--hostname',
        'burrowup',
        '--serve',
        `8090=127.0.0.1:${(local.address() as AddressInfo).port}`,
        '--state-dir',
        stateDir,
        '--no-direct',
      ],
      // The harness's derper has no TLS: plain-HTTP DERP, switched on the way tailscaled does it.
      { TS_DEBUG_USE_DERP_HTTP: '1' },
    )
    try {
      const joined = await waitUntil(
        '`burrow up` to join',
        () => {
          if (up.proc.exitCode !== null) throw new GiveUp(`burrow up exited ${up.proc.exitCode}: ${up.stderr()}`)
          return up.logs.find((line) => line.msg === 'up')
        },
        120_000,
      )
      const address = (joined.addresses as string[])[0]!
      expect(address).toMatch(/^100\./)
      await waitUntil('alpha to see burrowup online', async () => (await alpha.peer('burrowup'))?.Online === true, 60_000)
      expect(await alpha.ping('burrowup')).toMatch(/^pong from burrowup \(100\.[0-9.]+\) via DERP\(lab\)/)
      for (const via of ['socks5', 'http'] as const) {
        const got = await alpha.fetchThroughProxy(`http://${address}:8090/blob`, via, 240_000)
        expect(got).toEqual({ bytes: FILE_BYTES, sha256: blobSha })
      }
    } finally {
      up.proc.kill('SIGTERM')
      await up.exited
      local.close()
      rmSync(stateDir, { recursive: true, force: true })
    }
  }, 600_000)
})
