// A tab behind NAT A and `burrow up` behind NAT B (test/helpers/nat.ts), for e2e/nat.test.ts and
// bench/node-peer.bench.ts: the relay (with STUN) and the Vite page server run in the "internet"
// namespace, Chromium in host A, and on host B an HTTP server (`/blob`: BLOB_BYTES, `/big`:
// BIG_BYTES of a known pattern) published on overlay port 80 by `burrow up --hostname server`.
import { createHash } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { ChildProcess } from 'node:child_process'
import type { Page } from 'playwright-core'
import { INTERNET_ADDRESS, NatLab } from '../../test/helpers/nat.ts'
import { createAuthKey } from '../../test/helpers/relay-process.ts'
import { CHROMIUM_PATH, type LaunchedBrowser, REPO_ROOT, launchChromium } from './browser.ts'
import { WEBRTC_FLAGS } from './netns-browser.ts'

export const NAT_HTTP = `${INTERNET_ADDRESS}:8080`
export const NAT_CONTROL = `http://${NAT_HTTP}`
export const BLOB_BYTES = 20 << 20
export const BIG_BYTES = 64 << 20

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + (i >> 11)) & 255
  return b
}

export function patternSha256(n: number): string {
  return createHash('sha256').update(pattern(n)).digest('hex')
}

export function firstLine(child: ChildProcess, test: (e: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching line within ${timeoutMs} ms: ${stderr}`)), timeoutMs)
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${stderr}`)))
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>
        if (test(entry)) {
          clearTimeout(timer)
          resolve(entry)
        }
      } catch {
        // Not a log line.
      }
    })
  })
}

export interface NatBrowserSetup {
  lab: NatLab
  browser: LaunchedBrowser
  pagesUrl: string
  authKey: string
  /** Opens burrow.html in Chromium (host A) and starts a node there. */
  startTab(hostname: string, extra?: { dropDirectSignals?: boolean }): Promise<Page>
  relayForwardedBytes(): Promise<number>
  close(): Promise<void>
}

export async function startNatBrowser(): Promise<NatBrowserSetup> {
  const lab = await NatLab.create()
  const dir = mkdtempSync(join(tmpdir(), 'burrow-e2e-nat-'))
  let browser: LaunchedBrowser | undefined
  const close = async (): Promise<void> => {
    await browser?.close().catch(() => {})
    await lab.cleanup()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const relay = lab.inet.spawn(process.execPath, ['bin/burrow.mjs', 'relay', '--listen', NAT_HTTP, '--data-dir', join(dir, 'relay'), '--stun-port', '3478'], { cwd: REPO_ROOT })
    await firstLine(relay, (e) => e['msg'] === 'listening', 30_000)
    const authKey = createAuthKey(join(dir, 'relay'), '--reusable')
    const pages = lab.inet.spawn(process.execPath, ['--import', 'tsx', 'e2e/helpers/page-server-process.ts', INTERNET_ADDRESS, join(dir, 'vite-cache')], { cwd: REPO_ROOT })
    const pagesUrl = (await firstLine(pages, (e) => typeof e['url'] === 'string', 60_000))['url'] as string
    const make = (n: number, name: string) => `const ${name} = Buffer.alloc(${n}); for (let i = 0; i < ${name}.length; i++) ${name}[i] = (i * 31 + (i >> 11)) & 255;`
    const blobs = lab.b.host.spawn(process.execPath, [
      '-e',
      `${make(BLOB_BYTES, 'b')} ${make(BIG_BYTES, 'big')}
       require('node:http').createServer((q, r) => r.end(q.url === '/big' ? big : b)).listen(9000, '127.0.0.1', () => console.log('{"msg":"serving"}'))`,
    ])
    await firstLine(blobs, (e) => e['msg'] === 'serving', 30_000)
    const up = lab.b.host.spawn(
      process.execPath,
      ['bin/burrow.mjs', 'up', '--control', NAT_CONTROL, '--authkey', authKey, '--hostname', 'server', '--state-dir', join(dir, 'up'), '--serve', '80=127.0.0.1:9000'],
      { cwd: REPO_ROOT },
    )
    await firstLine(up, (e) => e['msg'] === 'up', 60_000)

    const wrapper = join(dir, 'chromium')
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${lab.a.host.name} ${CHROMIUM_PATH} "$@"\n`)
    chmodSync(wrapper, 0o755)
    const launched = await launchChromium({ executablePath: wrapper, args: [...WEBRTC_FLAGS, `--unsafely-treat-insecure-origin-as-secure=${pagesUrl}`] })
    browser = launched
    return {
      lab,
      browser: launched,
      pagesUrl,
      authKey,
      async startTab(hostname, extra = {}) {
        const page = await launched.newPage()
        await page.goto(`${pagesUrl}/e2e/pages/burrow.html`)
        await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 120_000 })
        const started = await page.evaluate(
          ([url, key, name, drop]) =>
            window.burrowNodeE2E.start({
              controlURL: url!,
              authKey: key!,
              hostname: name!,
              storage: 'memory',
              probeIntervalMs: 1000,
              ...(drop ? { _debugDropDirectSignals: true } : {}),
            }),
          [NAT_CONTROL, authKey, hostname, extra.dropDirectSignals === true] as const,
        )
        if (!started.ok) throw new Error(`Burrow.start failed: ${JSON.stringify(started.error)}`)
        return page
      },
      async relayForwardedBytes() {
        const text = await lab.inet.run(process.execPath, ['-e', `fetch('http://${NAT_HTTP}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`])
        return Number(/^burrow_relay_bytes_forwarded_total (\d+)/m.exec(text)![1])
      },
      close,
    }
  } catch (error) {
    await close()
    throw error
  }
}

/** Pings `peer` once a second (traffic makes a direct path wanted) until it is on `path`. */
export async function waitForPath(page: Page, peer: string, path: 'direct' | 'relay', timeoutMs: number): Promise<void> {
  const pinger = setInterval(() => void page.evaluate((p) => window.burrowNodeE2E.ping(p).catch(() => 0), peer).catch(() => {}), 1000)
  try {
    await page.evaluate(([p, w, t]) => window.burrowNodeE2E.waitForPath(p as string, w as 'direct' | 'relay', t as number), [peer, path, timeoutMs] as const)
  } finally {
    clearInterval(pinger)
  }
}
