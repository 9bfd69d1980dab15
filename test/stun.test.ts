// `burrow relay --stun-port` against independent STUN clients, from behind a NAT in test-made
// namespaces: Debian's stun-client (RFC 3489, reads MAPPED-ADDRESS) and coturn's
// turnutils_stunclient (RFC 5389/8489, reads XOR-MAPPED-ADDRESS), cross-checked with a capture
// of what the relay's side of the wire saw.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CoordinationClient } from '../src/control/coordination-client.ts'
import { generateKeyPair, hmacSha1, toBase64 } from '../src/crypto/index.ts'
import { INTERNET_ADDRESS, NatLab } from './helpers/nat.ts'
import { createAuthKey, removeRelayDataDirs, startRelayProcess } from './helpers/relay-process.ts'

const ROOT = join(import.meta.dirname, '..')
const STUN_PORT = 3478
const HTTP = `${INTERNET_ADDRESS}:8080`

let lab: NatLab
let dataDir: string

async function metrics(): Promise<string> {
  return lab.inet.run(process.execPath, ['-e', `fetch('http://${HTTP}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`])
}

function metric(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(line + ' '))
  return found === undefined ? NaN : Number(found.slice(line.length + 1))
}

beforeAll(async () => {
  lab = await NatLab.create({ symmetricB: false })
  dataDir = mkdtempSync(join(tmpdir(), 'burrow-stun-'))
  const relay = lab.inet.spawn(process.execPath, ['bin/burrow.mjs', 'relay', '--listen', HTTP, '--data-dir', dataDir, '--stun-port', String(STUN_PORT)], { cwd: ROOT })
  await new Promise<void>((resolve, reject) => {
    let stderr = ''
    relay.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    relay.once('exit', (code) => reject(new Error(`relay exited with ${code}: ${stderr}`)))
    createInterface({ input: relay.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; stun?: string }
      if (entry.msg === 'listening') {
        expect(entry.stun).toBe(`${INTERNET_ADDRESS}:${STUN_PORT}`)
        resolve()
      }
    })
  })
}, 60_000)

afterAll(async () => {
  await lab?.cleanup()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

describe('burrow relay STUN server', () => {
  it('gives an RFC 3489 client (Debian stun-client) behind a NAT the router’s WAN address and its mapped port in MAPPED-ADDRESS', async () => {
    // Test 1 of the client is a plain Binding request (CHANGE-REQUEST with no flags) from port 40000;
    // MASQUERADE keeps the source port when it is free, so the mapping is 198.51.100.2:40000.
    const result = await lab.a.host.tryRun('stun', [INTERNET_ADDRESS, '1', '-v', '-p', '40000'], { timeoutMs: 20_000 })
    const output = result.stdout + result.stderr
    expect(output).toContain(`MappedAddress = ${lab.a.wanAddress}:40000`)
    expect(output).toContain('ok=1')
    expect(output).toContain(`mappedAddr=${lab.a.wanAddress}:40000`)
  }, 30_000)

  it('gives an RFC 8489 client (coturn turnutils_stunclient) the source address the relay saw on the wire, in XOR-MAPPED-ADDRESS', async () => {
    const capture = lab.inet.spawn('tcpdump', ['-n', '-l', '-i', 'wanb', 'udp', 'and', 'dst', 'port', String(STUN_PORT)])
    let captured = ''
    capture.stdout!.on('data', (d: Buffer) => (captured += d.toString()))
    let listening = ''
    capture.stderr!.on('data', (d: Buffer) => (listening += d.toString()))
    for (let i = 0; i < 100 && !listening.includes('listening on'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    const result = await lab.b.host.run('turnutils_stunclient', ['-p', String(STUN_PORT), INTERNET_ADDRESS], { timeoutMs: 20_000 })
    const reported = /UDP reflexive addr: ([\d.]+):(\d+)/.exec(result)
    expect(reported, result).not.toBeNull()
    expect(reported![1]).toBe(lab.b.wanAddress)
    for (let i = 0; i < 100 && !captured.includes(`> ${INTERNET_ADDRESS}.${STUN_PORT}`); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    capture.kill('SIGTERM')
    // tcpdump: "IP 198.51.100.6.51234 > 203.0.113.1.3478: UDP, length 20"
    const seen = new RegExp(`IP ${lab.b.wanAddress.replaceAll('.', '\\.')}\\.(\\d+) > ${INTERNET_ADDRESS.replaceAll('.', '\\.')}\\.${STUN_PORT}:`).exec(captured)
    expect(seen, captured).not.toBeNull()
    expect(reported![2]).toBe(seen![1])
  }, 30_000)

  it('ignores malformed datagrams on the STUN port, counts them by reason in /metrics, and keeps answering', async () => {
    const before = await metrics()
    const script = `
      const s = require('node:dgram').createSocket('udp4')
      const bad = [Buffer.from('hello, this is not STUN at all'), Buffer.alloc(8), Buffer.from('000100042112a442' + '00'.repeat(12), 'hex')]
      let n = 0
      for (const b of bad) s.send(b, ${STUN_PORT}, '${INTERNET_ADDRESS}', () => { if (++n === bad.length) s.close() })`
    await lab.a.host.run(process.execPath, ['-e', script])
    const output = await lab.a.host.run('turnutils_stunclient', ['-p', String(STUN_PORT), INTERNET_ADDRESS], { timeoutMs: 20_000 })
    expect(output).toContain(`UDP reflexive addr: ${lab.a.wanAddress}:`)
    const after = await metrics()
    const delta = (reason: string) => metric(after, `burrow_relay_stun_dropped_total{reason="${reason}"}`) - metric(before, `burrow_relay_stun_dropped_total{reason="${reason}"}`)
    expect([delta('not-stun'), delta('too-short'), delta('bad-length')]).toEqual([1, 1, 1])
    expect(metric(after, 'burrow_relay_stun_binding_responses_total')).toBeGreaterThan(metric(before, 'burrow_relay_stun_binding_responses_total'))
  }, 30_000)

  it('behind MASQUERADE --random-fully (a symmetric NAT) the mapped port is not the source port', async () => {
    const symmetric = await NatLab.create({ symmetricA: true })
    const dir = mkdtempSync(join(tmpdir(), 'burrow-stun-'))
    try {
      const relay = symmetric.inet.spawn(process.execPath, ['bin/burrow.mjs', 'relay', '--listen', HTTP, '--data-dir', dir, '--stun-port', String(STUN_PORT)], { cwd: ROOT })
      await new Promise<void>((resolve) => createInterface({ input: relay.stdout! }).on('line', (line) => line.includes('"listening"') && resolve()))
      const ports = new Set<string>()
      for (const source of ['40001', '40002', '40003']) {
        const result = await symmetric.a.host.tryRun('stun', [INTERNET_ADDRESS, '1', '-v', '-p', source], { timeoutMs: 20_000 })
        const mapped = new RegExp(`MappedAddress = ${symmetric.a.wanAddress.replaceAll('.', '\\.')}:(\\d+)`).exec(result.stdout + result.stderr)
        expect(mapped, result.stdout + result.stderr).not.toBeNull()
        ports.add(mapped![1]!)
      }
      // Three sockets, three random ports; at least one differs from its source port with near certainty (1 in 2^45 otherwise).
      expect([...ports].some((p) => !['40001', '40002', '40003'].includes(p))).toBe(true)
    } finally {
      await symmetric.cleanup()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

describe('burrow relay hands out ICE servers', () => {
  it('welcomes each node with its STUN server under the host it dialled, and TURN with TURN REST credentials from --turn-secret-file', async () => {
    const { createSocket } = await import('node:dgram')
    const probe = createSocket('udp4')
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', () => resolve()))
    const stunPort = probe.address().port
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    const dir = mkdtempSync(join(tmpdir(), 'burrow-ice-'))
    const secretFile = join(dir, 'turn-secret')
    writeFileSync(secretFile, 'north-sea\n', { mode: 0o600 })
    const relay = await startRelayProcess(['--stun-port', String(stunPort), '--turn', 'turn:127.0.0.1:3479?transport=udp', '--turn-secret-file', secretFile, '--turn-ttl', '3600'])
    const client = new CoordinationClient({
      url: `http://localhost:${relay.port}`,
      nodeKeyPair: generateKeyPair(),
      discoPublicKey: generateKeyPair().publicKey,
      hostname: 'ice',
      authKey: createAuthKey(relay.dataDir),
    })
    try {
      client.start()
      const self = await client.ready()
      const [stun, turn] = client.iceServers
      expect(stun).toEqual({ urls: `stun:localhost:${stunPort}` })
      expect(turn!.urls).toBe('turn:127.0.0.1:3479?transport=udp')
      const [expiry, user] = turn!.username!.split(':')
      expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(3500)
      expect(Number(expiry) - Date.now() / 1000).toBeLessThanOrEqual(3600)
      expect(self.nodeKey).toContain(user)
      expect(turn!.credential).toBe(toBase64(hmacSha1(new TextEncoder().encode('north-sea'), new TextEncoder().encode(turn!.username!))))
    } finally {
      client.stop()
      await relay.stop()
      removeRelayDataDirs()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)
})
