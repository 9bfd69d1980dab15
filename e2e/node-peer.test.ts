// A browser tab fetching from a Node HTTP server that `burrow up` (a real child process) exposes
// on the overlay, through a real `burrow relay`: the "local services to browser tabs".
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { createAuthKey, type RelayProcess, startRelayProcess, waitFor } from '../test/helpers/relay-process.ts'
import { launchChromium, REPO_ROOT, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'

// Text, because the page helper hands response bodies back as text; 2 MB of numbered lines makes
// any lost, duplicated or reordered segment visible in the comparison.
const BODY = Array.from({ length: (2 << 20) >> 4 }, (_, i) => `line ${String(i).padStart(9, '0')}\n`).join('')

let relay: RelayProcess
let pages: PageServer
let browser: LaunchedBrowser
let http: Server
let up: ChildProcess
const upLogs: Array<Record<string, unknown>> = []
let stateDir: string
let page: Page

beforeAll(async () => {
  relay = await startRelayProcess()
  const controlURL = `http://127.0.0.1:${relay.port}`
  const authKey = createAuthKey(relay.dataDir, '--reusable')
  http = createServer((request, response) => {
    const body = request.url === '/body' ? BODY : 'not here\n'
    response.writeHead(request.url === '/body' ? 200 : 404, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
    response.end(body)
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  stateDir = mkdtempSync(join(tmpdir(), 'burrow-e2e-up-'))
  up = spawn(
    process.execPath,
    [
      'bin/burrow.mjs',
      'up',
      '--control',
      controlURL,
      '--authkey',
      authKey,
      '--hostname',
      'laptop',
      '--state-dir',
      stateDir,
      '--serve',
      `80=127.0.0.1:${(http.address() as AddressInfo).port}`,
      '--allow',
      'tab',
    ],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  createInterface({ input: up.stdout! }).on('line', (line) => upLogs.push(JSON.parse(line) as Record<string, unknown>))
  await waitFor('burrow up to join', () => upLogs.some((l) => l.msg === 'up'), 30_000)
  pages = await startPageServer()
  browser = await launchChromium()
  page = await browser.newPage()
  await page.goto(`${pages.url}/e2e/pages/burrow.html`)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
  const started = await page.evaluate(([url, key]) => window.burrowNodeE2E.start({ controlURL: url!, authKey: key!, hostname: 'tab' }), [controlURL, authKey] as const)
  if (!started.ok) throw new Error(`Burrow.start failed in the page: ${JSON.stringify(started.error)}`)
  await page.evaluate(() => window.burrowNodeE2E.waitForPeer('laptop', true, 20_000))
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await pages?.close()
  if (up && up.exitCode === null) {
    const exited = new Promise((resolve) => up.once('exit', resolve))
    up.kill('SIGTERM')
    await exited
  }
  await relay?.stop('SIGKILL')
  http?.closeAllConnections()
  http?.close()
  if (stateDir) rmSync(stateDir, { recursive: true, force: true })
})

describe('a browser tab and burrow up', () => {
  it('fetches 2 MB exactly from the Node HTTP server, by address and by hostname', async () => {
    const address = (upLogs.find((l) => l.msg === 'up')!.addresses as string[])[0]!
    const byAddress = await page.evaluate((url) => window.burrowNodeE2E.fetch(url), `http://${address}/body`)
    expect(byAddress.status).toBe(200)
    expect(byAddress.text.length).toBe(BODY.length)
    expect(byAddress.text === BODY).toBe(true)
    const byName = await page.evaluate(() => window.burrowNodeE2E.fetch('http://laptop/body'))
    expect(byName.text === BODY).toBe(true)
    expect(upLogs.find((l) => l.msg === 'connection')).toMatchObject({ peer: 'tab', rule: 'tab', port: 80 })
  }, 120_000)
})
