// A tab behind one home router and `burrow up` behind another (test/helpers/nat.ts: Linux
// MASQUERADE routers with a WAN firewall, relay + STUN on a small "internet" namespace, all
// test-made): the path goes direct through server-reflexive candidates from the relay's STUN,
// 20 MB cross it with the relay's counters flat, and when the router forgets its mappings
// mid-transfer the relay carries the same TCP connection until the direct path returns.
import { createHash } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { ChildProcess } from 'node:child_process'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { INTERNET_ADDRESS, NatLab } from '../test/helpers/nat.ts'
import { createAuthKey } from '../test/helpers/relay-process.ts'
import { CHROMIUM_PATH, type LaunchedBrowser, REPO_ROOT, launchChromium } from './helpers/browser.ts'
import { WEBRTC_FLAGS } from './helpers/netns-browser.ts'

const HTTP = `${INTERNET_ADDRESS}:8080`
const CONTROL = `http://${HTTP}`
const BLOB_BYTES = 20 << 20
const BIG_BYTES = 64 << 20
const BLOB = (n: number) => `const b = Buffer.alloc(${n}); for (let i = 0; i < b.length; i++) b[i] = (i * 31 + (i >> 11)) & 255;`

function sha256Of(n: number): string {
  const b = Buffer.alloc(n)
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + (i >> 11)) & 255
  return createHash('sha256').update(b).digest('hex')
}

function firstLine(child: ChildProcess, test: (e: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
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

let lab: NatLab
let dir: string
let browser: LaunchedBrowser
let page: Page

async function relayForwardedBytes(): Promise<number> {
  const text = await lab.inet.run(process.execPath, ['-e', `fetch('http://${HTTP}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`])
  return Number(/^burrow_relay_bytes_forwarded_total (\d+)/m.exec(text)![1])
}

const waitForPath = (path: 'direct' | 'relay', timeoutMs: number) =>
  page.evaluate(([p, t]) => window.burrowNodeE2E.waitForPath('server', p as 'direct' | 'relay', t as number), [path, timeoutMs] as const)

beforeAll(async () => {
  lab = await NatLab.create()
  dir = mkdtempSync(join(tmpdir(), 'burrow-e2e-nat-'))
  const relay = lab.inet.spawn(process.execPath, ['bin/burrow.mjs', 'relay', '--listen', HTTP, '--data-dir', join(dir, 'relay'), '--stun-port', '3478'], { cwd: REPO_ROOT })
  await firstLine(relay, (e) => e['msg'] === 'listening', 30_000)
  const authKey = createAuthKey(join(dir, 'relay'), '--reusable')
  const pages = lab.inet.spawn(process.execPath, ['--import', 'tsx', 'e2e/helpers/page-server-process.ts', INTERNET_ADDRESS, join(dir, 'vite-cache')], { cwd: REPO_ROOT })
  const pagesUrl = (await firstLine(pages, (e) => typeof e['url'] === 'string', 60_000))['url'] as string

  const blobs = lab.b.host.spawn(process.execPath, [
    '-e',
    `${BLOB(BLOB_BYTES)} const big = Buffer.alloc(${BIG_BYTES}); for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 11)) & 255;
     require('node:http').createServer((q, r) => r.end(q.url === '/big' ? big : b)).listen(9000, '127.0.0.1', () => console.log('{"msg":"serving"}'))`,
  ])
  await firstLine(blobs, (e) => e['msg'] === 'serving', 30_000)
  const up = lab.b.host.spawn(process.execPath, ['bin/burrow.mjs', 'up', '--control', CONTROL, '--authkey', authKey, '--hostname', 'server', '--state-dir', join(dir, 'up'), '--serve', '80=127.0.0.1:9000'], { cwd: REPO_ROOT })
  await firstLine(up, (e) => e['msg'] === 'up', 60_000)

  const wrapper = join(dir, 'chromium')
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${lab.a.host.name} ${CHROMIUM_PATH} "$@"\n`)
  chmodSync(wrapper, 0o755)
  browser = await launchChromium({ executablePath: wrapper, args: [...WEBRTC_FLAGS, `--unsafely-treat-insecure-origin-as-secure=${pagesUrl}`] })
  page = await browser.newPage()
  await page.goto(`${pagesUrl}/e2e/pages/burrow.html`)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 120_000 })
  const started = await page.evaluate(
    ([url, key]) => window.burrowNodeE2E.start({ controlURL: url!, authKey: key!, hostname: 'tab', storage: 'memory', probeIntervalMs: 1000 }),
    [CONTROL, authKey] as const,
  )
  if (!started.ok) throw new Error(`Burrow.start failed: ${JSON.stringify(started.error)}`)
}, 300_000)

afterAll(async () => {
  await browser?.close()
  await lab?.cleanup()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('a tab behind NAT A and burrow up behind NAT B', () => {
  it('go direct through server-reflexive candidates from the relay’s STUN, and 20 MB cross the direct path with the relay’s counters flat', async () => {
    await page.evaluate(() => window.burrowNodeE2E.waitForPeer('server', true, 30_000))
    // Traffic makes the direct path worth setting up; a ping a second keeps it wanted.
    const pinger = setInterval(() => void page.evaluate(() => window.burrowNodeE2E.ping('server').catch(() => 0)).catch(() => {}), 1000)
    try {
      await waitForPath('direct', 60_000)
    } finally {
      clearInterval(pinger)
    }
    // The candidate types come from getStats() shortly after the channel opens.
    let server = (await page.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'server')!
    for (let i = 0; i < 50 && server.candidateType === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      server = (await page.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'server')!
    }
    // Neither side's own address is reachable from the other: only the NATs' mappings are.
    expect(['srflx', 'prflx']).toContain(server.candidateType)
    const before = await relayForwardedBytes()
    const result = await page.evaluate(() => window.burrowNodeE2E.fetchDigest('http://server/blob'))
    const after = await relayForwardedBytes()
    expect(result).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: sha256Of(BLOB_BYTES) })
    expect(after - before).toBeLessThan(BLOB_BYTES / 20)
  }, 180_000)

  it('when router A forgets its NAT mappings mid-transfer, the relay carries the same TCP connection (no reset), then the path is direct again', async () => {
    const transfer = page.evaluate(() => window.burrowNodeE2E.fetchDigest('http://server/big'))
    let finished = false
    void transfer.then(() => (finished = true), () => {})
    await new Promise((resolve) => setTimeout(resolve, 500))
    // conntrack -F alone: the next packet out maps again (same port) and the path heals at once;
    // dropping the router's UDP forwarding while flushing makes the loss last.
    await lab.blockUdp(lab.a, true)
    await lab.flushNat(lab.a)
    try {
      await waitForPath('relay', 30_000)
      // The relay took over while the connection was still moving data.
      expect(finished).toBe(false)
    } finally {
      await lab.blockUdp(lab.a, false)
    }
    const result = await transfer
    expect(result).toMatchObject({ status: 200, bytes: BIG_BYTES, sha256: sha256Of(BIG_BYTES) })
    const pinger = setInterval(() => void page.evaluate(() => window.burrowNodeE2E.ping('server').catch(() => 0)).catch(() => {}), 1000)
    try {
      await waitForPath('direct', 60_000)
    } finally {
      clearInterval(pinger)
    }
  }, 240_000)
})
