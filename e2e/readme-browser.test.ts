// The README's browser example (```ts readme-browser), run as written in Chromium against a real
// `burrow relay` process, with a Node peer named `laptop` that serves what the example talks to:
// HTTP on 8080 and a TCP echo on 7. Only the relay URL, the auth key and the import specifier are
// substituted (Vite here serves the repository, so `'burrow'` becomes `/src/index.ts`, the file the
// package's browser export names; test/readme.test.ts typechecks the block with `'burrow'` as written).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Burrow } from '../src/node.ts'
import { readmeBlock, replaceOnce } from '../test/helpers/readme-blocks.ts'
import { createAuthKey, removeRelayDataDirs, startRelayProcess, type RelayProcess } from '../test/helpers/relay-process.ts'
import { launchChromium, REPO_ROOT, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'

const pageDir = join(REPO_ROOT, `.readme-browser-${process.pid}`)
let relay: RelayProcess | undefined
let laptop: Burrow | undefined
let pages: PageServer | undefined
let browser: LaunchedBrowser | undefined

afterAll(async () => {
  await browser?.close()
  await pages?.close()
  await laptop?.close()
  await relay?.stop('SIGKILL')
  removeRelayDataDirs()
  rmSync(pageDir, { recursive: true, force: true })
})

describe('README.md browser example', () => {
  it('runs in Chromium: starts, sees laptop, fetches from it, echoes over TCP, pings, closes', async () => {
    relay = await startRelayProcess()
    const controlURL = new URL(relay.url).origin
    const authKey = createAuthKey(relay.dataDir, '--reusable')

    laptop = await Burrow.start({ controlURL, authKey, hostname: 'laptop', storage: 'memory' })
    const served = laptop.serve(8080, () => new Response('hello from laptop'))
    await served.ready
    const echo = laptop.listen(7)
    void (async () => {
      const connections = (await echo.opened).readable.getReader()
      for (;;) {
        const { value: socket, done } = await connections.read()
        if (done) return
        const { readable, writable } = await socket.opened
        void readable.pipeTo(writable).catch(() => {})
      }
    })()

    let example = readmeBlock('ts', 'readme-browser')
    example = replaceOnce(example, "'http://127.0.0.1:8080'", JSON.stringify(controlURL))
    example = replaceOnce(example, "'bwauth-…'", JSON.stringify(authKey))
    example = replaceOnce(example, "from 'burrow'", "from '/src/index.ts'")
    mkdirSync(pageDir, { recursive: true })
    writeFileSync(join(pageDir, 'example.ts'), `${example}\ndocument.title = 'example finished'\n`)
    writeFileSync(
      join(pageDir, 'index.html'),
      '<!doctype html><html><head><meta charset="utf-8" /><link rel="icon" href="data:," /><title>running</title></head><body><script type="module" src="./example.ts"></script></body></html>\n',
    )

    pages = await startPageServer()
    browser = await launchChromium()
    const page = await browser.newPage()
    const logs: string[] = []
    page.on('console', (message) => logs.push(`${message.type()}: ${message.text()}`))
    await page.goto(`${pages.url}/${pageDir.slice(REPO_ROOT.length + 1)}/index.html`)
    await page
      .waitForFunction(() => document.title === 'example finished', undefined, { timeout: 90_000 })
      .catch((error: Error) => {
        throw new Error(`${error.message}; page errors: ${browser!.errors.join(' | ')}; console: ${logs.join(' | ')}`)
      })

    expect(browser.errors).toEqual([])
    const text = logs.join('\n')
    expect(text).toMatch(/^log: I am tab, 100\.\d+\.\d+\.\d+ and fd[0-9a-f:]+$/m)
    expect(text).toContain('log: 200 hello from laptop')
    expect(text).toMatch(/^log: hello$/m)
    expect(text).toMatch(/^log: \d+(\.\d+)?$/m)
    expect(text).toContain('log: state closed')
    expect(logs.filter((line) => line.startsWith('warning:') || line.startsWith('error:'))).toEqual([])
    // The tab left: the laptop sees it go.
    await expect.poll(() => laptop!.peers().find((peer) => peer.hostname === 'tab')?.online ?? false, { timeout: 20_000 }).toBe(false)
  })
})
