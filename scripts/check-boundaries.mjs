// The import-boundary check: the layer table below is the single source of the rules in
// DEVELOPERS.md (its "Layers" table is generated from LAYERS; `--write` refreshes it, the check
// fails when it has drifted). Every import, `export … from`, dynamic `import()` / `import('x')`
// type and `new URL('./x.ts', import.meta.url)` worker entry in src/, demo/ and e2e/pages/ is
// resolved to a layer and checked against:
//   1. layer edges: a file imports only its own layer and the layers its row allows;
//   2. sans-IO: a core (kind `core`) imports only other cores;
//   3. runtime: code that runs in browsers (page, worker, Service Worker, and every core and driver
//      shared with Node) imports no `node:*` or other Node builtin, no Node-only file, and only the
//      npm packages in BROWSER_PACKAGES;
//   4. crypto libraries: `@noble/*` and the `#aead`/`#x25519` mappings only from src/crypto; the
//      files package.json maps those to under `node` are the only Node-only crypto files, so
//      they alone may use `node:crypto`.
// Tests (`*.test.ts`) and test helpers (`testing/`, `testing.ts`, `test-*.ts`) run under vitest in
// Node: they may import anything. test/, e2e/*.test.ts, bench/ and scripts/ are not checked.
//
//   node scripts/check-boundaries.mjs            check the repository (exit 1 on a violation)
//   node scripts/check-boundaries.mjs --root DIR check another tree (the test uses a scratch copy)
//   node scripts/check-boundaries.mjs --write    regenerate the table in DEVELOPERS.md
// It also checks that tsconfig.browser.json excludes exactly the Node-only paths of LAYERS.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, join, posix, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

/**
 * One row per layer. `paths` are repository-relative prefixes (a folder or one file); a file belongs
 * to the row with the longest matching prefix. `kind`: `core` = sans-IO (takes `now`, touches no
 * socket, timer or worker), `driver` = owns I/O or timers, `entry` = public API, `app` =
 * page code outside the library. `runs`: `browser` (page/worker only), `both` (must also work in a
 * page or worker), `node`. `may`: the other layers it may import (`*` = any); `anyDriverMay`:
 * every layer that is not a core may import this one. `nodeOnly`: files of a
 * `both` layer that only Node loads (they may use Node). `exceptions`: known violations, each with a
 * TODO; the check lets exactly these through and fails once one no longer occurs, so the row gets
 * cleaned up.
 */
export const LAYERS = [
  {
    layer: 'clock',
    paths: ['src/clock'],
    kind: 'driver',
    runs: 'both',
    may: [],
    anyDriverMay: true,
    holds: '`DriverClock` (`systemClock`, `wallClock`, `ManualClock`) and `DeadlineTimer`: the one timer abstraction every driver uses',
  },
  {
    layer: 'errors',
    paths: ['src/burrow-errors.ts'],
    kind: 'entry',
    runs: 'both',
    may: ['control'],
    anyDriverMay: true,
    holds: '`BurrowError` and its codes (part of the public API), shared by the API and every control plane',
  },
  {
    layer: 'wire',
    paths: ['src/wire'],
    kind: 'core',
    runs: 'both',
    may: [],
    holds: 'IPv4/IPv6/ICMP/UDP/TCP codecs and checksums, IP address + prefix helpers, pcap, packet summaries',
  },
  {
    layer: 'crypto',
    paths: ['src/crypto'],
    kind: 'core',
    runs: 'both',
    may: [],
    holds: 'the only place crypto libraries (`@noble/*`, and `node:crypto` through `#aead`/`#x25519`) are imported',
  },
  {
    layer: 'tunnel',
    paths: ['src/tunnel'],
    kind: 'core',
    runs: 'both',
    may: ['crypto', 'wire'],
    holds: 'WireGuard, one file per concern (messages, handshake, session, replay, cookie, timers, peer, tunnel)',
  },
  {
    layer: 'dataplane core',
    paths: ['src/dataplane'],
    kind: 'core',
    runs: 'both',
    may: ['tunnel', 'wire', 'crypto'],
    holds: 'the synchronous core (AllowedIPs routing + tunnel), transport interfaces, errors, `nextWakeup`',
  },
  {
    layer: 'dataplane driver',
    paths: ['src/dataplane/driver.ts', 'src/dataplane/index.ts'],
    kind: 'driver',
    runs: 'both',
    may: ['dataplane core', 'tunnel', 'wire', 'crypto'],
    holds: 'the async driver (queues, transports, the one timer on `src/clock`)',
  },
  { layer: 'overlay core', paths: ['src/overlay'], kind: 'core', runs: 'both', may: ['wire', 'crypto'], holds: 'userspace TCP/IP stack: IP demux, TCP, UDP, ICMP' },
  {
    layer: 'overlay host',
    paths: ['src/overlay/host.ts', 'src/overlay/sockets.ts', 'src/overlay/index.ts'],
    kind: 'driver',
    runs: 'both',
    may: ['overlay core', 'wire', 'crypto'],
    holds: '`StackHost` (clocks the stack) and the sockets API (WHATWG streams)',
  },
  {
    layer: 'http',
    paths: ['src/http'],
    kind: 'driver',
    runs: 'both',
    may: ['wire', 'crypto'],
    nodeOnly: ['src/http/node-socket.ts', 'src/http/node-upgrade.ts'],
    holds: 'HTTP/1.1 client and server over any byte stream (`fetch`, `serve`), and the one Node HTTP Upgrade dialer (DERP, ts2021)',
  },
  {
    layer: 'underlay',
    paths: ['src/underlay'],
    kind: 'driver',
    runs: 'both',
    may: ['dataplane core', 'dataplane driver', 'wire', 'crypto'],
    holds: 'what all transports share (the fault injector)',
  },
  {
    layer: 'underlay/disco',
    paths: ['src/underlay/disco'],
    kind: 'core',
    runs: 'both',
    may: ['dataplane core', 'wire', 'crypto'],
    holds: 'disco messages and the path selector (Tailscale magicsock rules)',
  },
  {
    layer: 'underlay/derp',
    paths: ['src/underlay/derp'],
    kind: 'driver',
    runs: 'both',
    may: ['dataplane core', 'dataplane driver', 'underlay', 'http', 'wire', 'crypto'],
    nodeOnly: ['src/underlay/derp/http-dialer.ts', 'src/underlay/derp/node.ts'],
    holds: 'DERP v2 client: frames, session, connection with reconnect, WebSocket and HTTP-upgrade dialers',
  },
  {
    layer: 'underlay/udp',
    paths: ['src/underlay/udp'],
    kind: 'driver',
    runs: 'node',
    may: ['dataplane core', 'dataplane driver', 'underlay', 'wire', 'crypto'],
    holds: 'plain UDP transport (`node:dgram`)',
  },
  {
    layer: 'underlay/webrtc',
    paths: ['src/underlay/webrtc'],
    kind: 'driver',
    runs: 'both',
    may: ['dataplane core', 'dataplane driver', 'underlay', 'underlay/disco', 'wire', 'crypto'],
    holds: 'WebRTC datachannel transport, the page agent that owns `RTCPeerConnection`, signalling over disco',
  },
  {
    layer: 'control',
    paths: ['src/control'],
    kind: 'driver',
    runs: 'both',
    may: ['crypto', 'wire'],
    nodeOnly: ['src/control/key-store-node.ts'],
    exceptions: [
      {
        file: 'src/control/coordination-control-plane.ts',
        imports: 'underlay/derp',
        todo: 'TODO: it needs only webSocketUrl (http(s) to ws(s) URL form) from underlay/derp/dialer.ts; move that helper below both',
      },
    ],
    holds: 'the `ControlPlane` interface, Burrow coordination client, wg-quick config, key storage',
  },
  {
    layer: 'control/tailnet',
    paths: ['src/control/tailnet'],
    kind: 'driver',
    runs: 'both',
    may: ['control', 'http', 'crypto', 'wire'],
    nodeOnly: ['src/control/tailnet/dial-node.ts'],
    holds: 'Tailscale control client: ts2021 Noise, HTTP/2, register and map stream, netmap merge',
  },
  {
    layer: 'worker',
    paths: ['src/worker'],
    kind: 'driver',
    runs: 'both',
    may: ['dataplane core', 'dataplane driver', 'underlay', 'underlay/derp', 'underlay/disco', 'underlay/webrtc', 'wire', 'crypto'],
    holds: 'the dataplane Web Worker (host, page⇄worker protocol, client, port transports)',
  },
  {
    layer: 'agent',
    paths: ['src/agent'],
    kind: 'driver',
    runs: 'both',
    may: ['control', 'control/tailnet', 'worker', 'dataplane core', 'dataplane driver', 'underlay', 'underlay/derp', 'underlay/disco', 'underlay/webrtc', 'wire', 'crypto'],
    holds: 'the node agent: keys, one control plane, relay pool, direct paths, peer sync (see `src/agent/README.md`)',
  },
  {
    layer: 'proxy',
    paths: ['src/proxy'],
    kind: 'driver',
    runs: 'browser',
    may: ['http', 'overlay host', 'overlay core', 'wire'],
    holds: 'the Service Worker proxy (built to `public/burrow-sw.js`) and its page side',
  },
  {
    layer: 'api',
    paths: ['src/index.ts', 'src/burrow.ts', 'src/burrow-options.ts', 'src/burrow-options.test.ts', 'src/burrow-stack.ts'],
    kind: 'entry',
    runs: 'both',
    may: [
      'agent',
      'worker',
      'control',
      'control/tailnet',
      'http',
      'overlay host',
      'overlay core',
      'underlay',
      'underlay/derp',
      'underlay/disco',
      'underlay/webrtc',
      'dataplane core',
      'dataplane driver',
      'wire',
      'crypto',
      'proxy',
    ],
    holds: '`burrow` in browsers: `Burrow.start`, `BurrowError`',
  },
  { layer: 'api/node', paths: ['src/node.ts'], kind: 'entry', runs: 'node', may: ['*'], holds: '`burrow` and `burrow/node` under Node' },
  {
    layer: 'node',
    paths: ['src/node'],
    kind: 'driver',
    runs: 'node',
    may: ['*'],
    holds: 'Node-only pieces: UDP tunnel to plain WireGuard peers, TCP/UDP bridges, status file, pcap file',
  },
  { layer: 'server', paths: ['src/server'], kind: 'driver', runs: 'node', may: ['*'], holds: '`burrow relay`: DERP server, coordination, STUN, static files' },
  { layer: 'cli', paths: ['src/cli'], kind: 'driver', runs: 'node', may: ['*'], holds: '`burrow …` commands, thin' },
  { layer: 'demo', paths: ['demo'], kind: 'app', runs: 'browser', may: ['*'], holds: 'the demo page `npm start` serves' },
  { layer: 'e2e pages', paths: ['e2e/pages'], kind: 'app', runs: 'browser', may: ['*'], holds: 'pages and workers the Playwright tests load' },
]

/** npm packages that code running in a browser may import. Anything else (`ws`, `pg`, …) is Node-only. */
export const BROWSER_PACKAGES = ['@noble/ciphers', '@noble/curves', '@noble/hashes', 'idb-keyval', 'simple-peer', 'fzstd']

/** Folders whose files are checked; everything else (test/, bench/, scripts/, e2e/*.test.ts) may import anything. */
const CHECKED = ['src', 'demo', 'e2e/pages']
const SOURCE = /\.(?:ts|mts|js|mjs)$/
const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))

const isTest = (file) => /\.test\.[mc]?[jt]s$/.test(file) || /(^|\/)testing(\/|\.ts$)/.test(file) || /(^|\/)test-[^/]*$/.test(file)

export function layerOf(file) {
  let best
  let bestLength = -1
  for (const row of LAYERS) {
    for (const p of row.paths) {
      if ((file === p || file.startsWith(`${p}/`)) && p.length > bestLength) {
        best = row
        bestLength = p.length
      }
    }
  }
  return best
}

const isNodeOnly = (file, row, nodeCrypto) => row.runs === 'node' || (row.nodeOnly ?? []).includes(file) || nodeCrypto.has(file)
const packageName = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0])

function listFiles(root) {
  const out = []
  const walk = (dir) => {
    const abs = join(root, dir)
    if (!existsSync(abs)) return
    for (const name of readdirSync(abs)) {
      if (name === 'node_modules' || name.startsWith('.')) continue
      const rel = posix.join(dir, name)
      if (statSync(join(root, rel)).isDirectory()) walk(rel)
      else if (SOURCE.test(name) && !name.endsWith('.d.ts')) out.push(rel)
    }
  }
  for (const dir of CHECKED) walk(dir)
  return out.sort()
}

/** Source with comments blanked (a comment may quote `new URL(…)`); `://` in strings survives. */
const withoutComments = (source) => source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1')

/** Every module specifier in a file: static and type imports, `export … from`, `import()`, worker URLs. */
export function specifiersOf(source) {
  const info = ts.preProcessFile(source, true, true)
  const specs = info.importedFiles.map((f) => f.fileName)
  for (const ref of info.typeReferenceDirectives) specs.push(ref.fileName)
  for (const m of withoutComments(source).matchAll(/new\s+URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g)) specs.push(m[2])
  return specs
}

/** The files package.json's `imports` map `#aead`/`#x25519` to under the `node` condition. */
function nodeCryptoFiles(root) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  return new Set(
    Object.values(pkg.imports ?? {})
      .map((target) => (typeof target === 'object' ? target.node : undefined))
      .filter(Boolean)
      .map((p) => posix.normalize(p).replace(/^\.\//, '')),
  )
}

/** Where LAYERS and tsconfig.browser.json disagree about which paths are Node-only. */
export function browserProjectProblems(root) {
  const path = join(root, 'tsconfig.browser.json')
  if (!existsSync(path)) return ['tsconfig.browser.json is missing']
  const { config, error } = ts.readConfigFile(path, ts.sys.readFile)
  if (error) return [`tsconfig.browser.json: ${ts.flattenDiagnosticMessageText(error.messageText, ' ')}`]
  const excluded = new Set((config.exclude ?? []).filter((p) => !p.includes('*') && p.startsWith('src')))
  const nodeOnly = new Set([...nodeCryptoFiles(root)])
  for (const row of LAYERS) {
    if (row.runs === 'node') for (const p of row.paths) if (p.startsWith('src')) nodeOnly.add(p)
    for (const f of row.nodeOnly ?? []) nodeOnly.add(f)
  }
  const problems = []
  for (const p of nodeOnly) if (!excluded.has(p)) problems.push(`tsconfig.browser.json must exclude ${p} (Node-only in LAYERS)`)
  for (const p of excluded) if (!nodeOnly.has(p)) problems.push(`tsconfig.browser.json excludes ${p}, which LAYERS says runs in browsers`)
  return problems
}

export function check(root) {
  const violations = []
  const used = new Set()
  const nodeCrypto = nodeCryptoFiles(root)
  for (const file of listFiles(root)) {
    const row = layerOf(file)
    if (!row) {
      violations.push(`${file}: belongs to no layer; add a row for it to LAYERS in scripts/check-boundaries.mjs (and DEVELOPERS.md follows)`)
      continue
    }
    const test = isTest(file)
    const browser = !test && !isNodeOnly(file, row, nodeCrypto)
    const source = readFileSync(join(root, file), 'utf8')
    if (browser && /\/\/\/\s*<reference\s+types=["']node["']/.test(source)) violations.push(`${file}: references Node's types, but it runs in browsers (${row.layer})`)
    for (const spec of specifiersOf(source)) {
      if (spec.startsWith('.') || spec.startsWith('/')) {
        const target = posix.normalize(posix.join(posix.dirname(file), spec))
        const to = layerOf(target)
        if (test) continue
        if (!to) {
          if (target.startsWith('src/') || row.kind !== 'app') violations.push(`${file}: imports ${spec}, which belongs to no layer`)
          continue
        }
        if (to !== row && !row.may.includes('*') && !row.may.includes(to.layer) && !(to.anyDriverMay && row.kind !== 'core')) {
          const exception = (row.exceptions ?? []).find((e) => e.file === file && e.imports === to.layer)
          if (exception) used.add(exception)
          else violations.push(`${file}: ${row.layer} may not import ${to.layer} (${spec}); ${row.layer} may import ${row.may.join(', ') || 'nothing of Burrow'}`)
        }
        if (row.kind === 'core' && to.kind !== 'core') violations.push(`${file}: the sans-IO core ${row.layer} imports the ${to.kind} ${to.layer} (${spec})`)
        if (browser && isNodeOnly(target, to, nodeCrypto)) violations.push(`${file}: runs in browsers (${row.layer}) but imports the Node-only ${target}`)
        continue
      }
      if (spec.startsWith('#')) {
        if (row.layer !== 'crypto' && !test) violations.push(`${file}: ${spec} is the crypto layer's own mapping; import src/crypto/index.ts instead`)
        continue
      }
      if (NODE_BUILTINS.has(spec) || spec.startsWith('node:')) {
        if (browser) violations.push(`${file}: runs in browsers (${row.layer}) but imports ${spec}`)
        continue
      }
      const name = packageName(spec)
      if (test) continue
      if (name.startsWith('@noble/') && row.layer !== 'crypto') violations.push(`${file}: imports ${spec}; crypto libraries are imported only in src/crypto`)
      if (browser && !BROWSER_PACKAGES.includes(name) && name !== 'burrow')
        violations.push(`${file}: runs in browsers (${row.layer}) but imports ${spec}, which is not in BROWSER_PACKAGES`)
    }
  }
  for (const row of LAYERS) {
    for (const e of row.exceptions ?? []) {
      if (!used.has(e)) violations.push(`${e.file}: the listed exception "${row.layer} imports ${e.imports}" no longer occurs; remove it from LAYERS`)
    }
  }
  return violations
}

// ---- the table in DEVELOPERS.md ----

const START = '<!-- layer-table: generated by `node scripts/check-boundaries.mjs --write` from LAYERS in that script -->'
const END = '<!-- /layer-table -->'
const RUNS = { browser: 'browser', both: 'browser + Node', node: 'Node' }

export function markdownTable() {
  const cell = (s) => s.replaceAll('|', '\\|')
  const lines = ['| layer | path | kind | runs in | may import | holds |', '|---|---|---|---|---|---|']
  for (const row of LAYERS) {
    const shared = LAYERS.filter((r) => r.anyDriverMay && r !== row && row.kind !== 'core' && !row.may.includes('*')).map((r) => r.layer)
    const may = row.may.includes('*') ? 'anything' : [...shared, ...row.may].join(', ') || 'nothing of Burrow'
    const exceptions = (row.exceptions ?? []).map((e) => ` **Allowed for now:** \`${e.file}\` imports ${e.imports} (${e.todo}).`).join('')
    const nodeOnly = row.nodeOnly?.length ? ` Node-only: ${row.nodeOnly.map((f) => `\`${f}\``).join(', ')}.` : ''
    lines.push(`| ${row.layer} | ${row.paths.map((p) => `\`${p}\``).join(', ')} | ${row.kind} | ${RUNS[row.runs]} | ${may} | ${cell(row.holds)}.${nodeOnly}${exceptions} |`)
  }
  return `${START}\n${lines.join('\n')}\n${END}`
}

export function developersTableProblem(root) {
  const path = join(root, 'DEVELOPERS.md')
  const text = existsSync(path) ? readFileSync(path, 'utf8') : ''
  const start = text.indexOf(START)
  const end = text.indexOf(END)
  if (start < 0 || end < 0) return 'DEVELOPERS.md has no generated layer table; run node scripts/check-boundaries.mjs --write'
  if (text.slice(start, end + END.length) !== markdownTable()) return "DEVELOPERS.md's layer table differs from LAYERS; run node scripts/check-boundaries.mjs --write"
  return undefined
}

function writeDevelopersTable(root) {
  const path = join(root, 'DEVELOPERS.md')
  const text = readFileSync(path, 'utf8')
  const start = text.indexOf(START)
  const end = text.indexOf(END)
  if (start < 0 || end < 0) throw new Error(`DEVELOPERS.md needs the markers ${START} … ${END}`)
  writeFileSync(path, text.slice(0, start) + markdownTable() + text.slice(end + END.length))
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const rootIndex = args.indexOf('--root')
  const root = rootIndex >= 0 ? resolve(args[rootIndex + 1]) : resolve(dirname(fileURLToPath(import.meta.url)), '..')
  if (args.includes('--write')) {
    writeDevelopersTable(root)
    console.log('DEVELOPERS.md: layer table written')
  }
  const violations = check(root)
  const table = developersTableProblem(root)
  if (table) violations.push(table)
  violations.push(...browserProjectProblems(root))
  if (violations.length > 0) {
    console.error(`import boundaries: ${violations.length} problem${violations.length === 1 ? '' : 's'}`)
    for (const v of violations) console.error(`  ${v}`)
    process.exit(1)
  }
  console.log(`import boundaries: ${listFiles(root).length} files follow the layer table`)
}
