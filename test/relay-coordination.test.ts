// The coordination service inside a real `burrow relay` process: auth keys from the CLI,
// registration over /control, --verify-clients admitting only registered node keys, and state
// that survives a restart of the process.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '../src/crypto/index.ts'
import { CoordinationClient } from '../src/control/coordination-client.ts'
import { DerpConnection } from '../src/underlay/derp/connection.ts'
import { nodeWebSocketDialer } from '../src/underlay/derp/node.ts'
import { createAuthKey, type RelayProcess, startRelayProcess, waitFor } from './helpers/relay-process.ts'

const relays: RelayProcess[] = []
const cleanups: Array<() => void> = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  for (const r of relays.splice(0)) await r.stop('SIGKILL')
})

function authKey(dataDir: string, ...flags: string[]): string {
  return createAuthKey(dataDir, ...flags)
}

function coordinationClient(port: number, options: { key?: string; hostname: string; pair?: ReturnType<typeof generateKeyPair> }): CoordinationClient {
  const client = new CoordinationClient({
    url: `http://127.0.0.1:${port}`,
    nodeKeyPair: options.pair ?? generateKeyPair(),
    discoPublicKey: generateKeyPair().publicKey,
    hostname: options.hostname,
    ...(options.key !== undefined ? { authKey: options.key } : {}),
    backoffBaseMs: 50,
    backoffCapMs: 500,
  })
  client.start()
  cleanups.push(() => client.stop())
  return client
}

describe('burrow relay with coordination', () => {
  it('registers with a CLI-made key, admits only registered keys to DERP, and keeps state across a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'burrow-relay-coord-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    let relay = await startRelayProcess(['--verify-clients'], { dataDir })
    relays.push(relay)
    // Made by a second process while the relay runs, as an operator would.
    const key = authKey(dataDir)
    expect(key).toMatch(/^bwauth-[0-9a-f]{48}$/)
    const port = relay.port
    const pair = generateKeyPair()
    const member = coordinationClient(port, { key, hostname: 'member', pair })
    const self = await member.ready()

    const admitted = new DerpConnection({ url: relay.url, privateKey: pair.privateKey, dial: nodeWebSocketDialer(), backoff: { baseMs: 50, capMs: 500 } })
    cleanups.push(() => admitted.close())
    admitted.start()
    await waitFor('the registered node to log in to DERP', () => admitted.isConnected)

    const stranger = new DerpConnection({ url: relay.url, privateKey: generateKeyPair().privateKey, dial: nodeWebSocketDialer(), backoff: { baseMs: 50, capMs: 500 } })
    cleanups.push(() => stranger.close())
    stranger.start()
    await waitFor('the unregistered node to be refused', () => relay.logs.some((l) => l.reason === 'client not admitted'))
    expect(stranger.isConnected).toBe(false)

    // The single-use key is spent.
    const late = coordinationClient(port, { key, hostname: 'late' })
    await expect(late.ready()).rejects.toMatchObject({ status: 401, message: 'authKey is unknown or already used' })

    await relay.stop('SIGTERM')
    relays.splice(0)
    relay = await startRelayProcess(['--verify-clients'], { dataDir, port })
    relays.push(relay)
    await waitFor('the member to reconnect after the restart', () => member.state === 'connected' && member.self !== undefined)
    expect(member.self?.addresses).toEqual(self.addresses)
    expect(member.self?.hostname).toBe('member')
  })

  it('answers plain HTTP on /control with a JSON 426 and still serves /derp and /healthz', async () => {
    const relay = await startRelayProcess()
    relays.push(relay)
    const control = await fetch(`http://127.0.0.1:${relay.port}/control`)
    expect(control.status).toBe(426)
    expect(await control.json()).toEqual({ error: 'GET /control must be a WebSocket upgrade (see PROTOCOL.md)' })
    expect((await fetch(`http://127.0.0.1:${relay.port}/healthz`)).status).toBe(200)
    expect((await fetch(`http://127.0.0.1:${relay.port}/derp`)).status).toBe(426)
  })
})
