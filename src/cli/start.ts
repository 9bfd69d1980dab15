// `burrow start` (what `npm start` runs): a `burrow relay` on 127.0.0.1 with its state in
// `<repo>/.data/relay`, a reusable dev auth key made once and kept there, and the demo served by
// Vite's dev server (built on the fly) with the relay URL and the key injected, so opening the
// printed URL in two tabs just works.
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createWriteStream } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { runAuthKeyCommand } from './authkey.ts'
import { buildProxyAssets } from './build-proxy.ts'
import { startProxyOrigin } from './proxy-origin.ts'
import { numberFlag, parseArgs, UsageError } from './args.ts'
import { type CliIo, type Command, EXIT_USAGE } from './io.ts'

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

export const START_USAGE = `usage: burrow start [--relay-port N] [--port N] [--proxy-port N] [--data-dir DIR]
  Starts a relay (DERP + coordination) on 127.0.0.1 and serves the demo; open the printed URL in
  two tabs. Apps browsed through the demo's proxy are served from a second port (--proxy-port,
  default any free one), so they never share the demo's origin. State (relay key, node registry,
  dev auth keys) lives in DIR (default .data/relay).
`

/**
 * The dev auth key kept next to the relay's database (only a hash of it is in the database).
 * `ephemeral`: a second key, for the demo's tabs, whose nodes the coordination service forgets
 * when they disconnect, so closed tabs leave the peer list instead of piling up as offline.
 */
export async function devAuthKey(dataDir: string, io: CliIo, options: { ephemeral?: boolean } = {}): Promise<string> {
  const path = join(dataDir, options.ephemeral ? 'dev-authkey-ephemeral' : 'dev-authkey')
  if (existsSync(path)) return readFileSync(path, 'utf8').trim()
  let key = ''
  const flags = options.ephemeral ? ['--reusable', '--ephemeral'] : ['--reusable']
  const status = await runAuthKeyCommand(['create', ...flags, '--data-dir', dataDir], { stdout: (text) => (key += text), stderr: () => {} })
  if (status !== 0 || !key.trim()) throw new Error(`cannot create a dev auth key in ${dataDir}`)
  writeFileSync(path, `${key.trim()}\n`, { mode: 0o600 })
  io.stderr(`created a reusable${options.ephemeral ? ' ephemeral' : ''} dev auth key in ${path}\n`)
  return key.trim()
}

interface RunningRelay {
  child: ChildProcess
  url: string
  exited: Promise<number | null>
}

function startRelay(port: number, dataDir: string, logPath: string): Promise<RunningRelay> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/burrow.mjs'), 'relay', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const log = createWriteStream(logPath, { flags: 'a' })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
    log.write(chunk)
  })
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)))
  return new Promise((resolveRelay, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.write(`${line}\n`)
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string }
        if (entry.msg === 'listening' && entry.url) resolveRelay({ child, url: entry.url, exited })
      } catch {
        // Not a log line; it is in the log file anyway.
      }
    })
    void exited.then((code) => reject(new Error(`the relay exited (${code}) before listening: ${stderr.trim() || `see ${logPath}`}`)))
  })
}

export const start: Command = async (args, io) => {
  let relayPort: number
  let demoPort: number
  let proxyPort: number
  let dataDir: string
  try {
    const parsed = parseArgs(args, ['relay-port', 'port', 'proxy-port', 'data-dir'])
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`)
    relayPort = numberFlag(parsed, 'relay-port', 0, 0, 65535, true)
    demoPort = numberFlag(parsed, 'port', 5173, 0, 65535, true)
    proxyPort = numberFlag(parsed, 'proxy-port', 0, 0, 65535, true)
    dataDir = resolve(parsed.flags.get('data-dir') ?? join(REPO_ROOT, '.data', 'relay'))
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`burrow start: ${error.message}\n\n${START_USAGE}`)
      return EXIT_USAGE
    }
    throw error
  }

  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const authKey = await devAuthKey(dataDir, io)
  const tabAuthKey = await devAuthKey(dataDir, io, { ephemeral: true })
  const relay = await startRelay(relayPort, dataDir, join(dataDir, 'relay.log'))
  // Vite's dev server answers SIGTERM with process.exit(); the relay must not outlive us either way.
  const stopRelay = (): void => {
    if (relay.child.exitCode === null && relay.child.signalCode === null) relay.child.kill('SIGTERM')
  }
  process.once('exit', stopRelay)
  const controlURL = new URL(relay.url).origin

  // Vite is a development dependency: `npm install` brings it; an installed package without it
  // still has the relay.
  let vite: typeof import('vite')
  try {
    vite = await import('vite')
  } catch {
    relay.child.kill('SIGTERM')
    io.stderr('burrow start: the demo needs Vite (npm install in the Burrow repository)\n')
    return 1
  }
  // The proxy's Service Worker and bridge page are built from src/proxy into public/ (not committed).
  try {
    await buildProxyAssets()
  } catch (error) {
    relay.child.kill('SIGTERM')
    io.stderr(`burrow start: building the proxy Service Worker failed: ${(error as Error).message}\n`)
    return 1
  }
  let proxyServer: import('node:http').Server
  try {
    proxyServer = await startProxyOrigin('127.0.0.1', proxyPort)
  } catch (error) {
    relay.child.kill('SIGTERM')
    io.stderr(`burrow start: cannot listen for the proxy origin on 127.0.0.1:${proxyPort}: ${(error as Error).message}\n`)
    return 1
  }
  const proxyAddress = proxyServer.address()
  const proxyListenPort = typeof proxyAddress === 'object' && proxyAddress ? proxyAddress.port : proxyPort
  // The demo puts proxied apps on its own host name with this port (see demo/main.ts proxyOrigin).
  const config = JSON.stringify({ controlURL, authKey: tabAuthKey, proxyPort: proxyListenPort })
  const server = await vite.createServer({
    configFile: false,
    root: join(REPO_ROOT, 'demo'),
    publicDir: join(REPO_ROOT, 'public'),
    logLevel: 'warn',
    clearScreen: false,
    server: { host: '127.0.0.1', port: demoPort, strictPort: false, fs: { allow: [REPO_ROOT] } },
    // Every dependency is ESM already; discovering one mid-visit would make Vite reload the tab.
    optimizeDeps: { noDiscovery: true, include: [] },
    worker: { format: 'es' },
    plugins: [
      {
        name: 'burrow-demo-config',
        configureServer(dev) {
          dev.middlewares.use('/burrow-demo-config.json', (_req, res) => {
            res.setHeader('content-type', 'application/json')
            res.setHeader('cache-control', 'no-store')
            res.end(config)
          })
          // Opened without the proxy origin (?proxyOrigin= pointing here), the proxy shares the demo's
          // origin; a request under its prefix that no Service Worker took gets a clear 503, not the demo.
          dev.middlewares.use('/.burrow/', (req, res) => {
            res.statusCode = 503
            res.setHeader('content-type', 'text/plain; charset=utf-8')
            res.end(
              `Burrow proxy: ${req.originalUrl ?? req.url} reached the server, so no proxy Service Worker handled it. Open the demo first (it starts the proxy), then reload.\n`,
            )
          })
        },
      },
    ],
  })
  await server.listen()
  const demoURL = server.resolvedUrls?.local[0] ?? `http://127.0.0.1:${demoPort}/`

  io.stdout(`Burrow is running.

  demo     ${demoURL}     ← open it in two tabs (or two browsers)
  proxy    http://127.0.0.1:${proxyListenPort}/.burrow/<peer>/<port>/  (the demo's Browse panel)
  relay    ${controlURL}  (DERP at /derp, coordination at /control; log: ${join(dataDir, 'relay.log')})
  authkey  ${authKey}  (reusable dev key; demo tabs use a second, ephemeral one)

Join from Node:  import { Burrow } from 'burrow/node'
                 await Burrow.start({ controlURL: '${controlURL}', authKey: '${authKey}', hostname: 'laptop' })
Press Ctrl-C to stop.
`)

  const outcome = await new Promise<string>((done) => {
    process.once('SIGINT', () => done('SIGINT'))
    process.once('SIGTERM', () => done('SIGTERM'))
    void relay.exited.then((code) => done(`relay exited (${code})`))
  })
  await server.close()
  proxyServer.closeAllConnections()
  proxyServer.close()
  if (relay.child.exitCode === null && relay.child.signalCode === null) {
    relay.child.kill('SIGTERM')
    await relay.exited
  }
  if (outcome.startsWith('relay exited')) {
    io.stderr(`burrow start: the ${outcome}; see ${join(dataDir, 'relay.log')}\n`)
    return 1
  }
  return 0
}
