// Direct paths where users are: two Node peers (`burrow up` and a burrow/node client) in two
// private networks behind Linux NAT routers (test/helpers/nat.ts), with the relay, its STUN server
// and (for the last case) coturn on a small "internet" between them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { INTERNET_ADDRESS, type LabNamespace, NatLab, type NatLabOptions } from './helpers/nat.ts'
import { BLOB_BYTES, blobSha256, CONTROL, jsonLines, relayMetric, ROOT, startBlobServer, startLabRelay } from './helpers/nat-network.ts'

const TURN_PORT = 3479

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Network {
  lab: NatLab
  authKey: string
}

async function startNetwork(options: NatLabOptions, relayArgs: (dir: string) => string[] = () => [], beforeRelay?: (lab: NatLab, dir: string) => Promise<void>): Promise<Network> {
  const lab = await NatLab.create(options)
  cleanups.push(() => lab.cleanup())
  const dir = mkdtempSync(join(tmpdir(), 'burrow-nat-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  await beforeRelay?.(lab, dir)
  return { lab, authKey: await startLabRelay(lab, dir, relayArgs(dir)) }
}

/** hostB: an HTTP server with the blob on 127.0.0.1:9000, published to the overlay by `burrow up --serve 80=…`. */
async function startServerSide(network: Network): Promise<void> {
  const { lab } = network
  await startBlobServer(lab.b.host)
  const state = mkdtempSync(join(tmpdir(), 'burrow-nat-up-'))
  cleanups.push(() => rmSync(state, { recursive: true, force: true }))
  const up = lab.b.host.spawn(
    process.execPath,
    ['bin/burrow.mjs', 'up', '--control', CONTROL, '--authkey', network.authKey, '--hostname', 'server', '--state-dir', state, '--serve', '80=127.0.0.1:9000'],
    { cwd: ROOT },
  )
  const log = jsonLines(up)
  await log.next((e) => e['msg'] === 'up', 60_000)
  await log.next((e) => String(e['msg']).startsWith('direct paths: WebRTC'), 10_000)
}

function startClient(host: LabNamespace, network: Network, directTimeoutMs: number): ReturnType<typeof jsonLines> {
  const child = host.spawn(process.execPath, ['--import', 'tsx', 'test/helpers/nat-client.ts', CONTROL, network.authKey, 'server', 'http://server/blob', String(directTimeoutMs)], {
    cwd: ROOT,
  })
  return jsonLines(child)
}

describe('direct paths across NATs (Node ↔ Node)', () => {
  it('two Node peers behind two MASQUERADE NATs go direct through the relay’s STUN (server-reflexive), and 20 MB cross it with the relay’s counters flat', async () => {
    const network = await startNetwork({})
    await startServerSide(network)
    const client = startClient(network.lab.a.host, network, 30_000)
    const direct = await client.next((e) => e['event'] === 'direct' || e['event'] === 'no-direct', 60_000)
    expect(direct['event'], JSON.stringify(direct)).toBe('direct')
    // The hosts' own addresses are unreachable from each other: only a NAT mapping connects them.
    expect(['srflx', 'prflx']).toContain(direct['candidateType'])
    const before = await relayMetric(network.lab, 'burrow_relay_bytes_forwarded_total')
    const fetched = await client.next((e) => e['event'] === 'fetched', 120_000)
    const after = await relayMetric(network.lab, 'burrow_relay_bytes_forwarded_total')
    expect(fetched).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: blobSha256(), path: 'direct' })
    // Disco pings and keepalives still cross the relay; the transfer does not.
    expect(after - before).toBeLessThan(BLOB_BYTES / 20)
  }, 240_000)

  it('behind two symmetric NATs (MASQUERADE --random-fully) without TURN the path stays on the relay, and the transfer is byte-exact there', async () => {
    const network = await startNetwork({ symmetricA: true, symmetricB: true })
    await startServerSide(network)
    const client = startClient(network.lab.a.host, network, 15_000)
    const direct = await client.next((e) => e['event'] === 'direct' || e['event'] === 'no-direct', 60_000)
    expect(direct['event']).toBe('no-direct')
    const before = await relayMetric(network.lab, 'burrow_relay_bytes_forwarded_total')
    const fetched = await client.next((e) => e['event'] === 'fetched', 180_000)
    const after = await relayMetric(network.lab, 'burrow_relay_bytes_forwarded_total')
    expect(fetched).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: blobSha256(), path: 'relay' })
    // The client starts fetching as soon as it reports, so the first bytes may precede `before`.
    expect(after - before).toBeGreaterThan(BLOB_BYTES * 0.8)
  }, 300_000)

  it('behind two symmetric NATs with coturn handed out by the relay (TURN REST credentials) the path goes direct via TURN', async () => {
    const secret = 'lab-turn-secret'
    const network = await startNetwork(
      { symmetricA: true, symmetricB: true },
      (dir) => ['--turn', `turn:${INTERNET_ADDRESS}:${TURN_PORT}?transport=udp`, '--turn-secret-file', join(dir, 'turn-secret')],
      async (lab, dir) => {
        writeFileSync(join(dir, 'turn-secret'), secret, { mode: 0o600 })
        const config = join(dir, 'turnserver.conf')
        writeFileSync(
          config,
          [
            `listening-ip=${INTERNET_ADDRESS}`,
            `relay-ip=${INTERNET_ADDRESS}`,
            `listening-port=${TURN_PORT}`,
            'min-port=50000',
            'max-port=50100',
            'use-auth-secret',
            `static-auth-secret=${secret}`,
            'realm=burrow.test',
            'fingerprint',
            'no-tls',
            'no-dtls',
            'no-cli',
            'no-tcp-relay',
            `pidfile=${join(dir, 'turnserver.pid')}`,
            `userdb=${join(dir, 'turndb')}`,
            'log-file=stdout',
            'simple-log',
          ].join('\n') + '\n',
        )
        const turn = lab.inet.spawn('turnserver', ['-c', config])
        let output = ''
        turn.stdout!.on('data', (d: Buffer) => (output += d.toString()))
        turn.stderr!.on('data', (d: Buffer) => (output += d.toString()))
        // Ready when it answers a STUN Binding request on its port.
        let ready = false
        for (let i = 0; i < 60 && !ready; i++) {
          const probe = await lab.inet.tryRun('turnutils_stunclient', ['-p', String(TURN_PORT), INTERNET_ADDRESS], { timeoutMs: 2000 })
          ready = probe.stdout.includes('reflexive addr')
          if (!ready) await new Promise((resolve) => setTimeout(resolve, 500))
        }
        expect(ready, output).toBe(true)
      },
    )
    await startServerSide(network)
    const client = startClient(network.lab.a.host, network, 30_000)
    const direct = await client.next((e) => e['event'] === 'direct' || e['event'] === 'no-direct', 60_000)
    expect(direct['event']).toBe('direct')
    expect(direct['candidateType']).toBe('relay')
    const fetched = await client.next((e) => e['event'] === 'fetched', 180_000)
    // Byte-exact whichever path carried it: under a saturating transfer the TURN path may lose
    // enough disco pongs to hand the peer back to the DERP relay for a while.
    expect(fetched).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: blobSha256() })
  }, 300_000)
})
