// Issue 17, coordination side: hostile members and outsiders attack a real `burrow relay`
// process while a legitimate pair of Burrow nodes keeps exchanging byte-checked UDP round trips
// through it. Each test pins what must hold: the pair keeps working (no reconnect, no corrupted
// answer, no stall longer than a bound generous for a loaded 2-core machine) and the relay's
// memory stays bounded.
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { generateKeyPair } from '../src/crypto/index.ts'
import { CoordinationClient } from '../src/control/coordination-client.ts'
import { SOURCE_UPDATE_BURST, SOURCE_UPDATE_INTERVAL_MS } from '../src/control/protocol.ts'
import { fillNodes } from './helpers/coordination-fill.ts'
import { startLegitPair, rssBytes, type LegitPair } from './helpers/legit-pair.ts'
import { createAuthKey, removeRelayDataDirs, startRelayProcess, waitFor, type RelayProcess } from './helpers/relay-process.ts'

const ROOT = join(import.meta.dirname, '..')
/** Longest a round trip may wait on a loaded 2-core machine before we call it a stall. */
const STALL_BOUND_MS = 5_000
/** How much the relay's resident memory may grow during an attack. */
const MEMORY_BOUND_BYTES = 200 << 20

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  removeRelayDataDirs()
})

async function relayWith(args: string[] = [], fill = 0): Promise<RelayProcess> {
  let relay = await startRelayProcess(args)
  if (fill > 0) {
    await relay.stop('SIGTERM')
    await fillNodes(relay.dataDir, fill)
    relay = await startRelayProcess(args, { dataDir: relay.dataDir, port: relay.port })
  }
  cleanups.push(() => relay.stop('SIGKILL'))
  return relay
}

async function pairOn(relay: RelayProcess, key: string): Promise<LegitPair> {
  const pair = await startLegitPair(new URL(relay.url).origin, key)
  cleanups.push(() => pair.close())
  return pair
}

function member(relay: RelayProcess, key: string, hostname: string, extra: Partial<ConstructorParameters<typeof CoordinationClient>[0]> = {}): CoordinationClient {
  const client = new CoordinationClient({
    url: new URL(relay.url).origin,
    nodeKeyPair: generateKeyPair(),
    discoPublicKey: generateKeyPair().publicKey,
    hostname,
    authKey: key,
    backoffBaseMs: 50,
    backoffCapMs: 500,
    ...extra,
  })
  client.start()
  cleanups.push(() => client.stop())
  return client
}

function expectPairHeldUp(report: Awaited<ReturnType<LegitPair['run']>>): void {
  expect(report.stateChanges, 'the pair reconnected').toEqual([])
  expect(report.corrupted, 'answers came back wrong').toBe(0)
  expect(report.roundTrips, 'round trips completed').toBeGreaterThan(0)
  expect(report.longestStallMs, 'longest wait for a round trip').toBeLessThan(STALL_BOUND_MS)
}

function burrow(...args: string[]): string {
  return execFileSync(process.execPath, ['bin/burrow.mjs', ...args], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 })
}

describe('coordination under attack (issue 17)', () => {
  it('a busy network (a change every 5 s) keeps every session past the server timeout: no 408, no reconnect', async () => {
    const relay = await relayWith()
    const key = createAuthKey(relay.dataDir, '--reusable')
    const pair = await pairOn(relay, key)
    const busy = member(relay, key, 'busy')
    await busy.ready()
    // Peers hear from the server every 5 s, so the old client never pinged and the server dropped it at 60 s.
    const timer = setInterval(() => busy.setDiscoKey(generateKeyPair().publicKey), 5_000)
    cleanups.push(() => clearInterval(timer))
    const report = await pair.run(75_000)
    expectPairHeldUp(report)
    expect(relay.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('408'))).toEqual([])
    expect(busy.state).toBe('connected')
  }, 150_000)

  it('a map well over 1 MiB (5,000 nodes) is streamed: a pair joins and works, and nodes can be listed and removed', async () => {
    const relay = await relayWith([], 5_000)
    const key = createAuthKey(relay.dataDir, '--reusable')
    const pair = await pairOn(relay, key)
    expect(pair.a.peers().length).toBeGreaterThanOrEqual(5_001)
    const listed = JSON.parse(burrow('relay', 'nodes', 'list', '--json', '--data-dir', relay.dataDir)) as Array<{ id: number; hostname: string }>
    expect(listed.length).toBe(5_002)
    expect(burrow('relay', 'nodes', 'list', '--data-dir', relay.dataDir)).toMatch(/^ID\s+HOSTNAME\s+IPV4/)
    // Removed by another process while the relay runs: an offline node, and an online one by id.
    const victim = member(relay, key, 'to-remove')
    const victimSelf = await victim.ready()
    burrow('relay', 'nodes', 'remove', 'filler-7', '--data-dir', relay.dataDir)
    burrow('relay', 'nodes', 'remove', String(victimSelf.id), '--data-dir', relay.dataDir)
    await waitFor('the removed online node to be disconnected with 410', () => victim.state === 'failed', 20_000)
    await waitFor('the pair to drop both removed nodes', () => !pair.a.peers().some((p) => p.hostname === 'filler-7' || p.hostname === 'to-remove'), 20_000)
    const report = await pair.run(3_000)
    expectPairHeldUp(report)
  }, 180_000)

  it('--node-expiry removes nodes offline for longer than the expiry and keeps the rest', async () => {
    let relay = await startRelayProcess()
    await relay.stop('SIGTERM')
    await fillNodes(relay.dataDir, 3, { lastSeen: Date.now() - 2 * 3_600_000, prefix: 'stale' })
    await fillNodes(relay.dataDir, 2, { lastSeen: Date.now() - 60_000, prefix: 'fresh' })
    relay = await startRelayProcess(['--node-expiry', '1h'], { dataDir: relay.dataDir })
    cleanups.push(() => relay.stop('SIGKILL'))
    await waitFor(
      'stale nodes to expire',
      () => {
        const nodes = JSON.parse(burrow('relay', 'nodes', 'list', '--json', '--data-dir', relay.dataDir)) as Array<{ hostname: string }>
        return nodes.length === 2
      },
      20_000,
    )
    const nodes = JSON.parse(burrow('relay', 'nodes', 'list', '--json', '--data-dir', relay.dataDir)) as Array<{ hostname: string }>
    expect(nodes.map((n) => n.hostname).sort()).toEqual(['fresh-0', 'fresh-1'])
  }, 60_000)

  it('a member naming arbitrary URLs as its home relay makes no other node dial them', async () => {
    let hits = 0
    const bait: Server = createServer((_req, res) => {
      hits++
      res.writeHead(404).end()
    })
    bait.on('upgrade', (_req, socket) => {
      hits++
      socket.destroy()
    })
    await new Promise<void>((resolve) => bait.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => bait.close(() => resolve())))
    const baitUrl = `http://127.0.0.1:${(bait.address() as AddressInfo).port}`
    const relay = await relayWith()
    const key = createAuthKey(relay.dataDir, '--reusable')
    const pair = await pairOn(relay, key)
    const liar = member(relay, key, 'liar', { homeRelay: { url: `${baitUrl}/derp` } })
    await liar.ready()
    const errors: number[] = []
    liar.on('error', (error) => errors.push(error.status))
    for (let i = 0; i < 20; i++) liar.setHomeRelay({ url: `${baitUrl}/derp${i}` })
    const report = await pair.run(5_000)
    expectPairHeldUp(report)
    expect(hits, 'requests the lie drew to the bait server').toBe(0)
    await waitFor('the relay to refuse the updates', () => errors.includes(400))
  }, 90_000)

  it('an update flood by 10 members on an 850-node map is held to the per-source budget, and the pair keeps working', async () => {
    const relay = await relayWith([], 850)
    const key = createAuthKey(relay.dataDir, '--reusable')
    const pair = await pairOn(relay, key)
    const observer = member(relay, key, 'observer')
    await observer.ready()
    const attackers = Array.from({ length: 10 }, (_, i) => member(relay, key, `flood-${i}`))
    await Promise.all(attackers.map((a) => a.ready()))
    let changes = 0
    observer.on('change', (change) => {
      if (change.upsert.some((p) => p.hostname.startsWith('flood-'))) changes++
    })
    const memoryBefore = rssBytes(relay.proc.pid!)
    const floodMs = 8_000
    const timer = setInterval(() => {
      for (const attacker of attackers) attacker.setDiscoKey(generateKeyPair().publicKey)
    }, 20)
    cleanups.push(() => clearInterval(timer))
    const report = await pair.run(floodMs)
    clearInterval(timer)
    expectPairHeldUp(report)
    // All ten attack from one address: together they get one source's budget (plus slack for timing).
    const allowed = SOURCE_UPDATE_BURST + Math.ceil((report.elapsedMs + 2_000) / SOURCE_UPDATE_INTERVAL_MS)
    expect(changes, `changes pushed in ${report.elapsedMs} ms`).toBeLessThanOrEqual(allowed)
    expect(changes).toBeGreaterThan(0)
    expect(rssBytes(relay.proc.pid!) - memoryBefore).toBeLessThan(MEMORY_BOUND_BYTES)
  }, 120_000)

  it('refuses a 1 MiB message of nested JSON before hello at the WebSocket layer, and the pair keeps working', async () => {
    const relay = await relayWith()
    const key = createAuthKey(relay.dataDir, '--reusable')
    const pair = await pairOn(relay, key)
    // Just under the old 1 MiB limit: 400,000 levels of nesting and padding.
    const payload = `{"type":"hello","pad":"${'x'.repeat(600_000)}","x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`
    const closeCodes: number[] = []
    let stop = false
    const flood = async () => {
      while (!stop) {
        const ws = new WebSocket(relay.url.replace(/^http/, 'ws').replace(/\/derp$/, '/control'))
        await new Promise<void>((resolve) => {
          ws.on('open', () => ws.send(payload))
          ws.on('close', (code) => {
            closeCodes.push(code)
            resolve()
          })
          ws.on('error', () => {})
        })
      }
    }
    const memoryBefore = rssBytes(relay.proc.pid!)
    const floods = [flood(), flood(), flood(), flood()]
    const report = await pair.run(6_000)
    stop = true
    await Promise.all(floods)
    expectPairHeldUp(report)
    expect(closeCodes.length).toBeGreaterThan(0)
    // 1009 "message too big": refused from its length, never buffered or parsed.
    expect(new Set(closeCodes)).toEqual(new Set([1009]))
    expect(rssBytes(relay.proc.pid!) - memoryBefore).toBeLessThan(MEMORY_BOUND_BYTES)
  }, 90_000)
})

describe('data-dir permissions (issue 17)', () => {
  it('creates every data-dir file readable only by its owner, even in a world-readable data dir', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'burrow-perm-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    chmodSync(dataDir, 0o755)
    const relay = await startRelayProcess([], { dataDir })
    cleanups.push(() => relay.stop('SIGKILL'))
    const key = createAuthKey(dataDir)
    const client = member(relay, key, 'perm')
    await client.ready()
    for (const file of ['relay.key', 'coordination.sqlite', 'coordination.sqlite-wal', 'coordination.sqlite-shm']) {
      expect(statSync(join(dataDir, file)).mode & 0o777, file).toBe(0o600)
    }
  }, 60_000)

  it.each(['relay.key', 'coordination.sqlite'])(
    'refuses to start on a world-readable %s, naming it, and leaves its mode alone',
    async (file) => {
      const first = await startRelayProcess()
      await first.stop('SIGTERM')
      const path = join(first.dataDir, file)
      chmodSync(path, 0o644)
      await expect(startRelayProcess([], { dataDir: first.dataDir })).rejects.toThrow(`permissions 0644 for ${path} are too open`)
      expect(statSync(path).mode & 0o777).toBe(0o644)
    },
    60_000,
  )
})

describe('auth keys and hostnames (issue 17)', () => {
  it('an auth key made with --expires stops registering once expired, a revoked one at once, and nodes it registered stay', async () => {
    const relay = await relayWith()
    const expiring = createAuthKey(relay.dataDir, '--reusable', '--expires', '2s')
    await member(relay, expiring, 'early').ready()
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    await expect(member(relay, expiring, 'late').ready()).rejects.toMatchObject({ status: 401, message: expect.stringMatching(/^authKey expired at \d{4}-/) })

    const revocable = createAuthKey(relay.dataDir, '--reusable')
    const pair = generateKeyPair()
    const kept = member(relay, revocable, 'kept', { nodeKeyPair: pair })
    await kept.ready()
    burrow('relay', 'authkey', 'revoke', revocable, '--data-dir', relay.dataDir)
    await expect(member(relay, revocable, 'refused').ready()).rejects.toMatchObject({ status: 401, message: 'authKey was revoked' })
    kept.stop()
    const again = member(relay, revocable, 'kept', { nodeKeyPair: pair })
    expect((await again.ready()).hostname).toBe('kept')
    expect(burrow('relay', 'authkey', 'list', '--data-dir', relay.dataDir)).toMatch(/\n2 {2}reusable {2}- {2}\S+ {2}never {2}revoked\n/)
  }, 60_000)

  it('refuses a node that asks to be called localhost or relay, with a clear error, while a pair keeps working', async () => {
    const relay = await relayWith()
    const key = createAuthKey(relay.dataDir, '--reusable')
    const pair = await pairOn(relay, key)
    for (const name of ['localhost', 'relay']) {
      await expect(member(relay, key, name).ready()).rejects.toMatchObject({
        status: 400,
        message: `hostname "${name}" is reserved (it already means something else on every node); choose another`,
      })
    }
    expect(pair.a.peers().map((p) => p.hostname)).not.toContain('localhost')
    expectPairHeldUp(await pair.run(2_000))
  }, 60_000)
})
