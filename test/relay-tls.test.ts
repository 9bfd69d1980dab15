// `burrow relay --tls-cert/--tls-key`: the relay serves https:// and wss:// itself, with a
// certificate from a CA this test makes with openssl. Node peers (child processes trusting the CA
// through NODE_EXTRA_CA_CERTS, as a user would) join and move bytes over DERP-over-wss; a
// certificate the client does not trust is a clear error; SIGHUP swaps the certificate without
// dropping the peers already connected.
import { execFileSync } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { patternBytes } from '../src/overlay/testing/pair.ts'
import { type BurrowProcess, spawnBurrow } from './helpers/burrow-process.ts'
import { fetchOnce } from './helpers/fetch-once-process.ts'
import { createAuthKey, type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from './helpers/relay-process.ts'

const BODY = patternBytes(3 << 20, 7)
const dir = mkdtempSync(join(tmpdir(), 'burrow-tls-'))
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })

/** A CA, and leaf certificates for 127.0.0.1 signed by it (or self-signed, for the untrusted case). */
function makeCertificates(): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Burrow test CA')
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n')
  for (const name of ['a', 'b']) {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=relay ${name}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', 'leaf.ext')
  }
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'self.key',
    '-out',
    'self.pem',
    '-days',
    '2',
    '-subj',
    '/CN=stranger',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  )
}

/** SHA-256 fingerprint of the certificate the server at 127.0.0.1:port presents. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerX509Certificate()!.fingerprint256
      socket.end()
      resolve(fingerprint)
    })
    socket.on('error', reject)
  })
}

const fingerprintOf = (file: string) => new X509Certificate(execFileSync('cat', [join(dir, file)])).fingerprint256

let relay: RelayProcess
let up: BurrowProcess
let http: Server
let key: string
let controlURL: string
const trustCA = { NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') }

beforeAll(async () => {
  makeCertificates()
  copyFileSync(join(dir, 'a.pem'), join(dir, 'served.pem'))
  copyFileSync(join(dir, 'a.key'), join(dir, 'served.key'))
  relay = await startRelayProcess(['--tls-cert', join(dir, 'served.pem'), '--tls-key', join(dir, 'served.key')])
  controlURL = `https://127.0.0.1:${relay.port}`
  key = createAuthKey(relay.dataDir, '--reusable')
  http = createServer((_request, response) => response.writeHead(200, { 'content-length': BODY.length }).end(BODY))
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  up = spawnBurrow(
    ['up', '--control', controlURL, '--authkey', key, '--hostname', 'tls-server', '--ephemeral', '--serve', `80=127.0.0.1:${(http.address() as AddressInfo).port}`],
    trustCA,
  )
  await waitFor('burrow up to join over https', () => up.logs.some((l) => l.msg === 'up') || up.proc.exitCode !== null, 30_000)
  if (!up.logs.some((l) => l.msg === 'up')) throw new Error(`burrow up did not join: ${up.stderr()} ${JSON.stringify(up.logs)}`)
}, 90_000)

afterAll(async () => {
  if (up?.proc.exitCode === null) {
    up.proc.kill('SIGKILL')
    await up.exited
  }
  await relay?.stop('SIGKILL')
  http?.closeAllConnections()
  http?.close()
  removeRelayDataDirs()
  rmSync(dir, { recursive: true, force: true })
})

describe('burrow relay with --tls-cert/--tls-key', () => {
  it('says https in its listening line and serves its endpoints over TLS only', async () => {
    expect(relay.url).toBe(`https://127.0.0.1:${relay.port}/derp`)
    expect(relay.logs.find((l) => l.msg === 'listening')?.tls).toBe(true)
    expect(await servedFingerprint(relay.port)).toBe(fingerprintOf('a.pem'))
    const health = execFileSync('curl', ['-sS', '--cacert', join(dir, 'ca.pem'), `${controlURL}/healthz`], { encoding: 'utf8' })
    expect(health).toBe('ok\n')
    const plain = spawnSyncStatus('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${relay.port}/healthz`])
    expect(plain).not.toBe(0)
  })

  it('two Node peers that trust the CA join through https/wss and move 3 MB byte-exact over DERP-over-wss', async () => {
    const result = await fetchOnce(controlURL, key, 'tls-server', 'http://tls-server/', trustCA)
    expect(result).toMatchObject({ status: 200, bytes: BODY.length, sha256: createHash('sha256').update(BODY).digest('hex') })
    expect(result.relayURL).toMatch(/^(https|wss):\/\/127\.0\.0\.1:/)
  }, 90_000)

  it('a client that does not trust the certificate fails with an error that names the certificate problem', async () => {
    const result = await fetchOnce(controlURL, key, 'tls-server', 'http://tls-server/', {})
    expect(result.error).toMatch(/certificate/i)
  }, 90_000)

  it('SIGHUP swaps in a renewed certificate without dropping connected peers; a bad file keeps the old one', async () => {
    const joinsBefore = up.logs.filter((l) => l.msg === 'up' || l.msg === 'state').length
    copyFileSync(join(dir, 'b.pem'), join(dir, 'served.pem'))
    copyFileSync(join(dir, 'b.key'), join(dir, 'served.key'))
    relay.proc.kill('SIGHUP')
    await waitFor('the reload log line', () => relay.logs.some((l) => l.msg === 'reloaded the TLS certificate and key'))
    expect(await servedFingerprint(relay.port)).toBe(fingerprintOf('b.pem'))

    writeFileSync(join(dir, 'served.pem'), 'not a certificate\n')
    relay.proc.kill('SIGHUP')
    await waitFor('the failed reload log line', () => relay.logs.some((l) => l.msg === 'TLS reload failed; still serving the previous certificate'))
    expect(String(relay.logs.find((l) => l.msg === 'TLS reload failed; still serving the previous certificate')?.error)).toContain('served.pem is not a PEM certificate')
    expect(await servedFingerprint(relay.port)).toBe(fingerprintOf('b.pem'))

    // The peer connected before the swaps is still there: a new client reaches it at once.
    const result = await fetchOnce(controlURL, key, 'tls-server', 'http://tls-server/', trustCA)
    expect(result).toMatchObject({ status: 200, bytes: BODY.length })
    expect(up.logs.filter((l) => l.msg === 'up' || l.msg === 'state').length).toBe(joinsBefore)
    expect(up.proc.exitCode).toBe(null)
  }, 120_000)

  it('refuses to start with a key that does not match the certificate, naming both files', async () => {
    const bad = spawnBurrow(['relay', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'bad-relay'), '--tls-cert', join(dir, 'a.pem'), '--tls-key', join(dir, 'self.key')])
    expect(await bad.exited).toBe(1)
    expect(bad.stderr()).toMatch(/a\.pem and .*self\.key do not form a usable TLS identity/)
    const half = spawnBurrow(['relay', '--listen', '127.0.0.1:0', '--tls-cert', join(dir, 'a.pem')])
    expect(await half.exited).toBe(2)
    expect(half.stderr()).toContain('--tls-cert and --tls-key go together')
  })
})

function spawnSyncStatus(command: string, args: string[]): number {
  try {
    execFileSync(command, args, { stdio: 'ignore' })
    return 0
  } catch (error) {
    return (error as { status?: number }).status ?? 1
  }
}
