// proxy.download_mb_per_s: a file downloaded inside an iframe through the Service Worker proxy
// (demo Browse panel → /.burrow/laptop/80/file → the page's node → relay → `burrow up --serve` →
// a Node HTTP server), baseline: node.fetch() of the same file in the embedding page, same run.
// Issue 14's goal is a ratio ≥ 0.8.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Frame, Page } from 'playwright-core'
import { launchChromium } from '../e2e/helpers/browser.ts'
import { startBurrowStart } from '../e2e/helpers/burrow-start.ts'
import { waitFor } from '../test/helpers/relay-process.ts'
import type { Bench } from './types.ts'
import { type BurrowProcess, spawnBurrow } from '../test/helpers/burrow-process.ts'

const FILE_BYTES = 64 * 1024 * 1024
const ROUNDS = 3

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function proxiedFrame(page: Page): Promise<Frame> {
  await page.waitForFunction(() => [...document.querySelectorAll<HTMLOptionElement>('#browse-peer option')].some((o) => o.value === 'laptop'), undefined, { timeout: 30_000 })
  await page.selectOption('#browse-peer', 'laptop')
  await page.fill('#browse-path', '/')
  await page.click('#browse-open')
  const deadline = Date.now() + 30_000
  for (;;) {
    const frame = page.frames().find((f) => f.url().endsWith('/.burrow/laptop/80/'))
    if (frame) {
      await frame.waitForLoadState()
      return frame
    }
    if (Date.now() > deadline) throw new Error('the Browse iframe never loaded')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Reads `url` to its end with fetch in `where`; returns MiB/s. */
function download(where: Page | Frame, script: string): Promise<number> {
  return where.evaluate(script) as Promise<number>
}

const bench: Bench = async () => {
  const start = await startBurrowStart()
  const chunk = Buffer.alloc(256 * 1024, 0x42)
  const http = createServer((request, response) => {
    if (request.url !== '/file') {
      response.writeHead(200, { 'content-type': 'text/html' })
      return response.end('<!doctype html><title>bench</title><p>bench</p>')
    }
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': FILE_BYTES })
    let sent = 0
    const pump = (): void => {
      while (sent < FILE_BYTES) {
        sent += chunk.length
        if (!response.write(chunk)) return void response.once('drain', pump)
      }
      response.end()
    }
    pump()
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const state = mkdtempSync(join(tmpdir(), 'burrow-bench-proxy-'))
  let up: BurrowProcess | undefined
  const browser = await launchChromium()
  try {
    const daemon = spawnBurrow([
      'up',
      '--control',
      start.controlURL,
      '--authkey',
      start.authKey,
      '--hostname',
      'laptop',
      '--state-dir',
      state,
      '--serve',
      `80=127.0.0.1:${(http.address() as AddressInfo).port}`,
    ])
    up = daemon
    await waitFor('burrow up to join', () => daemon.logs.some((l) => l.msg === 'up'), 30_000)
    const page = await browser.newPage()
    await page.goto(start.demoURL)
    await page.waitForFunction(() => / · online$/.test(document.getElementById('self')?.textContent ?? ''), undefined, { timeout: 60_000 })
    await page.waitForFunction(() => document.getElementById('browse-status')!.textContent!.startsWith('Proxy ready'), undefined, { timeout: 30_000 })
    const frame = await proxiedFrame(page)
    const reader = `async (response) => { const reader = response.body.getReader(); let n = 0; for (;;) { const { value, done } = await reader.read(); if (done) break; n += value.length } if (n !== ${FILE_BYTES}) throw new Error('got ' + n + ' bytes'); return n }`
    const viaNode = `(async () => { const t = performance.now(); await (${reader})(await window.burrowNode.fetch('http://laptop/file')); return ${FILE_BYTES} / 1048576 / ((performance.now() - t) / 1000) })()`
    const viaProxy = `(async () => { const t = performance.now(); await (${reader})(await fetch('/file')); return ${FILE_BYTES} / 1048576 / ((performance.now() - t) / 1000) })()`
    const node: number[] = []
    const proxy: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      node.push(await download(page, viaNode))
      proxy.push(await download(frame, viaProxy))
    }
    const value = median(proxy)
    const baseline = median(node)
    return [
      {
        name: 'proxy.download_mb_per_s',
        value,
        unit: 'MiB/s',
        baseline,
        ratio: value / baseline,
        note: `${FILE_BYTES / 1048576} MiB fetched inside the Browse iframe through the Service Worker proxy (median of ${ROUNDS}); baseline: node.fetch() of the same file in the embedding page, alternating rounds; relay path`,
      },
    ]
  } finally {
    await browser.close()
    if (up && up.proc.exitCode === null) {
      up.proc.kill('SIGTERM')
      await up.exited
    }
    http.closeAllConnections()
    http.close()
    rmSync(state, { recursive: true, force: true })
    await start.stop()
  }
}

export default bench
