// Builds the proxy's browser files from src/proxy into public/ (what `npm run build`, `burrow
// start` and the e2e harness run): `burrow-sw.js`, the Service Worker, and `burrow-proxy.html`, the
// bridge page for a proxy on another origin. They are build outputs, not committed (public/.gitignore).
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, UsageError } from './args.ts'
import { type Command, EXIT_USAGE } from './io.ts'

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const PUBLIC_DIR = join(REPO_ROOT, 'public')

async function bundle(entry: string): Promise<string> {
  const vite = await import('vite')
  const output = await vite.build({
    configFile: false,
    root: REPO_ROOT,
    logLevel: 'warn',
    publicDir: false,
    build: {
      write: false,
      minify: false,
      target: 'es2022',
      lib: { entry: join(REPO_ROOT, entry), formats: ['iife'], name: 'burrowProxy', fileName: () => 'out.js' },
    },
  })
  const results = Array.isArray(output) ? output : [output]
  for (const result of results) {
    if (!('output' in result)) continue
    for (const chunk of result.output) if (chunk.type === 'chunk' && chunk.isEntry) return chunk.code
  }
  throw new Error(`building ${entry} produced no script`)
}

/** Writes public/burrow-sw.js and public/burrow-proxy.html; returns their paths. */
export async function buildProxyAssets(outDir = PUBLIC_DIR): Promise<string[]> {
  const [worker, bridge] = await Promise.all([bundle('src/proxy/sw.ts'), bundle('src/proxy/bridge.ts')])
  mkdirSync(outDir, { recursive: true })
  const workerPath = join(outDir, 'burrow-sw.js')
  const bridgePath = join(outDir, 'burrow-proxy.html')
  writeFileSync(workerPath, `// Built from src/proxy/sw.ts by src/cli/build-proxy.ts; do not edit.\n${worker}`)
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>Burrow proxy bridge</title></head>
<body><script>
// Built from src/proxy/bridge.ts by src/cli/build-proxy.ts; do not edit.
${bridge.replace(/<\/script/gi, '<\\/script')}
</script></body></html>
`
  writeFileSync(bridgePath, html)
  return [workerPath, bridgePath]
}

export const PROXY_FILES_USAGE = `usage: burrow proxy-files [--out DIR]
  Writes burrow-sw.js (the node.proxy() Service Worker) and burrow-proxy.html (its bridge page for
  a proxy on another origin) into DIR (default ./public); serve both at the root of the origin.
`

/** `burrow proxy-files`: the proxy's browser files for an app's own static folder. */
export const proxyFiles: Command = async (args, io) => {
  let out: string
  try {
    const parsed = parseArgs(args, ['out'])
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`)
    out = resolve(parsed.flags.get('out') ?? 'public')
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`burrow proxy-files: ${error.message}\n\n${PROXY_FILES_USAGE}`)
      return EXIT_USAGE
    }
    throw error
  }
  try {
    for (const path of await buildProxyAssets(out)) io.stdout(`wrote ${path}\n`)
  } catch (error) {
    io.stderr(`burrow proxy-files: ${(error as Error).message} (it bundles src/proxy with Vite: npm install vite)\n`)
    return 1
  }
  return 0
}
