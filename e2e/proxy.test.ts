// node.proxy() as a demo user meets it: `burrow start` (relay + demo), `burrow up --serve` exposing
// a real multi-file web app from Node, and the demo's Browse panel opening that app in an iframe
// through the Service Worker proxy, on real Chromium.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CDPSession, Frame, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../test/helpers/relay-process.ts'
import { launchChromium, REPO_ROOT, type LaunchedBrowser } from './helpers/browser.ts'
import { startBurrowStart, type BurrowStart } from './helpers/burrow-start.ts'
import { type BurrowProcess, spawnBurrow } from '../test/helpers/burrow-process.ts'

const OUTPUT_DIR = process.env.BURROW_E2E_OUTPUT ?? join(REPO_ROOT, '.cache', 'e2e')
// A valid 1×1 PNG (one opaque pixel).
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64')
const BIG_BYTES = 200 * 1024 * 1024

const APP_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>private app</title><link rel="stylesheet" href="/style.css"></head>
<body>
  <h1>Private app</h1>
  <img id="logo" src="/logo.png" alt="logo">
  <p id="api">waiting</p>
  <form id="form" method="POST" action="/submit"><input name="msg" value="hello form"><button id="send">send</button></form>
  <script src="/app.js"></script>
</body></html>`
const APP_JS = `fetch('/api/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: 42 }) })
  .then((r) => r.json()).then((j) => { document.getElementById('api').textContent = JSON.stringify(j) })
  .catch((e) => { document.getElementById('api').textContent = 'failed: ' + e })`

let start: BurrowStart
let app: Server
let up: BurrowProcess
let upState: string
const received: Array<{ method: string; url: string; body: string; cookie?: string }> = []
let browser: LaunchedBrowser
let demo: Page

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => resolve(Buffer.concat(chunks).toString()))
    request.on('error', reject)
  })
}

function startApp(): Promise<Server> {
  const server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request)
      received.push({ method: request.method!, url: request.url!, body, ...(request.headers.cookie ? { cookie: request.headers.cookie } : {}) })
      const send = (status: number, type: string, content: string | Buffer, extra: Record<string, string> = {}): void => {
        response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(content), ...extra })
        response.end(content)
      }
      const path = request.url!.split('?')[0]
      if (path === '/') return send(200, 'text/html; charset=utf-8', APP_HTML)
      if (path === '/style.css') return send(200, 'text/css', 'body { background: rgb(1, 2, 3); color: white }')
      if (path === '/logo.png' || path === '/favicon.ico') return send(200, 'image/png', PNG)
      if (path === '/app.js') return send(200, 'text/javascript', APP_JS)
      if (path === '/api/x') return send(200, 'application/json', JSON.stringify({ method: request.method, body, cookie: request.headers.cookie ?? null }))
      if (path === '/submit') {
        response.writeHead(303, { location: '/done', 'set-cookie': 'session=abc123; Path=/; HttpOnly', 'content-length': 0 })
        return response.end()
      }
      if (path === '/absolute-redirect') {
        response.writeHead(302, { location: 'http://laptop/done?from=absolute', 'content-length': 0 })
        return response.end()
      }
      if (path === '/done') return send(200, 'text/html', `<!doctype html><p id="done">cookie=${request.headers.cookie ?? ''}</p>`)
      if (path === '/hello') return send(200, 'text/plain', 'hello through the proxy')
      if (path === '/big') {
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG_BYTES })
        const chunk = Buffer.alloc(256 * 1024, 0x5a)
        let sent = 0
        const pump = (): void => {
          while (sent < BIG_BYTES) {
            sent += chunk.length
            if (!response.write(chunk)) return void response.once('drain', pump)
          }
          response.end()
        }
        return pump()
      }
      send(404, 'text/plain', 'not here')
    })()
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

/** Opens the demo and waits until it is online and its proxy is ready. */
async function openDemo(): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(start.demoURL)
  await page.waitForFunction(() => / · online$/.test(document.getElementById('self')?.textContent ?? ''), undefined, { timeout: 60_000 })
  await page.waitForFunction(() => /Proxy ready|did not start/.test(document.getElementById('browse-status')!.textContent!), undefined, { timeout: 30_000 })
  const status = (await page.textContent('#browse-status'))!
  if (!status.startsWith('Proxy ready')) throw new Error(status)
  return page
}

async function browse(page: Page, path: string): Promise<Frame> {
  await page.waitForFunction(() => [...document.querySelectorAll<HTMLOptionElement>('#browse-peer option')].some((o) => o.value === 'laptop'), undefined, { timeout: 30_000 })
  await page.selectOption('#browse-peer', 'laptop')
  await page.fill('#browse-port', '80')
  await page.fill('#browse-path', path)
  await page.click('#browse-open')
  await page.waitForFunction((wanted) => (document.getElementById('browse-frame') as HTMLIFrameElement).src.endsWith(wanted), `/.burrow/laptop/80${path}`)
  const deadline = Date.now() + 30_000
  for (;;) {
    const frame = page.frames().find((f) => f.url().endsWith(`/.burrow/laptop/80${path}`))
    if (frame) return frame
    if (Date.now() > deadline)
      throw new Error(
        `the Browse iframe never loaded; frames: ${page
          .frames()
          .map((f) => f.url())
          .join(', ')}`,
      )
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

beforeAll(async () => {
  mkdirSync(OUTPUT_DIR, { recursive: true })
  start = await startBurrowStart()
  app = await startApp()
  upState = mkdtempSync(join(tmpdir(), 'burrow-e2e-proxy-up-'))
  up = spawnBurrow([
    'up',
    '--control',
    start.controlURL,
    '--authkey',
    start.authKey,
    '--hostname',
    'laptop',
    '--state-dir',
    upState,
    '--serve',
    `80=127.0.0.1:${(app.address() as AddressInfo).port}`,
  ])
  await waitFor('burrow up to join', () => up.logs.some((l) => l.msg === 'up'), 30_000)
  browser = await launchChromium()
  demo = await openDemo()
}, 180_000)

afterAll(async () => {
  await browser?.close()
  if (up && up.proc.exitCode === null) {
    up.proc.kill('SIGTERM')
    await up.exited
  }
  app?.closeAllConnections()
  app?.close()
  await start?.stop()
  if (upState) rmSync(upState, { recursive: true, force: true })
})

describe('the Service Worker proxy, through the demo Browse panel', () => {
  it('serves a multi-file app: image decodes, CSS applies, script and form reach the server, redirect stays in the prefix, cookie round-trips without touching the embedding page', async () => {
    const frame = await browse(demo, '/')
    const proxyOrigin = new URL(frame.url()).origin
    expect(proxyOrigin).not.toBe(new URL(start.demoURL).origin)
    await frame.waitForFunction(
      () => (document.getElementById('logo') as HTMLImageElement | null)?.complete === true && document.getElementById('api')!.textContent !== 'waiting',
      undefined,
      { timeout: 30_000 },
    )
    expect(await frame.evaluate(() => (document.getElementById('logo') as HTMLImageElement).naturalWidth)).toBeGreaterThan(0)
    expect(await frame.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(1, 2, 3)')
    expect(JSON.parse((await frame.textContent('#api'))!)).toEqual({ method: 'POST', body: '{"n":42}', cookie: null })
    expect(received.find((r) => r.url === '/api/x')).toMatchObject({ method: 'POST', body: '{"n":42}' })

    // The form posts, the server answers 303 /done with a cookie: the frame lands inside the prefix.
    await frame.click('#send')
    const done = await (async () => {
      const deadline = Date.now() + 30_000
      for (;;) {
        const found = demo.frames().find((f) => f.url().includes('/.burrow/laptop/80/done'))
        if (found) return found
        if (Date.now() > deadline)
          throw new Error(
            `no frame reached /done: ${demo
              .frames()
              .map((f) => f.url())
              .join(', ')}`,
          )
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    })()
    expect(new URL(done.url()).pathname).toBe('/.burrow/laptop/80/done')
    await done.waitForSelector('#done')
    expect(await done.textContent('#done')).toBe('cookie=session=abc123')
    expect(received.find((r) => r.url === '/submit')).toMatchObject({ method: 'POST', body: 'msg=hello+form' })

    // The cookie went back with the app's next API call, and nowhere near the browser's own jar.
    const api = await done.evaluate(async () => (await fetch('/api/x', { method: 'POST', body: 'again' })).json())
    expect(api).toEqual({ method: 'POST', body: 'again', cookie: 'session=abc123' })
    expect(await demo.evaluate(() => document.cookie)).not.toContain('session')
    expect((await browser.context.cookies()).map((c) => c.name)).not.toContain('session')

    // An absolute http://laptop/… Location is rewritten into the prefix too.
    const redirected = await done.evaluate(async () => {
      const response = await fetch('/absolute-redirect')
      return { url: response.url, text: await response.text() }
    })
    expect(new URL(redirected.url).pathname).toBe('/.burrow/laptop/80/done')
    expect(redirected.text).toContain('cookie=session=abc123')

    // A ReadableStream upload (over 1 MiB, so the worker streams it on rather than buffering it).
    const streamed = await done.evaluate(async () => {
      const part = new TextEncoder().encode('x'.repeat(64 * 1024))
      let left = 40
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (left-- === 0) controller.close()
          else controller.enqueue(part)
        },
      })
      try {
        const response = await fetch('/api/x', { method: 'POST', body, duplex: 'half' } as RequestInit)
        return ((await response.json()) as { body: string }).body.length
      } catch (error) {
        return String(error)
      }
    })
    expect(streamed).toBe(40 * 64 * 1024)

    // WebSockets cannot go through a Service Worker: the app gets an error at once, not a hang.
    const ws = await done.evaluate(
      () =>
        new Promise<string>((resolve) => {
          const socket = new WebSocket(`${location.origin.replace('http', 'ws')}/.burrow/laptop/80/ws`)
          socket.onerror = () => resolve('error')
          socket.onopen = () => resolve('open')
          setTimeout(() => resolve('hung'), 10_000)
        }),
    )
    expect(ws).toBe('error')
    // The proxied app cannot reach the embedding page or its node.
    const reach = await done.evaluate(() => {
      try {
        return String((window.parent as unknown as { burrowNode?: unknown }).burrowNode)
      } catch (error) {
        return (error as Error).name
      }
    })
    expect(reach).toBe('SecurityError')
    // The only console errors are the ones this test provoked (the refused WebSocket).
    expect(browser.errors.filter((e) => !/WebSocket|Content Security Policy/.test(e))).toEqual([])
  }, 120_000)

  it('after the browser stops the idle worker, the next request restarts it, gets a port from the open page and still sends the peer’s cookie', async () => {
    const frame = await browse(demo, '/done')
    expect(await frame.textContent('#done')).toBe('cookie=session=abc123')
    const cdp = await demo.context().newCDPSession(demo)
    const statuses: string[] = []
    cdp.on('ServiceWorker.workerVersionUpdated', (event: { versions: Array<{ scriptURL: string; runningStatus: string }> }) => {
      for (const version of event.versions) if (version.scriptURL.includes('/burrow-sw.js')) statuses.push(version.runningStatus)
    })
    await cdp.send('ServiceWorker.enable')
    await cdp.send('ServiceWorker.stopAllWorkers')
    await waitFor('the proxy worker to stop', () => statuses.at(-1) === 'stopped', 10_000)
    // The restarted worker has no ports (they lived in its memory) and an empty jar until it reads Cache Storage.
    const api = await frame.evaluate(async () => {
      const response = await fetch('/api/x', { method: 'POST', body: 'after restart' })
      return { status: response.status, body: response.status === 200 ? await response.json() : await response.text() }
    })
    expect(api).toEqual({ status: 200, body: { method: 'POST', body: 'after restart', cookie: 'session=abc123' } })
    expect(statuses.at(-1)).toBe('running')
    await cdp.detach()
  }, 120_000)

  it('streams a 200 MB download through the proxy with the page heap, array buffers included, under 100 MB', async () => {
    const frame = await browse(demo, '/hello')
    const cdp: CDPSession = await demo.context().newCDPSession(demo)
    let peakHeap = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        // usedSize alone leaves out ArrayBuffer contents (backingStorageSize), where buffered chunks would sit.
        const usage = (await cdp.send('Runtime.getHeapUsage').catch(() => ({}))) as { usedSize?: number; embedderHeapUsedSize?: number; backingStorageSize?: number }
        peakHeap = Math.max(peakHeap, (usage.usedSize ?? 0) + (usage.embedderHeapUsedSize ?? 0) + (usage.backingStorageSize ?? 0))
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    })()
    const result = await frame.evaluate(async () => {
      const started = performance.now()
      const response = await fetch('/big')
      const reader = response.body!.getReader()
      let bytes = 0
      let wrong = 0
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        bytes += value.length
        if (value[0] !== 0x5a || value[value.length - 1] !== 0x5a) wrong++
      }
      return { status: response.status, length: response.headers.get('content-length'), bytes, wrong, ms: performance.now() - started }
    })
    sampling = false
    await sampler
    await cdp.detach()
    console.log(
      `200 MiB through the proxy in ${(result.ms / 1000).toFixed(1)} s (${(BIG_BYTES / 1048576 / (result.ms / 1000)).toFixed(1)} MiB/s), page heap (JS + array buffers) peak ${(peakHeap / 1048576).toFixed(1)} MiB`,
    )
    expect(result).toMatchObject({ status: 200, bytes: BIG_BYTES, wrong: 0 })
    expect(peakHeap).toBeGreaterThan(0)
    expect(peakHeap).toBeLessThan(100 * 1024 * 1024)
  }, 300_000)

  it('answers 503 with a clear text when no page with a node is open, and another tab takes over', async () => {
    const second = await openDemo()
    const proxyURL = `${await demo.evaluate(async () => (await (window as unknown as { burrowProxy: Promise<{ url(p: string, n: number, s: string): string }> }).burrowProxy).url('laptop', 80, '/hello'))}`
    const viewer = await browser.newPage()
    const load = async (): Promise<{ status: number; text: string }> => {
      const response = await viewer.goto(proxyURL)
      return { status: response!.status(), text: (await viewer.textContent('body'))!.trim() }
    }
    expect(await load()).toEqual({ status: 200, text: 'hello through the proxy' })
    const secondHost = (await second.textContent('#self'))!.split(' · ')[0]!
    await demo.waitForFunction((name) => document.getElementById('peers')!.textContent!.includes(name), secondHost)
    await second.close()
    // Demo tabs join with an ephemeral key: a closed tab leaves the peer list rather than stay "offline".
    await demo.waitForFunction((name) => !document.getElementById('peers')!.textContent!.includes(name), secondHost, { timeout: 30_000 })
    expect(await load()).toEqual({ status: 200, text: 'hello through the proxy' })
    await demo.close()
    const orphaned = await load()
    expect(orphaned.status).toBe(503)
    expect(orphaned.text).toMatch(/^Burrow proxy: no open page has a Burrow node serving this proxy/)
    demo = await openDemo()
    expect(await load()).toEqual({ status: 200, text: 'hello through the proxy' })
    await viewer.close()
  }, 180_000)

  it('on the page’s own origin, proxies the page’s own fetch under the prefix too', async () => {
    const page = await browser.newPage()
    await page.goto(`${start.demoURL}?proxyOrigin=${encodeURIComponent(new URL(start.demoURL).origin)}`)
    await page.waitForFunction(() => /Proxy ready|did not start/.test(document.getElementById('browse-status')!.textContent!), undefined, { timeout: 60_000 })
    expect(await page.textContent('#browse-status')).toContain(`Proxy ready on ${new URL(start.demoURL).origin}/.burrow/`)
    await page.waitForFunction(
      () => (window as unknown as { burrowNode?: { peers(): Array<{ hostname: string; online: boolean }> } }).burrowNode?.peers().some((p) => p.hostname === 'laptop' && p.online),
      undefined,
      { timeout: 30_000 },
    )
    const own = await page.evaluate(async () => {
      await navigator.serviceWorker.ready
      const response = await fetch('/.burrow/laptop/80/hello')
      return { status: response.status, text: await response.text(), controlled: navigator.serviceWorker.controller !== null }
    })
    expect(own).toEqual({ status: 200, text: 'hello through the proxy', controlled: true })
    const bad = await page.evaluate(async () => {
      const response = await fetch('/.burrow/laptop/notaport/')
      return { status: response.status, text: await response.text() }
    })
    expect(bad.status).toBe(400)
    expect(bad.text).toMatch(/"notaport" is not a port/)
    await page.close()
  }, 120_000)

  it('lays the demo out without horizontal overflow at 1280×800 and 390×844', async () => {
    const errorsBefore = browser.errors.length
    await browse(demo, '/')
    for (const [width, height] of [
      [1280, 800],
      [390, 844],
    ] as const) {
      await demo.setViewportSize({ width, height })
      await demo.waitForTimeout(1500)
      const overflowing = await demo.evaluate(() => {
        const limit = document.documentElement.clientWidth + 0.5
        return [...document.body.querySelectorAll('*')]
          .filter((element) => {
            const box = element.getBoundingClientRect()
            return box.width > 0 && box.right > limit
          })
          .map(
            (element) =>
              `${element.tagName.toLowerCase()}${element.id ? `#${element.id}` : ''}${element.className && typeof element.className === 'string' ? `.${element.className}` : ''} right=${element.getBoundingClientRect().right.toFixed(0)}`,
          )
      })
      await demo.screenshot({ path: join(OUTPUT_DIR, `demo-${width}x${height}.png`), fullPage: true })
      expect(overflowing, `at ${width}×${height}`).toEqual([])
      expect(await demo.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true)
    }
    expect(browser.errors.slice(errorsBefore)).toEqual([])
  }, 120_000)
})
