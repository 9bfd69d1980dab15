// The relay's HTTP surface, in process: upgrade responses, fast start, probes, subprotocol check.
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { generateKeyPair, toHex } from '../src/crypto/index.ts'
import { startRelayServer, type RelayServer } from '../src/server/relay-server.ts'
import { MAGIC } from '../src/underlay/derp/frames.ts'

let server: RelayServer
const relayKey = generateKeyPair()

beforeAll(async () => {
  server = await startRelayServer({ host: '127.0.0.1', port: 0, privateKey: relayKey.privateKey })
})

afterAll(async () => {
  await server.close()
})

function rawUpgrade(headers: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1', () => socket.write(`GET /derp HTTP/1.1\r\nHost: x\r\n${headers}\r\n`))
    let data = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk])
      if (data.includes(Buffer.from(MAGIC)) && data.length >= data.indexOf(Buffer.from(MAGIC)) + 40) {
        socket.destroy()
        resolve(data)
      }
    })
    socket.on('error', reject)
  })
}

describe('relay HTTP surface', () => {
  it('answers Upgrade: DERP with 101, its version and key, then the ServerKey frame', async () => {
    const data = (await rawUpgrade('Upgrade: DERP\r\nConnection: Upgrade\r\n')).toString('latin1')
    expect(data).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/)
    expect(data).toContain('Derp-Version: 2\r\n')
    expect(data).toContain(`Derp-Public-Key: ${toHex(relayKey.publicKey)}\r\n`)
  })

  it('skips the HTTP response when the client asks for fast start', async () => {
    const data = await rawUpgrade('Upgrade: DERP\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n')
    expect([...data.subarray(0, 5)]).toEqual([0x01, 0, 0, 0, 40])
    expect(new Uint8Array(data.subarray(13, 45))).toEqual(relayKey.publicKey)
  })

  it('serves probes with CORS, health and metrics, and 426 for /derp without an upgrade', async () => {
    for (const path of ['/derp/probe', '/derp/latency-check']) {
      const res = await fetch(`http://127.0.0.1:${server.port}${path}`)
      expect(res.status).toBe(200)
      expect(res.headers.get('access-control-allow-origin')).toBe('*')
      expect((await fetch(`http://127.0.0.1:${server.port}${path}`, { method: 'POST' })).status).toBe(405)
    }
    expect(await (await fetch(`http://127.0.0.1:${server.port}/healthz`)).text()).toBe('ok\n')
    expect(await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text()).toContain('burrow_relay_clients 0')
    expect((await fetch(`http://127.0.0.1:${server.port}/derp`)).status).toBe(426)
  })

  it('refuses a WebSocket that does not speak the derp subprotocol', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/derp`)
    const code = await new Promise<number>((resolve) => {
      ws.on('close', (c) => resolve(c))
      ws.on('error', () => {})
    })
    expect(code).toBe(1008)
  })
})
