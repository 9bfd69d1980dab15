// Interop: Burrow's userspace TCP/IP stack (Node) against the Linux kernel's, through Burrow's
// WireGuard tunnel and wireguard-go in a namespace — clean, and through a lossy forwarder.
import { createHash } from 'node:crypto'
import dgram from 'node:dgram'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../src/cli/main.ts'
import { recordingIo } from '../src/cli/test-io.ts'
import { formatKey, generateKeyPair, parseKey } from '../src/crypto/index.ts'
import { httpFetch } from '../src/http/client.ts'
import type { Sockets } from '../src/overlay/sockets.ts'
import { openUdpTunnel } from '../src/node/udp-tunnel.ts'
import type { UdpEndpoint } from '../src/underlay/udp/udp-underlay.ts'
import { parseAddress, parsePrefix } from '../src/wire/address.ts'
import { NetworkNamespace, type WireguardGo } from './helpers/netns.ts'

const WG_PORT = 51830
const LINUX = '10.79.0.1'
const LINUX6 = 'fd79::1'
const FILE_BYTES = 20 << 20
const HTTP_PORT = 8000
const SINK_PORT = 9000

let ns: NetworkNamespace
let wg: WireguardGo
const scratch = mkdtempSync(join(tmpdir(), 'burrow-tcp-linux-'))
const fileBytes = new Uint8Array(FILE_BYTES)
for (let i = 0; i < FILE_BYTES; i += 4) new DataView(fileBytes.buffer).setUint32(i, Math.imul(i, 2654435761) >>> 0)
const fileDigest = createHash('sha256').update(fileBytes).digest('hex')
const cleanups: Array<() => Promise<void> | void> = []

beforeAll(async () => {
  ns = await NetworkNamespace.create()
  wg = await ns.startWireguardGo({ listenPort: WG_PORT, addresses: [`${LINUX}/24`, `${LINUX6}/64`] })
  writeFileSync(join(scratch, 'file.bin'), fileBytes)
  const server = ns.spawn('python3', ['-m', 'http.server', String(HTTP_PORT), '--bind', '::', '--directory', scratch])
  cleanups.push(() => void server.kill())
  // Wait until the server answers inside the namespace.
  for (let i = 0; i < 100; i++) {
    const probe = await ns.tryRun('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${LINUX}:${HTTP_PORT}/file.bin`, '--max-time', '5'])
    if (probe.stdout === '200') break
    await new Promise((r) => setTimeout(r, 100))
  }
})

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
  await ns?.cleanup()
})

interface BurrowNode {
  sockets: Sockets
  address: string
  address6: string
}

/** A Burrow node at 10.79.0.<n>, peered with wireguard-go via `viaEndpoint` (the forwarder) or directly. */
async function startBurrow(n: number, viaEndpoint?: UdpEndpoint): Promise<BurrowNode> {
  const keys = generateKeyPair()
  const address = `10.79.0.${n}`
  const address6 = `fd79::${n}`
  const endpoint = viaEndpoint ?? { address: ns.nsAddress, port: WG_PORT }
  const tunnel = await openUdpTunnel({
    interface: {
      privateKey: keys.privateKey,
      addresses: [
        { address: parseAddress(address), bits: 24 },
        { address: parseAddress(address6), bits: 64 },
      ],
    },
    peers: [
      {
        publicKey: parseKey(wg.publicKey),
        allowedIps: [parsePrefix('10.79.0.0/24'), parsePrefix('fd79::/64')],
        endpoint: { host: endpoint.address, port: endpoint.port },
      },
    ],
  })
  await wg.setPeer({ publicKey: formatKey(keys.publicKey), allowedIps: [`${address}/32`, `${address6}/128`], endpoint: viaEndpoint ? undefined : `${ns.hostAddress}:${tunnel.underlay.port}` })
  cleanups.push(() => tunnel.close())
  return { sockets: tunnel.sockets, address, address6 }
}

/** A UDP relay between Burrow and wireguard-go that drops, delays and reorders datagrams. */
async function startLossyForwarder(options: { loss: number; delayMs: number; jitterMs: number }): Promise<{ endpoint: UdpEndpoint; setBurrow: (e: UdpEndpoint) => void; stats: { dropped: number; forwarded: number } }> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '0.0.0.0', resolve))
  let burrow: UdpEndpoint | undefined
  let closed = false
  const stats = { dropped: 0, forwarded: 0 }
  let seed = 12345
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed / 4294967296
  }
  socket.on('message', (message, from) => {
    const toWireguard = from.address === '127.0.0.1'
    if (toWireguard) burrow = { address: from.address, port: from.port }
    if (random() < options.loss) {
      stats.dropped++
      return
    }
    const target = toWireguard ? { address: ns.nsAddress, port: WG_PORT } : burrow
    if (!target) return
    stats.forwarded++
    setTimeout(() => closed || socket.send(message, target.port, target.address), options.delayMs + random() * options.jitterMs)
  })
  const port = (socket.address() as { port: number }).port
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        closed = true
        socket.close(() => resolve())
      }),
  )
  return { endpoint: { address: '127.0.0.1', port }, setBurrow: (e) => (burrow = e), stats }
}

async function* iterate<T>(stream: ReadableStream<T>): AsyncGenerator<T> {
  const reader = stream.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      yield value
    }
  } finally {
    reader.releaseLock()
  }
}

function opener(sockets: Sockets) {
  return async (host: string, port: number) => {
    const socket = sockets.connect({ host: host.replace(/^\[(.*)\]$/, '$1'), port })
    const { readable, writable } = await socket.opened
    return { readable, writable, close: () => socket.close() }
  }
}

async function download(node: BurrowNode, host = LINUX): Promise<{ status: number; digest: string; bytes: number }> {
  const response = await httpFetch(opener(node.sockets), `http://${host}:${HTTP_PORT}/file.bin`)
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of iterate(response.body!)) {
    hash.update(chunk)
    bytes += chunk.length
  }
  return { status: response.status, digest: hash.digest('hex'), bytes }
}

/** Sends the file to a Python sink in the namespace, half-closes, and returns the sink's "<bytes> <sha256>". */
async function upload(node: BurrowNode, port: number, size = FILE_BYTES): Promise<string> {
  const sinkScript = [
    'import socket, hashlib, sys',
    's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `s.bind(('${LINUX}', ${port})); s.listen(1); print('ready', flush=True)`,
    'c, _ = s.accept(); h = hashlib.sha256(); n = 0',
    'while True:',
    '    d = c.recv(1 << 20)',
    '    if not d: break',
    '    h.update(d); n += len(d)',
    "c.sendall(f'{n} {h.hexdigest()}\\n'.encode()); c.close()",
  ].join('\n')
  const sink = ns.spawn('python3', ['-c', sinkScript])
  cleanups.push(() => void sink.kill())
  await new Promise<void>((resolve) => sink.stdout!.once('data', () => resolve()))
  const socket = node.sockets.connect({ host: LINUX, port })
  const { readable, writable } = await socket.opened
  const writer = writable.getWriter()
  for (let o = 0; o < size; o += 256 * 1024) await writer.write(fileBytes.subarray(o, Math.min(size, o + 256 * 1024)))
  await writer.close()
  let answer = ''
  for await (const chunk of iterate(readable)) answer += new TextDecoder().decode(chunk)
  return answer.trim()
}

describe('Burrow TCP against Linux TCP through WireGuard', () => {
  let node: BurrowNode

  beforeAll(async () => {
    node = await startBurrow(2)
  })

  it('pings Linux from Burrow and Linux pings Burrow', async () => {
    const rtt = await node.sockets.ping(LINUX, { timeout: 10_000 })
    expect(rtt).toBeGreaterThan(0)
    const back = await ns.tryRun('ping', ['-c', '1', '-W', '5', node.address], { timeoutMs: 15_000 })
    expect(back.code, back.stdout + back.stderr).toBe(0)
  })

  it('downloads 20 MB from python3 -m http.server, SHA-256 exact', async () => {
    const result = await download(node)
    expect(result.status).toBe(200)
    expect(result.bytes).toBe(FILE_BYTES)
    expect(result.digest).toBe(fileDigest)
  }, 120_000)

  it('downloads 20 MB over IPv6, SHA-256 exact', async () => {
    const result = await download(node, `[${LINUX6}]`)
    expect(result.status).toBe(200)
    expect(result.digest).toBe(fileDigest)
  }, 120_000)

  it('pings over ICMPv6 both ways', async () => {
    expect(await node.sockets.ping(LINUX6, { timeout: 10_000 })).toBeGreaterThan(0)
    const back = await ns.tryRun('ping', ['-6', '-c', '1', '-W', '5', node.address6], { timeoutMs: 15_000 })
    expect(back.code, back.stdout + back.stderr).toBe(0)
  })

  it('uploads 20 MB to a Linux TCP sink, half-closing, SHA-256 exact', async () => {
    expect(await upload(node, SINK_PORT)).toBe(`${FILE_BYTES} ${fileDigest}`)
  }, 120_000)

  it('serves a client inside the namespace from a Burrow listener', async () => {
    const body = fileBytes.subarray(0, 5 << 20)
    const server = node.sockets.listen({ port: 8080 })
    const { readable: incoming } = await server.opened
    const serving = (async () => {
      for await (const socket of iterate(incoming)) {
        const { readable, writable } = await socket.opened
        const reader = readable.getReader()
        let head = ''
        while (!head.includes('\r\n\r\n')) {
          const { value, done } = await reader.read()
          if (done) break
          head += new TextDecoder().decode(value)
        }
        const writer = writable.getWriter()
        await writer.write(new TextEncoder().encode(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`))
        await writer.write(body)
        await writer.close()
        reader.releaseLock()
        await readable.cancel().catch(() => {})
        return
      }
    })()
    const fetched = await ns.run('sh', ['-c', `curl -s --max-time 60 http://${node.address}:8080/ | sha256sum`], { timeoutMs: 90_000 })
    await serving
    await server.close()
    expect(fetched.split(' ')[0]).toBe(createHash('sha256').update(body).digest('hex'))
  }, 120_000)
})

describe('Burrow TCP through a lossy path (3 % loss each way, 20 ms delay, reordering)', () => {
  let node: BurrowNode
  let forwarder: Awaited<ReturnType<typeof startLossyForwarder>>

  beforeAll(async () => {
    forwarder = await startLossyForwarder({ loss: 0.03, delayMs: 20, jitterMs: 4 })
    node = await startBurrow(3, forwarder.endpoint)
  })

  it('downloads 20 MB byte-exact', async () => {
    const dropsBefore = forwarder.stats.dropped
    const result = await download(node)
    expect(result.status).toBe(200)
    expect(result.digest).toBe(fileDigest)
    expect(forwarder.stats.dropped - dropsBefore).toBeGreaterThan(100)
  }, 240_000)

  it('uploads 2 MB byte-exact (Burrow is the sender: its RACK/SACK recovery and CUBIC do the work)', async () => {
    const dropsBefore = forwarder.stats.dropped
    const size = 2 << 20
    expect(await upload(node, SINK_PORT + 1, size)).toBe(`${size} ${createHash('sha256').update(fileBytes.subarray(0, size)).digest('hex')}`)
    expect(forwarder.stats.dropped - dropsBefore).toBeGreaterThan(10)
  }, 240_000)
})

describe('burrow fetch', () => {
  it('GETs a file through the tunnel with the userspace stack, body to a file, status to stderr', async () => {
    const keys = generateKeyPair()
    const configPath = join(scratch, 'fetch.conf')
    writeFileSync(
      configPath,
      [
        '[Interface]',
        `PrivateKey = ${formatKey(keys.privateKey)}`,
        'Address = 10.79.0.4/32',
        '',
        '[Peer]',
        `PublicKey = ${wg.publicKey}`,
        'AllowedIPs = 10.79.0.0/24',
        `Endpoint = ${ns.nsAddress}:${WG_PORT}`,
        '',
      ].join('\n'),
    )
    await wg.setPeer({ publicKey: formatKey(keys.publicKey), allowedIps: ['10.79.0.4/32'] })
    const output = join(scratch, 'fetched.bin')
    const io = recordingIo()
    const code = await main(['fetch', '--config', configPath, `http://${LINUX}:${HTTP_PORT}/file.bin`, '-o', output], io)
    expect(io.err).toContain('HTTP/1.1 200 OK')
    expect(code).toBe(0)
    expect(createHash('sha256').update(readFileSync(output)).digest('hex')).toBe(fileDigest)

    const missing = recordingIo()
    expect(await main(['fetch', '--config', configPath, `http://${LINUX}:${HTTP_PORT}/missing`], missing)).toBe(1)
    expect(missing.err).toContain('HTTP/1.1 404')

    const refused = recordingIo()
    expect(await main(['fetch', '--config', configPath, `http://${LINUX}:1/`], refused)).toBe(1)
    expect(refused.err).toContain(`${LINUX}:1: connection refused`)
  }, 120_000)
})
