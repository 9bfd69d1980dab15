// `burrow relay --tls-cert/--tls-key` with Chromium (issue 15): the relay serves https:// and
// wss:// with a certificate this test makes with openssl; Chromium is launched trusting exactly
// that certificate's public key (--ignore-certificate-errors-spki-list, base64 SHA-256 of the
// SubjectPublicKeyInfo), as a developer with a private CA would. A tab joins with an https
// controlURL and reaches a `burrow up` Node peer (a child process trusting the CA through
// NODE_EXTRA_CA_CERTS) over DERP-over-wss: a ping, 1 MB each way byte-exact, and a second Node process fetches from the tab. A second
// relay with a certificate Chromium does not trust makes `Burrow.start` in a tab fail with a
// BurrowError. No timing is asserted: each step waits for its condition.
import { execFileSync } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { patternBytes } from '../src/overlay/testing/pair.ts'
import { type BurrowProcess, spawnBurrow } from '../test/helpers/burrow-process.ts'
import { fetchOnce } from '../test/helpers/fetch-once-process.ts'
import { createAuthKey, type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from '../test/helpers/relay-process.ts'
import { launchChromium, startPageServer, type LaunchedBrowser, type PageServer } from './helpers/browser.ts'

const MB1 = 1 << 20
const BODY = patternBytes(MB1, 17)
const BODY_SHA256 = createHash('sha256').update(BODY).digest('hex')
const dir = mkdtempSync(join(tmpdir(), 'burrow-e2e-tls-'))
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

/** A CA and a leaf for 127.0.0.1 signed by it; and a self-signed "stranger" the browser is not told about. */
function makeCertificates(): void {
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Burrow e2e test CA')
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n')
  openssl('req', ...ec, '-keyout', 'relay.key', '-out', 'relay.csr', '-subj', '/CN=burrow e2e relay')
  openssl('x509', '-req', '-in', 'relay.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'relay.pem', '-days', '2', '-extfile', 'leaf.ext')
  openssl('req', '-x509', ...ec, '-keyout', 'stranger.key', '-out', 'stranger.pem', '-days', '2', '-subj', '/CN=stranger', '-addext', 'subjectAltName=IP:127.0.0.1')
}

/** What --ignore-certificate-errors-spki-list takes: base64 of the SHA-256 of the certificate's DER SubjectPublicKeyInfo. */
function spkiHash(file: string): string {
  const spki = new X509Certificate(readFileSync(join(dir, file))).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64')
}

let relay: RelayProcess
let stranger: RelayProcess
let up: BurrowProcess
let http: HttpServer
let sink: NetServer
/** SHA-256 and length of each connection the sink saw, once it ended. */
const sunk: Array<{ bytes: number; sha256: string }> = []
let key: string
let controlURL: string
let pages: PageServer
let browser: LaunchedBrowser
let tab: Page
const trustCA = { NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') }

async function openTab(): Promise<Page> {
  const page = await browser.newPage()
  await page.goto(`${pages.url}/e2e/pages/burrow.html`)
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 })
  return page
}

beforeAll(async () => {
  makeCertificates()
  relay = await startRelayProcess(['--stun-port', '0', '--tls-cert', join(dir, 'relay.pem'), '--tls-key', join(dir, 'relay.key')])
  stranger = await startRelayProcess(['--stun-port', '0', '--tls-cert', join(dir, 'stranger.pem'), '--tls-key', join(dir, 'stranger.key')])
  controlURL = `https://127.0.0.1:${relay.port}`
  key = createAuthKey(relay.dataDir, '--reusable')
  http = createHttpServer((_request, response) => response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length }).end(BODY))
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  sink = createNetServer((socket) => {
    const hash = createHash('sha256')
    let bytes = 0
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      bytes += chunk.length
    })
    socket.on('end', () => {
      sunk.push({ bytes, sha256: hash.digest('hex') })
      socket.end()
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
  up = spawnBurrow(
    [
      'up',
      '--control',
      controlURL,
      '--authkey',
      key,
      '--hostname',
      'tls-node',
      '--ephemeral',
      '--no-direct',
      '--serve',
      `80=127.0.0.1:${(http.address() as AddressInfo).port}`,
      '--serve',
      `81=127.0.0.1:${(sink.address() as AddressInfo).port}`,
    ],
    trustCA,
  )
  await waitFor('burrow up to join over https', () => up.logs.some((l) => l.msg === 'up') || up.proc.exitCode !== null, 60_000)
  if (!up.logs.some((l) => l.msg === 'up')) throw new Error(`burrow up did not join: ${up.stderr()} ${JSON.stringify(up.logs)}`)
  pages = await startPageServer()
  // Trusts the relay's key only: the stranger's certificate stays untrusted.
  browser = await launchChromium({ args: [`--ignore-certificate-errors-spki-list=${spkiHash('relay.pem')}`] })
  tab = await openTab()
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await pages?.close()
  if (up?.proc.exitCode === null) {
    up.proc.kill('SIGKILL')
    await up.exited
  }
  await relay?.stop('SIGKILL')
  await stranger?.stop('SIGKILL')
  http?.closeAllConnections()
  http?.close()
  sink?.close()
  removeRelayDataDirs()
  rmSync(dir, { recursive: true, force: true })
})

describe('burrow relay with TLS, from Chromium', () => {
  it('a tab trusting the relay’s certificate joins through https/wss, pings a Node peer, moves 1 MB each way byte-exact with it over DERP-over-wss, and a Node process reaches the tab', async () => {
    expect(relay.url).toBe(`https://127.0.0.1:${relay.port}/derp`)
    const started = await tab.evaluate(
      ([url, authKey]) => window.burrowNodeE2E.start({ controlURL: url as string, authKey: authKey as string, hostname: 'tls-tab', direct: false, storage: 'memory' }),
      [controlURL, key] as const,
    )
    expect(started.ok, JSON.stringify(started)).toBe(true)
    await tab.evaluate(() => window.burrowNodeE2E.waitForPeer('tls-node', true, 60_000))
    // The relay hands out its own TLS DERP URL: the tab reaches the Node peer through it.
    const nodePeer = (await tab.evaluate(() => window.burrowNodeE2E.peers())).find((p) => p.hostname === 'tls-node')
    expect(nodePeer?.relayURL).toBe(`wss://127.0.0.1:${relay.port}/derp`)
    expect(await tab.evaluate(() => window.burrowNodeE2E.ping('tls-node'))).toBeGreaterThan(0)
    // Node peer → tab: 1 MB download, byte-exact.
    expect(await tab.evaluate(() => window.burrowNodeE2E.fetchDigest('http://tls-node/'))).toMatchObject({ status: 200, bytes: MB1, sha256: BODY_SHA256 })
    // Tab → Node peer: 1 MB over a TCP stream to the peer's --serve 81, hashed where it lands.
    const sent = await tab.evaluate((size) => window.burrowNodeE2E.send('tls-node', 81, size, 23), MB1)
    await waitFor('the sink to see the upload end', () => sunk.length > 0, 60_000)
    expect(sunk[0]).toEqual({ bytes: MB1, sha256: sent.sha256 })
    // And a Node process (trusting the CA) reaches the tab: the other direction of the overlay.
    await tab.evaluate(() => window.burrowNodeE2E.serve(8081, 'hello from the tls tab'))
    const fromNode = await fetchOnce(controlURL, key, 'tls-tab', 'http://tls-tab:8081/hi', trustCA)
    const greeting = 'hello from the tls tab GET /hi '
    expect(fromNode).toMatchObject({ status: 200, bytes: greeting.length, sha256: createHash('sha256').update(greeting).digest('hex') })
    expect(String(fromNode.relayURL)).toMatch(/^(wss|https):\/\/127\.0\.0\.1:/)
  }, 180_000)

  it('a tab given a relay whose certificate it does not trust fails Burrow.start with a BurrowError saying the coordination service is unreachable', async () => {
    const other = await openTab()
    try {
      const strangerKey = createAuthKey(stranger.dataDir, '--reusable')
      const started = await other.evaluate(
        ([url, authKey]) => window.burrowNodeE2E.start({ controlURL: url as string, authKey: authKey as string, hostname: 'doubter', direct: false, storage: 'memory' }),
        [`https://127.0.0.1:${stranger.port}`, strangerKey] as const,
      )
      // What the user sees: the browser hides the TLS reason from pages, so the error names the
      // service it could not reach and how the WebSocket ended (1006: closed without a handshake).
      expect(started).toEqual({
        ok: false,
        error: {
          name: 'BurrowError',
          code: 'unreachable',
          status: 0,
          message: `cannot reach the coordination service at https://127.0.0.1:${stranger.port}: connection closed (code 1006)`,
        },
      })
      // The relay saw the handshake fail and is unharmed: a client trusting its certificate gets its health check.
      expect(execFileSync('curl', ['-sS', '--cacert', join(dir, 'stranger.pem'), `https://127.0.0.1:${stranger.port}/healthz`], { encoding: 'utf8' })).toBe('ok\n')
    } finally {
      await other.close()
    }
  }, 180_000)
})
