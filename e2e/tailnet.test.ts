// A Burrow browser tab as a member of a real Headscale tailnet, next to a real tailscaled node:
// Headscale, Tailscale's derper and tailscaled run in a test-made network namespace
// (test/helpers/tailnet.ts), and Chromium runs in the same namespace with the page served from
// the host end of its veth — so the page's origin is not Headscale's. The tab's worker speaks
// ts2021 over WebSocket to Headscale and DERP over WebSocket to derper; its machine, node and
// disco keys are made and kept in the worker (IndexedDB).
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CAPABILITY_VERSION } from '../src/control/tailnet/capver.ts'
import { hasGo, Tailnet, type TailscaledNode, waitUntil } from '../test/helpers/tailnet.ts'
import { startBuiltPageServer } from './helpers/browser.ts'
import { launchChromiumInNamespace, openReadyPage, type NamespacedBrowser } from './helpers/netns-browser.ts'

const isRoot = process.getuid?.() === 0
const FILE_BYTES = 20 * 1024 * 1024

describe.skipIf(!hasGo || !isRoot)('a Burrow tab in a Headscale tailnet with a tailscaled node', () => {
  let tailnet: Tailnet | undefined
  let env: NamespacedBrowser | undefined
  let alpha: TailscaledNode
  let controlKey = ''
  let blobSha = ''
  let tab: Page
  let tabNodeKey = ''

  /** The options every tab joins with: Headscale's URL, its key pinned (no CORS on /key), plain-HTTP DERP. */
  const joinOptions = () => ({ controlURL: tailnet!.controlURL, controlKey, derpOverHTTP: true, direct: false, storage: 'indexeddb' as const })

  beforeAll(async () => {
    tailnet = await Tailnet.start({ derp: 'derper' })
    alpha = await tailnet.addNode({ hostname: 'alpha' })
    const blob = randomBytes(FILE_BYTES)
    blobSha = createHash('sha256').update(blob).digest('hex')
    writeFileSync(join(tailnet.dir, 'blob'), blob)
    // Userspace tailscaled forwards its tailnet address's ports to its own 127.0.0.1.
    tailnet.serveFiles()
    controlKey = ((await (await fetch(`${tailnet.controlURL}/key?v=${CAPABILITY_VERSION}`)).json()) as { publicKey: string }).publicKey
    env = await launchChromiumInNamespace({ namespace: tailnet.namespace })
    tab = await openReadyPage(env, 'e2e/pages/burrow.html')
  }, 900_000)

  afterAll(async () => {
    await env?.close()
    await tailnet?.stop()
  })

  it('Headscale sends no CORS header on /key, so a tab on another origin without controlKey is refused with an error that says to pin it', async () => {
    const response = await fetch(`${tailnet!.controlURL}/key?v=${CAPABILITY_VERSION}`, { headers: { origin: env!.pagesUrl } })
    expect(response.headers.get('access-control-allow-origin')).toBeNull()
    const page = await openReadyPage(env!, 'e2e/pages/burrow.html')
    try {
      const authKey = await tailnet!.createAuthKey()
      const { controlKey: _pinned, ...unpinned } = joinOptions()
      const result = await page.evaluate((options) => window.burrowNodeE2E.start(options), {
        ...unpinned,
        control: 'tailnet' as const,
        authKey,
        hostname: 'nokey',
        storage: 'memory' as const,
      })
      expect(result.ok).toBe(false)
      if (!result.ok) {
        expect(result.error.code).toBe('unreachable')
        expect(result.error.message).toContain("controlKey: 'mkey:…'")
      }
    } finally {
      await page.close()
    }
  })

  it('the tab joins with a pre-auth key: `tailscale status --json` shows it online, and its peers() list alpha by MagicDNS name', async () => {
    const authKey = await tailnet!.createAuthKey()
    const result = await tab.evaluate((options) => window.burrowNodeE2E.start(options), { ...joinOptions(), authKey, hostname: 'tab', keyName: 'tab' })
    expect(result).toMatchObject({ ok: true, hostname: 'tab', state: 'online' })
    if (!result.ok) return
    tabNodeKey = result.nodeKey
    expect(result.addresses[0]).toMatch(/^100\./)
    const seen = await waitUntil('alpha to see the tab online', async () => {
      const peer = await alpha.peer('tab')
      return peer?.Online ? peer : undefined
    })
    expect(seen.DNSName).toBe(`tab.${tailnet!.baseDomain}.`)
    expect(seen.TailscaleIPs).toContain(result.addresses[0])
    const peers = await tab.evaluate(() => window.burrowNodeE2E.peers())
    const alphaPeer = peers.find((p) => p.hostname === 'alpha')
    expect(alphaPeer).toMatchObject({ fqdn: `alpha.${tailnet!.baseDomain}`, addresses: [await alpha.ipv4(), expect.any(String)] })
  })

  it('the tab fetch()es 20 MB from an HTTP server behind tailscaled by MagicDNS name over DERP, SHA-256 exact', async () => {
    const result = await tab.evaluate((url) => window.burrowNodeE2E.fetchDigest(url), `http://alpha.${tailnet!.baseDomain}:8000/blob`)
    expect(result).toMatchObject({ status: 200, bytes: FILE_BYTES, sha256: blobSha })
  })

  it('the tab pings tailscaled (ICMP echo over the tailnet) by short name', async () => {
    const rtt = await tab.evaluate(() => window.burrowNodeE2E.ping('alpha'))
    expect(rtt).toBeGreaterThanOrEqual(0)
  })

  it('tailscale ping of the tab gets a disco pong over DERP', async () => {
    expect(await alpha.ping('tab')).toMatch(/^pong from tab \(100\.[0-9.]+\) via DERP\(/)
  })

  it('the tab started again with the same stored keys (IndexedDB in the worker) rejoins as the same node without an auth key', async () => {
    await tab.evaluate(() => window.burrowNodeE2E.close())
    await tab.reload()
    await tab.waitForFunction(() => document.title === 'ready')
    const result = await tab.evaluate((options) => window.burrowNodeE2E.start(options), { ...joinOptions(), control: 'tailnet' as const, hostname: 'tab', keyName: 'tab' })
    expect(result).toMatchObject({ ok: true, nodeKey: tabNodeKey, hostname: 'tab' })
    expect(await tab.evaluate(() => window.burrowNodeE2E.authURLs())).toEqual([])
    const nodes = await tailnet!.listNodes()
    expect(nodes.filter((n) => (n.given_name ?? n.name) === 'tab')).toHaveLength(1)
  })

  it('built with vite, the worker fetches the tailnet client chunk only when the tab joins a tailnet (not for Burrow’s coordination), and the zstd chunk not at all (Headscale sends plain JSON)', async () => {
    const requested: string[] = []
    const built = await startBuiltPageServer(['e2e/pages/burrow.html'], { host: tailnet!.namespace.hostAddress, onRequest: (path) => requested.push(path) })
    const page = await env!.browser.newPage()
    try {
      await page.goto(`${built.url}/e2e/pages/burrow.html`)
      await page.waitForFunction(() => document.title === 'ready')
      const chunks = () => requested.filter((path) => path.endsWith('.js')).map((path) => path.split('/').pop()!)
      // A join of Burrow's own coordination (at a port where nothing listens: it fails) loads the worker, not the tailnet client.
      const burrowJoin = await page.evaluate(
        (url) => window.burrowNodeE2E.start({ controlURL: url, control: 'burrow', storage: 'memory', direct: false }),
        `http://${tailnet!.namespace.hostAddress}:9`,
      )
      expect(burrowJoin.ok).toBe(false)
      expect(
        chunks().some((name) => name.startsWith('worker-')),
        JSON.stringify(requested),
      ).toBe(true)
      expect(
        chunks().filter((name) => name.startsWith('tailnet-web')),
        JSON.stringify(requested),
      ).toEqual([])
      // An insecure origin (no --unsafely-treat-insecure-origin-as-secure for it): a memory key store, which needs no secure context.
      const authKey = await tailnet!.createAuthKey()
      const result = await page.evaluate((options) => window.burrowNodeE2E.start(options), {
        ...joinOptions(),
        storage: 'memory' as const,
        authKey,
        hostname: 'built',
        keyName: 'built',
      })
      expect(result).toMatchObject({ ok: true, hostname: 'built' })
      expect(
        chunks().filter((name) => name.startsWith('tailnet-web')),
        JSON.stringify(requested),
      ).toHaveLength(1)
      // fzstd's chunk (named after its esm/ folder) is imported only for a zstd map message.
      expect(chunks().filter((name) => name.startsWith('esm-'))).toEqual([])
      await page.evaluate(() => window.burrowNodeE2E.close())
    } finally {
      await page.close()
      await built.close()
    }
  })

  it('interactive login: a tab without an auth key gets an auth-url event with the AuthURL, `headscale auth register` approves it, and the tab comes up', async () => {
    const page = await openReadyPage(env!, 'e2e/pages/burrow.html')
    try {
      // Default options otherwise (direct paths on: tailscaled drops the WebRTC signals it does not know, the relay carries the traffic).
      const { direct: _relayOnly, ...defaults } = joinOptions()
      const started = page.evaluate((options) => window.burrowNodeE2E.start(options), {
        ...defaults,
        control: 'tailnet' as const,
        hostname: 'interactive',
        keyName: 'interactive',
      })
      const urls = await waitUntil('the tab to be given an AuthURL', async () => {
        const shown = await page.evaluate(() => window.burrowNodeE2E.authURLs())
        return shown.length > 0 ? shown : undefined
      })
      expect(urls).toHaveLength(1)
      expect(urls[0]).toMatch(new RegExp(`^${tailnet!.controlURL}/register/[A-Za-z0-9_-]+$`))
      const authId = new URL(urls[0]!).pathname.split('/').pop()!
      await tailnet!.headscale(['auth', 'register', '--auth-id', authId, '--user', 'test'])
      const result = await started
      expect(result).toMatchObject({ ok: true, hostname: 'interactive', state: 'online' })
      const seen = await waitUntil('alpha to see the interactive tab online', async () => {
        const peer = await alpha.peer('interactive')
        return peer?.Online ? peer : undefined
      })
      expect(seen.DNSName).toBe(`interactive.${tailnet!.baseDomain}.`)
      // tailscaled may learn the new node from control a moment after it shows it online: the
      // first pings can go unanswered, so ping until one is.
      const rtt = await waitUntil('alpha to answer the interactive tab’s ping', () => page.evaluate(() => window.burrowNodeE2E.ping('alpha')), 60_000)
      expect(rtt).toBeGreaterThanOrEqual(0)
    } finally {
      await page.close()
    }
  })
})
