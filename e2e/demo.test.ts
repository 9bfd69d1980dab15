// `burrow start` (what `npm start` runs) as a user meets it: one command starts the relay and the
// demo; two browsers open the printed URL, join, see each other, chat, fetch a page served by the
// other tab, and send a file.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { freePort, launchChromium, REPO_ROOT, type LaunchedBrowser } from './helpers/browser.ts'

let child: ChildProcess
let dataDir: string
let demoURL: string
let browserA: LaunchedBrowser
let browserB: LaunchedBrowser

async function openDemo(browser: LaunchedBrowser): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(demoURL)
  await page.waitForFunction(() => / · online$/.test(document.getElementById('self')?.textContent ?? ''), undefined, { timeout: 60_000 })
  return page
}

describe('burrow start: relay + demo', () => {
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'burrow-start-'))
    const port = await freePort()
    child = spawn(process.execPath, ['bin/burrow.mjs', 'start', '--data-dir', dataDir, '--port', String(port)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    demoURL = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`burrow start printed no demo URL within 60 s:\n${output}`)), 60_000)
      const onData = (chunk: Buffer): void => {
        output += chunk.toString()
        const match = /demo\s+(http:\/\/\S+)/.exec(output)
        if (match) {
          clearTimeout(timer)
          resolve(match[1]!)
        }
      }
      child.stdout!.on('data', onData)
      child.stderr!.on('data', onData)
      child.once('exit', (code) => reject(new Error(`burrow start exited with ${code}:\n${output}`)))
    })
    browserA = await launchChromium()
    browserB = await launchChromium()
  })

  afterAll(async () => {
    await browserA?.close()
    await browserB?.close()
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('two tabs join, list each other, chat, fetch from a serving tab and send a file', async () => {
    const pageA = await openDemo(browserA)
    const pageB = await openDemo(browserB)
    const hostA = (await pageA.textContent('#self'))!.split(' · ')[0]!
    const hostB = (await pageB.textContent('#self'))!.split(' · ')[0]!
    await pageA.waitForFunction(
      (name) => [...document.querySelectorAll('#peers tbody tr')].some((row) => row.textContent!.includes(name) && row.textContent!.includes('online')),
      hostB,
    )
    await pageB.waitForFunction(
      (name) => [...document.querySelectorAll('#peers tbody tr')].some((row) => row.textContent!.includes(name) && row.textContent!.includes('online')),
      hostA,
    )
    // RTT appears once the first probe is answered.
    await pageA.waitForFunction(() => /\d+\.\d ms/.test(document.querySelector('#peers tbody')!.textContent!), undefined, { timeout: 10_000 })

    await pageA.fill('#chat-input', 'hello over wireguard')
    await pageA.click('#chat-form button')
    await pageB
      .waitForFunction((name) => document.getElementById('chat')!.textContent!.includes(`${name}: hello over wireguard`), hostA, { timeout: 10_000 })
      .catch(async (error: Error) => {
        throw new Error(
          `${error.message}\nchat A: ${await pageA.textContent('#chat')}\nchat B: ${await pageB.textContent('#chat')}\nA: ${await pageA.textContent('#self')} ${await pageA.textContent('#peers')}\nB: ${await pageB.textContent('#self')} ${await pageB.textContent('#peers')}`,
        )
      })

    await pageB.fill('#page-text', 'served from tab B')
    await pageB.check('#serve-toggle')
    await pageA.click('#peers tbody button')
    await pageA.waitForFunction(() => document.getElementById('fetched')!.textContent!.includes('served from tab B'))
    expect(await pageA.textContent('#fetched')).toMatch(/^200 OK/)

    const file = Buffer.alloc(2 * 1024 * 1024, 7)
    await pageA.setInputFiles('#file-input', { name: 'blob.bin', mimeType: 'application/octet-stream', buffer: file })
    await pageA.click('#file-form button')
    await pageB.waitForFunction(
      () => document.getElementById('transfers')!.textContent!.includes('blob.bin') && document.getElementById('transfers')!.textContent!.includes('✓'),
      undefined,
      { timeout: 60_000 },
    )
    expect(await pageB.textContent('#transfers')).toMatch(/2\.0 MiB of 2\.0 MiB · [\d.]+ MiB\/s/)
    expect(browserA.errors).toEqual([])
    expect(browserB.errors).toEqual([])
  })
})
