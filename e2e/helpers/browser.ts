// Reusable browser harness for e2e tests and browser benchmarks: launches the system Chromium
// through playwright-core with a fresh profile, and serves this repository with Vite's dev server
// (so pages can import `/src/...` TypeScript and `new Worker(new URL(...))` just works).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { build, createServer as createViteServer, preview, type PreviewServer, type ViteDevServer } from 'vite'
import { freePort } from '../../test/helpers/ports.ts'

export const CHROMIUM_PATH = '/usr/bin/chromium'
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
]

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

export interface LaunchOptions {
  /** The browser to start instead of CHROMIUM_PATH (e.g. a wrapper that runs it in a network namespace). */
  executablePath?: string
  /** Extra Chromium flags (e.g. WebRTC switches). */
  args?: string[]
  /** Environment for the browser process (e.g. to run it inside a network namespace wrapper). */
  env?: Record<string, string>
}

export interface LaunchedBrowser {
  context: BrowserContext
  userDataDir: string
  /** Opens a page and forwards its console errors and uncaught exceptions to `errors`. */
  newPage(): Promise<Page>
  /** Uncaught page errors and console errors seen so far, as text. */
  errors: string[]
  close(): Promise<void>
}

/** Starts Chromium with the project's flags and a fresh user-data-dir (removed on close). */
export async function launchChromium(options: LaunchOptions = {}): Promise<LaunchedBrowser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'burrow-chromium-'))
  const errors: string[] = []
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: options.executablePath ?? CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_FLAGS, ...(options.args ?? [])],
      ...(options.env ? { env: options.env } : {}),
    })
  } catch (error) {
    rmSync(userDataDir, { recursive: true, force: true })
    throw error
  }
  return {
    context,
    userDataDir,
    errors,
    async newPage() {
      const page = await context.newPage()
      page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`))
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(`console: ${message.text()}`)
      })
      return page
    },
    async close() {
      try {
        await context.close()
      } finally {
        rmSync(userDataDir, { recursive: true, force: true })
      }
    },
  }
}

export { freePort }

export interface PageServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`; pages live at `${url}/e2e/pages/…`. */
  url: string
  server: ViteDevServer | PreviewServer
  close(): Promise<void>
}

export interface PageServerOptions {
  /**
   * CommonJS dependencies the pages import (e.g. `simple-peer`): pre-bundled at startup. Automatic
   * discovery stays off, because discovering a dependency mid-test makes Vite reload the page.
   */
  prebundle?: string[]
  /** Address to listen on; 127.0.0.1 unless given. */
  host?: string
  /** Vite's dependency cache; node_modules/.vite (shared with every other Vite server) unless given. */
  cacheDir?: string
}

/** Serves the repository root with Vite's dev server on a free port (of 127.0.0.1 unless `host` is given). */
export async function startPageServer(options: PageServerOptions = {}): Promise<PageServer> {
  const host = options.host ?? '127.0.0.1'
  const server = await createViteServer({
    configFile: false,
    root: REPO_ROOT,
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    logLevel: 'error',
    clearScreen: false,
    optimizeDeps: { noDiscovery: true, include: options.prebundle ?? [] },
    server: { host, port: 0, hmr: false, watch: null },
    worker: { format: 'es' },
  })
  try {
    await server.listen()
    const address = server.httpServer?.address()
    if (typeof address !== 'object' || !address) throw new Error('the page server has no address')
    return {
      url: `http://${host}:${address.port}`,
      server,
      close: () => server.close(),
    }
  } catch (error) {
    await server.close()
    throw error
  }
}

export interface BuiltPageServerOptions {
  /** Address to listen on; 127.0.0.1 unless given. */
  host?: string
  /** Sees the path of every request the server answers (e.g. to tell which chunks a page fetched). */
  onRequest?: (path: string) => void
}

/**
 * Builds `pages` (paths relative to the repository, e.g. `e2e/pages/worker.html`) with `vite build`
 * and no project config — what an app using Vite gets — then serves the output with `vite preview`.
 */
export async function startBuiltPageServer(pages: string[], options: BuiltPageServerOptions = {}): Promise<PageServer> {
  const outDir = mkdtempSync(join(tmpdir(), 'burrow-vite-build-'))
  try {
    await build({
      configFile: false,
      root: REPO_ROOT,
      logLevel: 'error',
      build: { outDir, emptyOutDir: true, target: 'es2022', rollupOptions: { input: pages.map((page) => join(REPO_ROOT, page)) } },
      worker: { format: 'es' },
    })
    const port = await freePort()
    const host = options.host ?? '127.0.0.1'
    const onRequest = options.onRequest
    const server = await preview({
      configFile: false,
      root: REPO_ROOT,
      logLevel: 'error',
      build: { outDir },
      preview: { host, port, strictPort: true },
      plugins: onRequest
        ? [
            {
              name: 'burrow-request-log',
              configurePreviewServer(preview) {
                preview.middlewares.use((request, _response, next) => {
                  onRequest(request.url ?? '')
                  next()
                })
              },
            },
          ]
        : [],
    })
    return {
      url: `http://${host}:${port}`,
      server,
      async close() {
        try {
          await server.close()
        } finally {
          rmSync(outDir, { recursive: true, force: true })
        }
      },
    }
  } catch (error) {
    rmSync(outDir, { recursive: true, force: true })
    throw error
  }
}
