// Chromium inside a network namespace, for WebRTC between pages on one machine.
//
// Headless Chromium gathers no ICE candidates when loopback is its only interface (even with
// --allow-loopback-in-peer-connection). Inside a test-made namespace whose veth end carries an
// address and the default route, it gathers a host candidate on the veth and two pages connect
// through it. Playwright
// talks to Chromium over a pipe, so launching it through `ip netns exec` (a wrapper script as the
// executable) costs nothing. Pages are served on the host end of the veth, which the namespace
// reaches; host-only services (a relay on 127.0.0.1) are exposed there with `exposeToNamespace`.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { NetworkNamespace } from '../../test/helpers/netns.ts'
import { CHROMIUM_PATH, launchChromium, startPageServer, type LaunchedBrowser } from './browser.ts'

/** WebRTC switches: show real host addresses (not mDNS names, which nothing resolves in a namespace). */
export const WEBRTC_FLAGS = ['--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection']

export interface NamespacedBrowser {
  namespace: NetworkNamespace
  browser: LaunchedBrowser
  /** Base URL of the page server, on the host end of the veth (reachable from the namespace). */
  pagesUrl: string
  /** Listens on the host end of the veth and forwards each TCP connection to `127.0.0.1:port`. Returns the address to use inside. */
  exposeToNamespace(port: number): Promise<{ host: string; port: number }>
  /** Closes the browser, servers and namespace; safe to call more than once and after a failed start. */
  close(): Promise<void>
}

/**
 * Waits until no IPv6 address in the namespace is still tentative (the veth's link-local one goes
 * through duplicate address detection after the link comes up). Chromium treats the moment it
 * turns valid as a network change and fails every request in flight with ERR_NETWORK_CHANGED,
 * which would break the first page load.
 */
async function waitForSettledAddresses(namespace: NetworkNamespace, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while ((await namespace.run('ip', ['-6', 'addr', 'show', 'tentative'])).trim() !== '') {
    if (Date.now() > deadline) throw new Error(`addresses in ${namespace.name} still tentative after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      const address = server.address()
      if (typeof address === 'object' && address) resolve(address.port)
      else reject(new Error('no port'))
    })
  })
}

/**
 * Creates a namespace (or takes `options.namespace`, whose owner removes it; it must have its IPv4
 * default route via the host already), serves the repository on its veth and launches Chromium inside it.
 */
export async function launchChromiumInNamespace(options: { args?: string[]; namespace?: NetworkNamespace } = {}): Promise<NamespacedBrowser> {
  const cleanups: Array<() => Promise<void> | void> = []
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup()
      } catch {
        // Keep cleaning up the rest.
      }
    }
  }
  try {
    const namespace = options.namespace ?? (await NetworkNamespace.create())
    if (!options.namespace) cleanups.push(() => namespace.cleanup())
    // Without permission to enumerate every interface, Chromium offers host candidates only on the
    // interface of the default route; make that the veth.
    if (!options.namespace) await namespace.run('ip', ['route', 'add', 'default', 'via', namespace.hostAddress])
    await namespace.run('ip', ['-6', 'route', 'replace', 'default', 'via', namespace.hostAddress6])
    await waitForSettledAddresses(namespace)

    const wrapperDir = mkdtempSync(join(tmpdir(), 'burrow-netns-chromium-'))
    cleanups.push(() => rmSync(wrapperDir, { recursive: true, force: true }))
    const wrapper = join(wrapperDir, 'chromium')
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${namespace.name} ${CHROMIUM_PATH} "$@"\n`)
    chmodSync(wrapper, 0o755)

    // A private dependency cache: other test runs' Vite servers share node_modules/.vite and may
    // rewrite it underneath this one's pages.
    const cacheDir = mkdtempSync(join(tmpdir(), 'burrow-netns-vite-'))
    cleanups.push(() => rmSync(cacheDir, { recursive: true, force: true }))
    const pages = await startPageServer({ host: namespace.hostAddress, cacheDir })
    cleanups.push(() => pages.close())
    const pagesUrl = pages.url

    const forwarders: Server[] = []
    const sockets = new Set<Socket>()
    cleanups.push(() => {
      for (const socket of sockets) socket.destroy()
      for (const server of forwarders) server.close()
    })
    const exposeToNamespace = async (port: number): Promise<{ host: string; port: number }> => {
      const server = createServer((inbound) => {
        const outbound = connect(port, '127.0.0.1')
        sockets.add(inbound).add(outbound)
        inbound.pipe(outbound).pipe(inbound)
        const done = (): void => {
          inbound.destroy()
          outbound.destroy()
          sockets.delete(inbound)
          sockets.delete(outbound)
        }
        inbound.on('error', done).on('close', done)
        outbound.on('error', done).on('close', done)
      })
      forwarders.push(server)
      return { host: namespace.hostAddress, port: await listen(server, namespace.hostAddress) }
    }

    // The page origin is plain http on a non-loopback address; treat it as secure like localhost.
    const browser = await launchChromium({
      executablePath: wrapper,
      args: [...WEBRTC_FLAGS, `--unsafely-treat-insecure-origin-as-secure=${pagesUrl}`, ...(options.args ?? [])],
    })
    cleanups.push(() => browser.close())
    return { namespace, browser, pagesUrl, exposeToNamespace, close }
  } catch (error) {
    await close()
    throw error
  }
}

/** Opens `path` (e.g. `e2e/pages/direct.html?x=1`) from the page server and waits for the page to title itself 'ready'. */
export async function openReadyPage(env: NamespacedBrowser, path: string): Promise<Page> {
  const page = await env.browser.newPage()
  await page.goto(`${env.pagesUrl}/${path}`)
  await page
    .waitForFunction(() => document.title === 'ready', undefined, { timeout: 120_000 })
    .catch((error: Error) => {
      throw new Error(`${error.message}\npage errors: ${env.browser.errors.join('\n')}`)
    })
  return page
}
