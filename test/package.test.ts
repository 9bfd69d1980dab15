// What an app gets from `npm pack`: the tarball holds the library (bin/ and src/ without tests or
// test helpers), every module in it finds the modules it imports, and a scratch Vite app that
// installs the tarball from a temp dir builds a page importing `burrow`, worker included.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const NOT_LIBRARY = /\.test\.ts$|(^|\/)testing(\/|\.ts$)|(^|\/)test-[^/]*\.ts$|^(test|e2e|bench|demo|scripts|node_modules)\//

/** Source with comments blanked (a comment may quote `new URL(…)`); `://` in strings survives. */
const withoutComments = (source: string): string => source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1')

let dir: string
let tarball: string
let files: string[]

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'burrow-pack-'))
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as {
    filename: string
    files: { path: string }[]
  }[]
  tarball = join(dir, packed[0]!.filename)
  files = packed[0]!.files.map((f) => f.path)
})

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('npm pack', () => {
  it('packs the library and its entry points, and no tests, test helpers, benches, e2e or demo sources', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>
      types: string
      exports: Record<string, unknown>
      imports: Record<string, unknown>
    }
    // The targets (not the keys) of bin, types, exports and imports, through every condition.
    const targets = (value: unknown): string[] => (typeof value === 'string' ? [value] : value && typeof value === 'object' ? Object.values(value).flatMap(targets) : [])
    const entryPoints = targets([pkg.types, pkg.bin, pkg.exports, pkg.imports]).map((p) => posix.normalize(p))
    for (const entry of entryPoints) expect(files, `${entry} is an entry point in package.json`).toContain(entry)
    expect(files).toContain('package.json')
    expect(files).toContain('README.md')
    expect(files.filter((f) => NOT_LIBRARY.test(f))).toEqual([])
  })

  it('every relative import in a packed module resolves to a packed file', () => {
    const packed = new Set(files)
    const missing: string[] = []
    for (const file of files.filter((f) => /\.(ts|mjs)$/.test(f) && !f.endsWith('.d.ts'))) {
      const source = readFileSync(join(REPO_ROOT, file), 'utf8')
      const specs = ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName)
      for (const m of withoutComments(source).matchAll(/new\s+URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g)) specs.push(m[2]!)
      for (const spec of specs.filter((s) => s.startsWith('.'))) {
        const target = posix.normalize(posix.join(posix.dirname(file), spec))
        if (!packed.has(target)) missing.push(`${file} imports ${spec}`)
      }
    }
    expect(missing).toEqual([])
    expect(files.length).toBeGreaterThan(100)
  })

  it('a scratch Vite app that installs the tarball builds a page that imports burrow, with its worker', () => {
    const app = join(dir, 'app')
    mkdirSync(app)
    const vite = (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules/vite/package.json'), 'utf8')) as { version: string }).version
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, type: 'module', dependencies: { burrow: `file:${tarball}`, vite } }, null, 2))
    writeFileSync(join(app, 'index.html'), '<!doctype html>\n<html><body><script type="module" src="/main.ts"></script></body></html>\n')
    // The README's setup for vite build: module workers.
    writeFileSync(join(app, 'vite.config.js'), "export default { worker: { format: 'es' } }\n")
    writeFileSync(
      join(app, 'main.ts'),
      [
        "import { Burrow, BurrowError } from 'burrow'",
        "const result = await Burrow.start({ controlURL: 'http://127.0.0.1:9', authKey: 'bwauth-x', hostname: 'tab', storage: 'memory' }).then(",
        '  (node) => node.hostname,',
        '  (error: unknown) => (error instanceof BurrowError ? error.code : String(error)),',
        ')',
        'document.title = result',
        '',
      ].join('\n'),
    )
    // --ignore-scripts: better-sqlite3's native build (the relay's store) plays no part in bundling a page.
    execFileSync('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] })
    const installed = readdirSync(join(app, 'node_modules/burrow/src'))
    expect(installed).toContain('index.ts')

    execFileSync(join(app, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] })
    const assets = readdirSync(join(app, 'dist/assets'))
    const scripts = assets.filter((a) => a.endsWith('.js'))
    // The page's entry plus the worker chunk src/index.ts starts with new Worker(new URL(…)).
    expect(scripts.some((a) => /^index-.*\.js$/.test(a))).toBe(true)
    expect(scripts.some((a) => /worker/.test(a))).toBe(true)
    for (const script of scripts) {
      // Nothing Node-only reached the browser bundle (Vite would leave such imports in place).
      expect(readFileSync(join(app, 'dist/assets', script), 'utf8'), script).not.toMatch(/from\s*["']node:|require\(["']node:/)
    }
  })
})
