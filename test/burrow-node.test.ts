// `import { Burrow } from 'burrow/node'` against a real `burrow relay --verify-clients` process:
// the API `burrow up` builds on. Keys in a state directory survive a restart; errors are typed.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Burrow, BurrowError, type BurrowPeer } from '../src/node.ts'
import { readPcap } from '../src/wire/pcap.ts'
import { summarizePacket } from '../src/wire/summary.ts'
import { createAuthKey as createRelayAuthKey, startRelayProcess, type RelayProcess } from './helpers/relay-process.ts'

let relay: RelayProcess
let controlURL: string
let authKey: string
let stateDir: string
const nodes: Burrow[] = []

function createAuthKey(...flags: string[]): string {
  return createRelayAuthKey(relay.dataDir, ...flags)
}

async function start(options: Parameters<typeof Burrow.start>[0]): Promise<Burrow> {
  const node = await Burrow.start(options)
  nodes.push(node)
  return node
}

function peerNamed(node: Burrow, hostname: string, online: boolean, timeoutMs = 10_000): Promise<BurrowPeer> {
  return new Promise((resolve, reject) => {
    const find = () => node.peers().find((p) => p.hostname === hostname && p.online === online)
    const found = find()
    if (found) return resolve(found)
    const timer = setTimeout(() => reject(new Error(`${hostname} not ${online ? 'online' : 'offline'}: ${JSON.stringify(node.peers())}`)), timeoutMs)
    const listener = () => {
      const peer = find()
      if (!peer) return
      clearTimeout(timer)
      node.removeEventListener('peers', listener)
      resolve(peer)
    }
    node.addEventListener('peers', listener)
  })
}

async function rejection(promise: Promise<unknown>): Promise<BurrowError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof BurrowError) return error
    throw error
  }
  throw new Error('expected a rejection')
}

describe('Burrow for Node through burrow relay --verify-clients', () => {
  beforeAll(async () => {
    relay = await startRelayProcess(['--verify-clients'])
    controlURL = new URL(relay.url).origin
    authKey = createAuthKey('--reusable')
    stateDir = mkdtempSync(join(tmpdir(), 'burrow-node-state-'))
  })

  afterAll(async () => {
    await Promise.allSettled(nodes.map((node) => node.close()))
    await relay?.stop('SIGKILL')
    rmSync(stateDir, { recursive: true, force: true })
    if (relay) rmSync(relay.dataDir, { recursive: true, force: true })
  })

  it('joins, pings, moves TCP both ways and serves fetch()', async () => {
    const a = await start({ controlURL, authKey, hostname: 'node-a', stateDir })
    // This file is about the relay path: without direct paths on b, the two Node peers (which
    // otherwise go direct over plain UDP at once, see test/udp-direct.test.ts) stay on the relay.
    const b = await start({ controlURL, authKey, hostname: 'node-b', storage: 'memory', direct: false })
    expect(a.state).toBe('online')
    expect(a.addresses[0]).toMatch(/^100\./)
    expect(a.addresses[1]).toMatch(/^fd/)
    const seenByA = await peerNamed(a, 'node-b', true)
    expect(seenByA.addresses).toEqual(b.addresses)
    await peerNamed(b, 'node-a', true)
    expect(await a.ping(b.addresses[0]!)).toBeGreaterThan(0)
    expect(await b.ping('node-a')).toBeGreaterThan(0)
    expect(await b.ping(a.addresses[1]!)).toBeGreaterThan(0)

    const server = b.serve(8080, async (request) => new Response(`${request.method} ${new URL(request.url).pathname} ${await request.text()}`))
    await server.ready
    const taken = b.serve(8080, () => new Response('never'))
    await expect(taken.ready).rejects.toThrow(/8080/)
    const response = await a.fetch('http://node-b:8080/echo', { method: 'POST', body: 'hi' })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('POST /echo hi')
    await server.close()

    const listener = b.listen(9000)
    const { readable } = await listener.opened
    const received = (async () => {
      const { value: socket } = await readable.getReader().read()
      const { readable: data, writable } = await socket!.opened
      let total = 0
      for await (const chunk of data as unknown as AsyncIterable<Uint8Array>) total += chunk.length
      const writer = writable.getWriter()
      await writer.write(new TextEncoder().encode(`got ${total}`))
      await writer.close()
      return total
    })()
    const socket = a.connect(b.addresses[0]!, 9000)
    const { readable: reply, writable } = await socket.opened
    const writer = writable.getWriter()
    for (let i = 0; i < 32; i++) await writer.write(new Uint8Array(32 * 1024).fill(i))
    await writer.close()
    let text = ''
    for await (const chunk of reply as unknown as AsyncIterable<Uint8Array>) text += new TextDecoder().decode(chunk)
    expect(await received).toBe(1 << 20)
    expect(text).toBe(`got ${1 << 20}`)
    // UDP both ways over IPv6.
    const echo = b.udp({ localPort: 5353 })
    const { readable: echoIn, writable: echoOut } = await echo.opened
    void (async () => {
      const { value } = await echoIn.getReader().read()
      const writer = echoOut.getWriter()
      await writer.write({ data: value!.data.slice().reverse(), remoteAddress: value!.remoteAddress, remotePort: value!.remotePort })
      writer.releaseLock()
    })()
    const client = a.udp({ remoteAddress: b.addresses[1]!, remotePort: 5353 })
    const { readable: answers, writable: questions } = await client.opened
    const udpWriter = questions.getWriter()
    await udpWriter.write({ data: Uint8Array.of(1, 2, 3) })
    // The first datagram may race the handshake; resend until the answer comes.
    const reader = answers.getReader()
    const resend = setInterval(() => void udpWriter.write({ data: Uint8Array.of(1, 2, 3) }), 200)
    const answer = await reader.read()
    clearInterval(resend)
    expect([...answer.value!.data]).toEqual([3, 2, 1])
    expect(answer.value!.remoteAddress).toBe(b.addresses[1])
    await client.close()
    await echo.close()

    // Counters arrive with the worker's next peer-map push.
    await new Promise<void>((resolve) => a.addEventListener('peers', () => resolve(), { once: true }))
    const counters = a.peers().find((p) => p.hostname === 'node-b')!
    expect(counters).toMatchObject({ path: 'relay', online: true })
    expect(counters.txBytes).toBeGreaterThan(1 << 20)
    expect(counters.rxBytes).toBeGreaterThan(0)
    expect(counters.lastHandshake).toBeGreaterThan(0)
  })

  it('capture: true records both directions of the overlay as a pcap Blob (the TCP handshake, the request, the answer)', async () => {
    const a = await start({ controlURL, authKey, hostname: 'capture-a', storage: 'memory', capture: true })
    const b = await start({ controlURL, authKey, hostname: 'capture-b', storage: 'memory' })
    await peerNamed(a, 'capture-b', true)
    const server = b.serve(8081, () => new Response('captured answer'))
    await server.ready
    expect(await (await a.fetch('http://capture-b:8081/captured-request')).text()).toBe('captured answer')
    await server.close()
    const file = new Uint8Array(await a.captureBlob().arrayBuffer())
    const summaries = readPcap(file).map((r) => summarizePacket(r.packet))
    const mine = `${a.addresses[0]}.\\d+`
    const theirs = `${b.addresses[0]}.8081`
    expect(summaries.join('\n')).toMatch(new RegExp(`IP ${mine} > ${theirs}: TCP \\[S\\][\\s\\S]*IP ${theirs} > ${mine}: TCP \\[S\\.\\]`))
    const bytes = new TextDecoder().decode(file)
    expect(bytes).toContain('GET /captured-request HTTP/1.1')
    expect(bytes).toContain('captured answer')
    expect(a.captureStats).toMatchObject({ dropped: 0 })
    expect(a.captureStats!.packets).toBe(summaries.length)
    expect(() => b.captureBlob()).toThrow(/started without capture: true/)
    await expect(Burrow.start({ controlURL, authKey, storage: 'memory', capture: { maxBytes: 5 } })).rejects.toThrow(/capture\.maxBytes must be a whole number ≥ 1024/)
  })

  it('keeps the key in the state directory: a restarted node has the same key and addresses, without the auth key', async () => {
    const a = nodes[0]!
    const before = { nodeKey: a.nodeKey, addresses: a.addresses }
    const files = readdirSync(stateDir)
    expect(files).toContain('node.key')
    expect(statSync(join(stateDir, 'node.key')).mode & 0o777).toBe(0o600)
    await a.close()
    expect(a.state).toBe('closed')
    await peerNamed(nodes[1]!, 'node-a', false)
    const again = await start({ controlURL, hostname: 'node-a', stateDir })
    expect({ nodeKey: again.nodeKey, addresses: again.addresses }).toEqual(before)
    await peerNamed(again, 'node-b', true)
    expect(await again.ping('node-b')).toBeGreaterThan(0)
  })

  it('rejects a wrong auth key, bad options and an unreachable relay with typed errors', async () => {
    const wrong = await rejection(Burrow.start({ controlURL, authKey: 'bwauth-wrong', hostname: 'intruder', storage: 'memory' }))
    expect(wrong).toMatchObject({ code: 'unauthorized', status: 401, message: 'authKey is unknown or already used' })
    const missing = await rejection(Burrow.start({ controlURL, hostname: 'no-key', storage: 'memory' }))
    expect(missing).toMatchObject({ code: 'unauthorized', status: 401 })
    const bad = await rejection(Burrow.start({ controlURL: 'ftp://relay', storage: 'memory' }))
    expect(bad.code).toBe('bad-options')
    const tiny = await rejection(Burrow.start({ controlURL, authKey, storage: 'memory', mtu: 576 }))
    expect(tiny).toMatchObject({ code: 'bad-options', message: 'mtu must be a whole number from 1280 to 65488, got 576' })
    const unreachable = await rejection(Burrow.start({ controlURL: 'http://127.0.0.1:1', authKey, storage: 'memory' }))
    expect(unreachable.code).toBe('unreachable')
    expect(unreachable.message).toMatch(/cannot reach the coordination service at http:\/\/127\.0\.0\.1:1/)
    const closed = nodes[1]!
    await closed.close()
    expect(() => closed.connect('100.64.0.1', 1)).toThrow(BurrowError)
  })
})
