// Plain-UDP direct paths between Node peers (src/node/udp-direct.ts) in the NAT lab
// (test/helpers/nat.ts): `burrow up --serve` on hostB, a burrow/node client (helpers/udp-client.ts)
// on hostA behind another MASQUERADE NAT, or on routerB (the same link as hostB). The relay, its
// STUN server and its /metrics are on the lab's "internet".
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { type LabNamespace, NatLab } from './helpers/nat.ts'
import { BLOB_BYTES, blobSha256, CONTROL, jsonLines, relayMetric, ROOT, startBlobServer, startLabRelay } from './helpers/nat-network.ts'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const FORWARDED = 'burrow_relay_bytes_forwarded_total'
/** The lab, the relay (with STUN on 3478) and `burrow up --serve 80=<blob server>` on hostB. */
async function startNetwork(): Promise<{ lab: NatLab; authKey: string }> {
  const lab = await NatLab.create({})
  cleanups.push(() => lab.cleanup())
  const dir = mkdtempSync(join(tmpdir(), 'burrow-udp-direct-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const authKey = await startLabRelay(lab, dir)
  await startBlobServer(lab.b.host)
  const up = lab.b.host.spawn(
    process.execPath,
    ['bin/burrow.mjs', 'up', '--control', CONTROL, '--authkey', authKey, '--hostname', 'server', '--state-dir', join(dir, 'up'), '--serve', '80=127.0.0.1:9000'],
    { cwd: ROOT },
  )
  const log = jsonLines(up)
  await log.next((e) => e['msg'] === 'up', 60_000)
  await log.next((e) => String(e['msg']).startsWith('direct paths: plain UDP'), 10_000)
  return { lab, authKey }
}

function startClient(host: LabNamespace, authKey: string, extra: string[] = []) {
  const child = host.spawn(process.execPath, ['--import', 'tsx', 'test/helpers/udp-client.ts', CONTROL, authKey, 'server', 'http://server/blob', '45000', ...extra], {
    cwd: ROOT,
    stdin: 'pipe',
  })
  return { child, ...jsonLines(child) }
}

describe('plain-UDP direct paths between Node peers', () => {
  it('behind two MASQUERADE NATs they go direct over UDP to the peer’s NAT mapping (STUN + CallMeMaybe), and 20 MB cross it with the relay’s counters flat', async () => {
    const { lab, authKey } = await startNetwork()
    const client = startClient(lab.a.host, authKey)
    const direct = await client.next((e) => e['event'] === 'direct' || e['event'] === 'no-direct', 90_000)
    expect(direct['event'], JSON.stringify(direct)).toBe('direct')
    expect(direct['transport']).toBe('udp')
    // routerB's WAN address: only hostB's NAT mapping reaches it; hostA was seen through its own NAT.
    expect(String(direct['endpoint'])).toMatch(/^198\.51\.100\.6:\d+$/)
    expect(direct['candidateType']).toBe('srflx')
    const before = await relayMetric(lab, FORWARDED)
    const fetched = await client.next((e) => e['event'] === 'fetched', 120_000)
    const after = await relayMetric(lab, FORWARDED)
    expect(fetched).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: blobSha256(), path: 'direct', transport: 'udp' })
    // Disco CallMeMaybes and keepalives may still cross the relay; the transfer does not.
    expect(after - before).toBeLessThan(BLOB_BYTES / 20)
  }, 300_000)

  it('a transfer survives conntrack -F with UDP dropped mid-transfer: the relay carries it on (no TCP reset), and the UDP path returns', async () => {
    const { lab, authKey } = await startNetwork()
    const client = startClient(lab.a.host, authKey, [String(4 << 20), 'await-direct'])
    const direct = await client.next((e) => e['event'] === 'direct' || e['event'] === 'no-direct', 90_000)
    expect(direct, JSON.stringify(direct)).toMatchObject({ event: 'direct', transport: 'udp' })
    await client.next((e) => e['event'] === 'progress', 120_000)
    const mark = client.logs.length
    // Both NATs forget every mapping and, for now, forward no UDP at all.
    for (const side of [lab.a, lab.b]) {
      await lab.blockUdp(side, true)
      await lab.flushNat(side)
    }
    const before = await relayMetric(lab, FORWARDED)
    client.child.stdin!.write('resume\n')
    await client.next((e) => e['event'] === 'path' && e['path'] === 'relay', 60_000, mark)
    // Until the relay has demonstrably carried transfer data (a condition, not a delay).
    let carried = 0
    for (let i = 0; i < 240 && carried < 1 << 20; i++) {
      carried = (await relayMetric(lab, FORWARDED)) - before
      if (carried < 1 << 20) await new Promise((resolve) => setTimeout(resolve, 250))
    }
    expect(carried).toBeGreaterThanOrEqual(1 << 20)
    for (const side of [lab.a, lab.b]) await lab.blockUdp(side, false)
    const fetched = await client.next((e) => e['event'] === 'fetched', 240_000)
    // Every byte, in order: the TCP connection was never reset.
    expect(fetched).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: blobSha256() })
    const again = await client.next((e) => e['event'] === 'direct-again', 120_000)
    expect(String(again['endpoint'])).toMatch(/^198\.51\.100\.6:\d+$/)
    expect(
      client.logs
        .slice(mark)
        .filter((e) => e['event'] === 'path')
        .map((e) => e['path']),
    ).toEqual(expect.arrayContaining(['relay', 'direct']))
  }, 420_000)

  it('conntrack -F alone on both NATs mid-transfer: the same TCP connection completes byte-exact and the peer is direct over UDP afterwards', async () => {
    const { lab, authKey } = await startNetwork()
    const client = startClient(lab.a.host, authKey, [String(4 << 20), 'await-direct'])
    const direct = await client.next((e) => e['event'] === 'direct' || e['event'] === 'no-direct', 90_000)
    expect(direct, JSON.stringify(direct)).toMatchObject({ event: 'direct', transport: 'udp' })
    await client.next((e) => e['event'] === 'progress', 120_000)
    // Every mapping is forgotten; the next datagrams out make fresh ones (the same ports when free).
    for (const side of [lab.a, lab.b]) await lab.flushNat(side)
    client.child.stdin!.write('resume\n')
    const fetched = await client.next((e) => e['event'] === 'fetched', 240_000)
    expect(fetched).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: blobSha256() })
    const again = await client.next((e) => e['event'] === 'direct-again', 120_000)
    expect(String(again['endpoint'])).toMatch(/^198\.51\.100\.6:\d+$/)
  }, 420_000)

  it('a `burrow up` machine and a Node peer on one link go direct over UDP to the machine’s own LAN address (host candidate)', async () => {
    const { lab, authKey } = await startNetwork()
    // routerB shares hostB's LAN (192.168.2.0/24) and reaches the relay through its WAN link.
    const client = startClient(lab.b.router, authKey)
    const direct = await client.next((e) => e['event'] === 'direct' || e['event'] === 'no-direct', 90_000)
    expect(direct['event'], JSON.stringify(direct)).toBe('direct')
    expect(direct['transport']).toBe('udp')
    expect(String(direct['endpoint'])).toMatch(/^192\.168\.2\.2:\d+$/)
    expect(direct['candidateType'], JSON.stringify(direct)).toBe('host')
    const fetched = await client.next((e) => e['event'] === 'fetched', 120_000)
    expect(fetched).toMatchObject({ status: 200, bytes: BLOB_BYTES, sha256: blobSha256(), path: 'direct', transport: 'udp' })
  }, 300_000)
})
