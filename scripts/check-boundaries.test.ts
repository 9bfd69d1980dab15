// The boundary check run as `npm test` runs it (a child process), on the real tree and on scratch
// copies of it with deliberately bad imports added.
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const SCRIPT = join(ROOT, 'scripts', 'check-boundaries.mjs')

function run(root: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [SCRIPT, '--root', root], { encoding: 'utf8' })
  return { status: result.status, output: result.stdout + result.stderr }
}

const scratch: string[] = []
afterEach(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A copy of everything the check reads, plus `extra` files (path → source). */
function tree(extra: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-boundaries-'))
  scratch.push(dir)
  for (const part of ['src', 'demo', 'e2e/pages', 'package.json', 'DEVELOPERS.md', 'tsconfig.browser.json']) cpSync(join(ROOT, part), join(dir, part), { recursive: true })
  for (const [path, source] of Object.entries(extra)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true })
    writeFileSync(join(dir, path), source)
  }
  return dir
}

// Each case starts Node and loads TypeScript's scanner: seconds apiece on a loaded machine.
describe('scripts/check-boundaries.mjs', { timeout: 90_000 }, () => {
  it('passes on the repository as it is, DEVELOPERS.md table included', () => {
    const { status, output } = run(ROOT)
    expect(output).toMatch(/files follow the layer table/)
    expect(status).toBe(0)
  })

  it('fails on a single wire file that imports the tunnel', () => {
    const { status, output } = run(tree({ 'src/wire/bad.ts': "import { Tunnel } from '../tunnel/index.ts'\nexport const t = Tunnel\n" }))
    expect(status).toBe(1)
    expect(output).toContain('src/wire/bad.ts: wire may not import tunnel (../tunnel/index.ts)')
  })

  it('names every kind of forbidden import, whichever syntax carries it', () => {
    const { status, output } = run(
      tree({
        // page/worker code reaching Node: a builtin, a Node-only package, a Node-only file, a type-only import()
        'src/worker/bad-node.ts': "import { readFileSync } from 'node:fs'\nexport const r = readFileSync\n",
        'src/proxy/bad-ws.ts': "export type W = typeof import('ws')\n",
        'src/agent/bad-file.ts': "export { fromNodeSocket } from '../http/node-socket.ts'\n",
        'src/burrow-bad.ts': 'export {}\n',
        // a sans-IO core importing a driver, through `export * from`
        'src/tunnel/bad-driver.ts': "export * from '../underlay/derp/index.ts'\n",
        // underlay reaching up into the agent, through a dynamic import
        'src/underlay/derp/bad-agent.ts': "export const load = () => import('../../agent/agent.ts')\n",
        // crypto libraries and the crypto layer's own mappings outside src/crypto
        'src/overlay/bad-noble.ts': "import { sha256 } from '@noble/hashes/sha2.js'\nexport const h = sha256\n",
        'src/dataplane/bad-mapping.ts': "import { seal } from '#aead'\nexport const s = seal\n",
        // node:crypto in src/crypto outside the files #aead/#x25519 map to under Node
        'src/crypto/sha-openssl.ts': "import { createHash } from 'node:crypto'\nexport const c = createHash\n",
        // a page starting a worker whose file is Node-only
        'demo/bad-worker.ts': "new Worker(new URL('../src/underlay/udp/udp-underlay.ts', import.meta.url), { type: 'module' })\n",
      }),
    )
    expect(status).toBe(1)
    for (const expected of [
      'src/worker/bad-node.ts: runs in browsers (worker) but imports node:fs',
      'src/proxy/bad-ws.ts: runs in browsers (proxy) but imports ws, which is not in BROWSER_PACKAGES',
      'src/agent/bad-file.ts: runs in browsers (agent) but imports the Node-only src/http/node-socket.ts',
      'src/burrow-bad.ts: belongs to no layer',
      'src/tunnel/bad-driver.ts: tunnel may not import underlay/derp',
      'src/tunnel/bad-driver.ts: the sans-IO core tunnel imports the driver underlay/derp',
      'src/underlay/derp/bad-agent.ts: underlay/derp may not import agent (../../agent/agent.ts)',
      'src/overlay/bad-noble.ts: imports @noble/hashes/sha2.js; crypto libraries are imported only in src/crypto',
      "src/dataplane/bad-mapping.ts: #aead is the crypto layer's own mapping",
      'src/crypto/sha-openssl.ts: runs in browsers (crypto) but imports node:crypto',
      'demo/bad-worker.ts: runs in browsers (demo) but imports the Node-only src/underlay/udp/udp-underlay.ts',
    ]) {
      expect(output).toContain(expected)
    }
  })

  it('lets tests and testing helpers import anything', () => {
    const { status, output } = run(
      tree({
        'src/wire/anything.test.ts': "import { readFileSync } from 'node:fs'\nimport { Tunnel } from '../tunnel/index.ts'\nexport const x = [readFileSync, Tunnel]\n",
        'src/worker/testing/helper.ts': "import { WebSocket } from 'ws'\nexport const w = WebSocket\n",
      }),
    )
    expect(output).not.toMatch(/anything\.test\.ts|helper\.ts/)
    expect(status).toBe(0)
  })

  it('fails when the table in DEVELOPERS.md no longer matches LAYERS', () => {
    const dir = tree()
    const developers = join(dir, 'DEVELOPERS.md')
    writeFileSync(developers, readFileSync(developers, 'utf8').replace('| wire | `src/wire` | core |', '| wire | `src/wire` | driver |'))
    const { status, output } = run(dir)
    expect(status).toBe(1)
    expect(output).toContain("DEVELOPERS.md's layer table differs from LAYERS")
  })

  it('fails when tsconfig.browser.json stops excluding a Node-only path of the table', () => {
    const dir = tree()
    const config = join(dir, 'tsconfig.browser.json')
    writeFileSync(config, readFileSync(config, 'utf8').replace('"src/server",', ''))
    const { status, output } = run(dir)
    expect(status).toBe(1)
    expect(output).toContain('tsconfig.browser.json must exclude src/server (Node-only in LAYERS)')
  })

  it('fails when a listed exception no longer occurs, so the table gets cleaned up', () => {
    const dir = tree()
    // The coordination control plane stops importing the DERP dialer: its allowed-for-now exception is stale.
    writeFileSync(join(dir, 'src/control/coordination-control-plane.ts'), 'export {}\n')
    const { status, output } = run(dir)
    expect(status).toBe(1)
    expect(output).toContain('src/control/coordination-control-plane.ts: the listed exception "control imports underlay/derp" no longer occurs')
  })
})
