// Builds the proxy's browser files from src/proxy into public/ (what `npm run build`, `burrow
// start` and the e2e harness run): `burrow-sw.js`, the Service Worker, and `burrow-proxy.html`, the
// bridge page for a proxy on another origin. They are build outputs, not committed (public/.gitignore).
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

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
