// `burrow up` as a real child process, joined to a real `burrow relay`, exposing a real Node HTTP
// server and a WebSocket echo to Burrow peers in this process: bytes through the relay, --allow,
// the status file and table, surviving a relay restart, and a clean SIGTERM.
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSocket, type Socket as DgramSocket } from 'node:dgram'
import { Duplex } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket, WebSocketServer } from 'ws'
import { Burrow } from '../src/node.ts'
import { patternBytes } from '../src/overlay/testing/pair.ts'
import { type BurrowProcess, spawnBurrow } from './helpers/burrow-process.ts'
import { createAuthKey, type RelayProcess, removeRelayDataDirs, startRelayProcess, waitFor } from './helpers/relay-process.ts'

const ROOT = join(import.meta.dirname, '..')
const BODY = patternBytes(5 << 20, 21)

type UpProcess = BurrowProcess

function spawnUp(args: string[]): UpProcess {
  return spawnBurrow(['up', ...args])
}

function authKey(dataDir: string, kind = '--reusable'): string {
  return createAuthKey(dataDir, kind)
}

function burrowStatus(stateDir: string): string {
  return execFileSync(process.execPath, ['bin/burrow.mjs', 'status', '--state-dir', stateDir], { cwd: ROOT, encoding: 'utf8' })
}

/** An overlay TCP connection as a Node Duplex, so `ws` can run its handshake over it. */
async function overlayDuplex(node: Burrow, host: string, port: number): Promise<Duplex> {
  const socket = node.connect({ host, port })
  const { readable, writable } = await socket.opened
  // The DOM and node:stream/web typings of the same WHATWG streams differ only in iterator members.
  return Duplex.fromWeb({ readable, writable } as unknown as Parameters<typeof Duplex.fromWeb>[0])
}

let relay: RelayProcess
let up: UpProcess
let http: Server
let wss: WebSocketServer
let udpEcho: DgramSocket
let stateDir: string
let key: string
let serverAddress: string
const nodes: Burrow[] = []
let allowed: Burrow
let intruder: Burrow

beforeAll(async () => {
  relay = await startRelayProcess()
  key = authKey(relay.dataDir)
  http = createServer((request, response) => {
    if (request.url === '/blob') {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length })
      response.end(BODY)
    } else {
      response.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  wss.on('connection', (socket) => socket.on('message', (data, binary) => socket.send(data, { binary })))
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  udpEcho = createSocket('udp4')
  udpEcho.on('message', (data, rinfo) => udpEcho.send(Buffer.concat([Buffer.from('echo:'), data]), rinfo.port, rinfo.address))
  await new Promise<void>((resolve) => udpEcho.bind(0, '127.0.0.1', resolve))
  stateDir = mkdtempSync(join(tmpdir(), 'burrow-up-'))
  up = spawnUp([
    '--control',
    `http://127.0.0.1:${relay.port}`,
    '--authkey',
    key,
    '--hostname',
    'server',
    '--state-dir',
    stateDir,
    '--serve',
    `80=127.0.0.1:${(http.address() as AddressInfo).port}`,
    '--serve',
    `81=127.0.0.1:${(wss.address() as AddressInfo).port}`,
    '--serve-udp',
    `53=127.0.0.1:${udpEcho.address().port}`,
    '--allow',
    'allowed',
    '--pcap',
    join(stateDir, 'up.pcap'),
    // This suite is about the relay path (direct paths across NATs: test/nat-direct.test.ts), and
    // in the host namespace ICE would use the machine's own interface addresses.
    '--no-direct',
  ])
  await waitFor('burrow up to join', () => up.logs.some((l) => l.msg === 'up') || up.proc.exitCode !== null, 30_000)
  const joined = up.logs.find((l) => l.msg === 'up')
  if (!joined) throw new Error(`burrow up did not join: ${up.stderr()}`)
  serverAddress = (joined.addresses as string[])[0]!
  allowed = await Burrow.start({ controlURL: `http://127.0.0.1:${relay.port}`, authKey: key, hostname: 'allowed', storage: 'memory', direct: false })
  nodes.push(allowed)
  intruder = await Burrow.start({ controlURL: `http://127.0.0.1:${relay.port}`, authKey: key, hostname: 'intruder', storage: 'memory', direct: false })
  nodes.push(intruder)
  await waitFor('the peers to see the server online', () => [allowed, intruder].every((n) => n.peers().some((p) => p.hostname === 'server' && p.online)))
}, 60_000)

afterAll(async () => {
  for (const node of nodes) await node.close().catch(() => {})
  if (up && up.proc.exitCode === null) {
    up.proc.kill('SIGKILL')
    await up.exited
  }
  await relay?.stop('SIGKILL')
  removeRelayDataDirs()
  wss?.close()
  udpEcho?.close()
  http?.closeAllConnections()
  http?.close()
  if (stateDir) rmSync(stateDir, { recursive: true, force: true })
})

describe('burrow up', () => {
  it('serves a real HTTP server to a Burrow peer: 5 MB byte-exact through the relay', async () => {
    const response = await allowed.fetch(`http://${serverAddress}/blob`)
    expect(response.status).toBe(200)
    const body = new Uint8Array(await response.arrayBuffer())
    expect(body.length).toBe(BODY.length)
    expect(Buffer.compare(body, BODY)).toBe(0)
    const connection = up.logs.find((l) => l.msg === 'connection' && l.port === 80)
    expect(connection).toMatchObject({ level: 'info', proto: 'tcp', peer: 'allowed', rule: 'allowed', to: `127.0.0.1:${(http.address() as AddressInfo).port}` })
    expect(connection!.from).toMatch(new RegExp(`^${allowed.addresses[0]!.replaceAll('.', '\\.')}:\\d+$`))
    expect(typeof connection!.time).toBe('string')
  }, 60_000)

  it('bridges a WebSocket echo (ws) over the overlay', async () => {
    const duplex = await overlayDuplex(allowed, serverAddress, 81)
    const socket = new WebSocket(`ws://${serverAddress}:81/`, { createConnection: () => duplex as never })
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    const replies: Buffer[] = []
    socket.on('message', (data) => replies.push(data as Buffer))
    const messages = [Buffer.from('hello over burrow'), Buffer.from(patternBytes(200_000, 5))]
    for (const message of messages) socket.send(message)
    await waitFor('both echoes', () => replies.length === 2)
    expect(replies[0]!.toString()).toBe('hello over burrow')
    expect(Buffer.compare(replies[1]!, messages[1]!)).toBe(0)
    socket.close()
    await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  }, 60_000)

  it('forwards UDP to a real dgram service and back', async () => {
    const socket = allowed.udp()
    const { readable, writable } = await socket.opened
    const writer = writable.getWriter()
    const reader = readable.getReader()
    // UDP through a relay may lose the first datagram while the path warms up: ask until answered.
    const answered = (async () => (await reader.read()).value!)()
    let reply: Awaited<typeof answered> | undefined
    void answered.then((r) => (reply = r))
    await waitFor('a UDP answer', () => {
      if (reply === undefined) void writer.write({ data: new TextEncoder().encode('hi'), remoteAddress: serverAddress, remotePort: 53 })
      return reply !== undefined
    })
    expect(Buffer.from(reply!.data).toString()).toBe('echo:hi')
    expect(reply).toMatchObject({ remoteAddress: serverAddress, remotePort: 53 })
    // Datagrams bigger than a 1420-byte tunnel would allow pass: the overlay MTU is Burrow's 16384.
    const big = patternBytes(6000, 9)
    await writer.write({ data: big, remoteAddress: serverAddress, remotePort: 53 })
    let bigReply = (await reader.read()).value!
    while (bigReply.data.length < 100) bigReply = (await reader.read()).value! // late answers to the retried "hi"
    expect(Buffer.compare(bigReply.data, Buffer.concat([Buffer.from('echo:'), big]))).toBe(0)
    await socket.close()
    expect(up.logs.find((l) => l.msg === 'udp flow')).toMatchObject({ proto: 'udp', port: 53, peer: 'allowed', to: `127.0.0.1:${udpEcho.address().port}` })
  }, 60_000)

  it('resets a peer that --allow does not list, and logs who it was', async () => {
    const socket = intruder.connect({ host: serverAddress, port: 80 })
    const { readable } = await socket.opened
    await expect(readable.getReader().read()).rejects.toThrow(`${serverAddress}:80: connection reset by peer`)
    await expect(intruder.fetch(`http://${serverAddress}/blob`)).rejects.toThrow()
    await waitFor('the denial in the log', () => up.logs.some((l) => l.msg === 'connection denied'))
    const denial = up.logs.find((l) => l.msg === 'connection denied')
    expect(denial).toMatchObject({ level: 'warn', proto: 'tcp', port: 80, peer: 'intruder', reason: `intruder (${intruder.addresses[0]}) matches no --allow entry (allowed)` })
  }, 60_000)

  it('shows its peers in burrow status', async () => {
    await waitFor('a status file', () => existsSync(join(stateDir, 'status.json')))
    await waitFor('the status to list both peers', () => /\ballowed\b/.test(burrowStatus(stateDir)) && /\bintruder\b/.test(burrowStatus(stateDir)))
    const lines = burrowStatus(stateDir).split('\n')
    expect(lines[0]).toMatch(/^IPv4\s+IPv6\s+HOSTNAME\s+STATUS\s+PATH\s+RTT\s+RX\s+TX$/)
    expect(lines.find((l) => l.includes(' server '))).toMatch(new RegExp(`^${serverAddress.replaceAll('.', '\\.')}\\s.*self, online`))
    expect(lines.find((l) => l.includes(' allowed '))).toMatch(new RegExp(`^${allowed.addresses[0]!.replaceAll('.', '\\.')}\\s+\\S+\\s+allowed\\s+online\\s+relay\\s`))
    // ACTIVE counts the peer's keep-alive connection from the first test, if its pool still holds it.
    expect(lines.some((l) => new RegExp(`^tcp/80  127\\.0\\.0\\.1:${(http.address() as AddressInfo).port}  [01]$`).test(l))).toBe(true)
    expect(lines.some((l) => /^tcp\/81 {2}127\.0\.0\.1:\d+ {2}0$/.test(l))).toBe(true)
  }, 60_000)

  it('--pcap writes its overlay packets while it runs, and tcpdump reads them', async () => {
    const response = await allowed.fetch(`http://server/blob`)
    expect((await response.arrayBuffer()).byteLength).toBe(BODY.length)
    const capture = join(stateDir, 'up.pcap')
    // burrow up flushes the capture every second.
    await waitFor('the capture to hold the download', () => existsSync(capture) && statSync(capture).size > BODY.length, 10_000)
    const dump = execFileSync('tcpdump', ['-r', capture, '-nn', 'tcp port 80'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    expect(dump).toMatch(new RegExp(`IP ${serverAddress.replace(/\./g, '\\.')}\\.80 > [\\d.]+: Flags \\[S\\.\\]`))
    expect(dump).toMatch(/length 1\d{3,4}/)
  })

  it('reconnects after the relay restarts, keeps its addresses, and a download in flight completes', async () => {
    const port = relay.port
    const dataDir = relay.dataDir
    const onlineBefore = up.logs.filter((l) => l.msg === 'state' && l.state === 'online').length
    // A bridged download in progress across the restart: the overlay TCP connection outlives the relay.
    const inFlight = allowed.connect({ host: serverAddress, port: 80 })
    const { readable, writable } = await inFlight.opened
    await writable.getWriter().write(new TextEncoder().encode('GET /blob HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n'))
    const reader = readable.getReader()
    const chunks: Uint8Array[] = []
    let received = 0
    while (received < 1 << 20) {
      const { value } = await reader.read()
      chunks.push(value!)
      received += value!.length
    }
    await relay.stop('SIGTERM')
    await waitFor('burrow up to notice', () => up.logs.some((l) => l.msg === 'state' && l.state === 'reconnecting'))
    relay = await startRelayProcess([], { port, dataDir })
    await waitFor('burrow up to be online again', () => up.logs.filter((l) => l.msg === 'state' && l.state === 'online').length > onlineBefore, 60_000)
    await waitFor('the peer to see the server online again', () => allowed.state === 'online' && allowed.peers().some((p) => p.hostname === 'server' && p.online), 60_000)
    expect(allowed.peers().find((p) => p.hostname === 'server')!.addresses[0]).toBe(serverAddress)
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value)
    const raw = Buffer.concat(chunks)
    const bodyStart = raw.indexOf('\r\n\r\n') + 4
    expect(Buffer.compare(raw.subarray(bodyStart), BODY)).toBe(0)
    const response = await allowed.fetch(`http://${serverAddress}/blob`)
    expect(Buffer.compare(new Uint8Array(await response.arrayBuffer()), BODY)).toBe(0)
    expect(up.proc.exitCode).toBeNull()
  }, 120_000)

  it('closes connections and stops on SIGTERM, keeping its key (mode 0600) and removing the status file', async () => {
    // An open keep-alive connection gets a FIN, not a reset, when the process stops.
    const socket = allowed.connect({ host: serverAddress, port: 80 })
    const { readable, writable } = await socket.opened
    await writable.getWriter().write(new TextEncoder().encode('GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n'))
    const reader = readable.getReader()
    const head = await reader.read()
    expect(Buffer.from(head.value!).toString()).toMatch(/^HTTP\/1\.1 404/)
    up.proc.kill('SIGTERM')
    expect(await up.exited).toBe(0)
    for (let r = await reader.read(); !r.done; r = await reader.read());
    expect(up.logs.find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM', ephemeral: false })
    expect(up.logs.find((l) => l.msg === 'connection ended' && l.end === 'shutdown')).toBeDefined()
    expect(up.logs.at(-1)).toMatchObject({ msg: 'stopped', identity: 'kept' })
    expect(existsSync(join(stateDir, 'status.json'))).toBe(false)
    const keyFiles = readdirSync(stateDir).filter((f) => f.endsWith('.key'))
    expect(keyFiles.length).toBeGreaterThan(0)
    for (const file of keyFiles) expect(statSync(join(stateDir, file)).mode & 0o777).toBe(0o600)
    expect(statSync(stateDir).mode & 0o777).toBe(0o700)
  }, 60_000)

  it('with --ephemeral keeps no key on disk and is gone from the network after it stops', async () => {
    const ephemeralDir = mkdtempSync(join(tmpdir(), 'burrow-up-ephemeral-'))
    try {
      const temporary = spawnUp([
        '--control',
        `http://127.0.0.1:${relay.port}`,
        '--authkey',
        authKey(relay.dataDir, '--ephemeral'),
        '--hostname',
        'fleeting',
        '--state-dir',
        ephemeralDir,
        '--ephemeral',
      ])
      await waitFor('the ephemeral node to join', () => temporary.logs.some((l) => l.msg === 'up') || temporary.proc.exitCode !== null, 30_000)
      expect(
        temporary.logs.find((l) => l.msg === 'up'),
        temporary.stderr(),
      ).toMatchObject({ hostname: 'fleeting', ephemeral: true })
      await waitFor('the peer to see it', () => allowed.peers().some((p) => p.hostname === 'fleeting' && p.online))
      temporary.proc.kill('SIGINT')
      expect(await temporary.exited).toBe(0)
      expect(temporary.logs.at(-1)).toMatchObject({ msg: 'stopped', identity: 'discarded' })
      await waitFor('the node to leave the peer map', () => !allowed.peers().some((p) => p.hostname === 'fleeting'))
      expect(readdirSync(ephemeralDir).filter((f) => f.endsWith('.key'))).toEqual([])
    } finally {
      rmSync(ephemeralDir, { recursive: true, force: true })
    }
  }, 60_000)

  it('stops with status 1 when another process takes over its identity', async () => {
    const firstDir = mkdtempSync(join(tmpdir(), 'burrow-up-first-'))
    const secondDir = mkdtempSync(join(tmpdir(), 'burrow-up-second-'))
    const started: UpProcess[] = []
    try {
      const args = (dir: string) => ['--control', `http://127.0.0.1:${relay.port}`, '--authkey', key, '--hostname', 'twin', '--state-dir', dir]
      const first = spawnUp(args(firstDir))
      started.push(first)
      await waitFor('the first to join', () => first.logs.some((l) => l.msg === 'up') || first.proc.exitCode !== null, 30_000)
      for (const file of readdirSync(firstDir).filter((f) => f.endsWith('.key'))) copyFileSync(join(firstDir, file), join(secondDir, file))
      const second = spawnUp(args(secondDir))
      started.push(second)
      expect(await first.exited).toBe(1)
      expect(first.logs.find((l) => l.msg === 'shutting down')).toMatchObject({ level: 'error', signal: 'failed' })
      expect(first.stderr()).toContain('burrow up: the node failed')
      await waitFor('the second to join as the same node', () => second.logs.some((l) => l.msg === 'up'), 30_000)
      expect(second.logs.find((l) => l.msg === 'up')!.addresses).toEqual(first.logs.find((l) => l.msg === 'up')!.addresses)
    } finally {
      for (const p of started) {
        if (p.proc.exitCode === null) p.proc.kill('SIGKILL')
        await p.exited
      }
      rmSync(firstDir, { recursive: true, force: true })
      rmSync(secondDir, { recursive: true, force: true })
    }
  }, 90_000)

  it('keeps trying to join while the relay is down, and joins once it starts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'burrow-late-relay-'))
    const upDir = mkdtempSync(join(tmpdir(), 'burrow-up-early-'))
    let early: UpProcess | undefined
    let late: RelayProcess | undefined
    try {
      const lateKey = authKey(dataDir) // the store exists before the relay runs, as an operator may prepare it
      const port = await new Promise<number>((resolve) => {
        const probe = createServer().listen(0, '127.0.0.1', () => {
          const { port } = probe.address() as AddressInfo
          probe.close(() => resolve(port))
        })
      })
      early = spawnUp(['--control', `http://127.0.0.1:${port}`, '--authkey', lateKey, '--hostname', 'early', '--state-dir', upDir])
      await waitFor('a retry to be logged', () => early!.logs.some((l) => l.msg === 'cannot join yet; retrying'), 30_000)
      expect(early.logs.find((l) => l.msg === 'cannot join yet; retrying')).toMatchObject({ level: 'warn', code: 'unreachable' })
      late = await startRelayProcess([], { port, dataDir })
      await waitFor('the node to join', () => early!.logs.some((l) => l.msg === 'up'), 30_000)
      early.proc.kill('SIGINT')
      expect(await early.exited).toBe(0)
    } finally {
      if (early && early.proc.exitCode === null) {
        early.proc.kill('SIGKILL')
        await early.exited
      }
      await late?.stop('SIGKILL')
      rmSync(dataDir, { recursive: true, force: true })
      rmSync(upDir, { recursive: true, force: true })
    }
  }, 90_000)
})
