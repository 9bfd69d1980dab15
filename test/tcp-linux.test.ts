// Interop: Burrow's userspace TCP/IP stack (Node) against the Linux kernel's, through Burrow's
// WireGuard tunnel and wireguard-go in a namespace — clean, and through a lossy path (a FaultInjector
// around Burrow's UDP underlay).
import { createHash } from 'node:crypto'
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
import { FaultInjector, type FaultProfile } from '../src/underlay/fault-injector.ts'
import type { UdpEndpoint } from '../src/underlay/udp/udp-underlay.ts'
import { parseAddress, parsePrefix } from '../src/wire/address.ts'
import { NetworkNamespace, runCommand, type WireguardGo } from './helpers/netns.ts'

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
  faults?: FaultInjector<UdpEndpoint>
}

/** Faults on both directions of the lossy test path: loss, one-way delay and reordering jitter. */
const LOSSY_PATH = { drop: 0.03, delayMs: 20, jitterMs: 4 }

/** A Burrow node at 10.79.0.<n>, peered with wireguard-go; `faults` puts a FaultInjector around its UDP underlay. */
async function startBurrow(n: number, faults?: FaultProfile): Promise<BurrowNode> {
  const keys = generateKeyPair()
  const address = `10.79.0.${n}`
  const address6 = `fd79::${n}`
  let injector: FaultInjector<UdpEndpoint> | undefined
  const tunnel = await openUdpTunnel(
    {
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
          endpoint: { host: ns.nsAddress, port: WG_PORT },
        },
      ],
    },
    faults ? { wrapUnderlay: (underlay) => (injector = new FaultInjector(underlay, { seed: 12345 + n, send: faults, receive: faults })) } : {},
  )
  await wg.setPeer({ publicKey: formatKey(keys.publicKey), allowedIps: [`${address}/32`, `${address6}/128`], endpoint: `${ns.hostAddress}:${tunnel.underlay.port}` })
  cleanups.push(() => tunnel.close())
  return { sockets: tunnel.sockets, address, address6, ...(injector && { faults: injector }) }
}

/** Datagrams the node's fault injector dropped so far, both directions. */
function dropped(node: BurrowNode): number {
  const stats = node.faults!.stats
  return stats.send.dropped + stats.receive.dropped
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

  beforeAll(async () => {
    node = await startBurrow(3, LOSSY_PATH)
  })

  it('downloads 20 MB byte-exact', async () => {
    const dropsBefore = dropped(node)
    const result = await download(node)
    expect(result.status).toBe(200)
    expect(result.digest).toBe(fileDigest)
    expect(dropped(node) - dropsBefore).toBeGreaterThan(100)
  }, 240_000)

  it('uploads 2 MB byte-exact (Burrow is the sender: its RACK/SACK recovery and CUBIC do the work)', async () => {
    const dropsBefore = dropped(node)
    const size = 2 << 20
    expect(await upload(node, SINK_PORT + 1, size)).toBe(`${size} ${createHash('sha256').update(fileBytes.subarray(0, size)).digest('hex')}`)
    expect(dropped(node) - dropsBefore).toBeGreaterThan(10)
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

  it('--pcap writes both directions of the overlay as a capture tcpdump reads: the TCP handshake, the request and the data', async () => {
    const keys = generateKeyPair()
    const configPath = join(scratch, 'fetch-pcap.conf')
    writeFileSync(
      configPath,
      `[Interface]\nPrivateKey = ${formatKey(keys.privateKey)}\nAddress = 10.79.0.5/32\n\n[Peer]\nPublicKey = ${wg.publicKey}\nAllowedIPs = 10.79.0.0/24\nEndpoint = ${ns.nsAddress}:${WG_PORT}\n`,
    )
    await wg.setPeer({ publicKey: formatKey(keys.publicKey), allowedIps: ['10.79.0.5/32'] })
    writeFileSync(join(scratch, 'hello.txt'), 'hello through the burrow\n')
    const capture = join(scratch, 'fetch.pcap')
    const io = recordingIo()
    const code = await main(['fetch', '--config', configPath, '--pcap', capture, `http://${LINUX}:${HTTP_PORT}/hello.txt`], io)
    expect(code, io.err).toBe(0)
    expect(io.out).toBe('hello through the burrow\n')
    const dump = await runCommand('tcpdump', ['-r', capture, '-nn', '-A'])
    expect(dump.code, dump.stderr).toBe(0)
    expect(dump.stderr).toContain('link-type RAW')
    // The three-way handshake, in order, between Burrow's stack and the kernel's.
    const handshake = [
      `10.79.0.5.\\d+ > ${LINUX}.${HTTP_PORT}: Flags \\[S\\]`,
      `${LINUX}.${HTTP_PORT} > 10.79.0.5.\\d+: Flags \\[S\\.\\]`,
      `10.79.0.5.\\d+ > ${LINUX}.${HTTP_PORT}: Flags \\[\\.\\]`,
    ]
    expect(dump.stdout).toMatch(new RegExp(handshake.join('[\\s\\S]*')))
    expect(dump.stdout).toContain('GET /hello.txt HTTP/1.1')
    expect(dump.stdout).toContain('hello through the burrow')
  }, 120_000)

  it('--pcap names the capture file it cannot write and exits 1 before opening the tunnel', async () => {
    const io = recordingIo()
    const configPath = join(scratch, 'fetch-unwritable-pcap.conf')
    writeFileSync(
      configPath,
      `[Interface]\nPrivateKey = ${formatKey(generateKeyPair().privateKey)}\nAddress = 10.79.0.6/32\n\n[Peer]\nPublicKey = ${wg.publicKey}\nAllowedIPs = 10.79.0.0/24\nEndpoint = ${ns.nsAddress}:${WG_PORT}\n`,
    )
    const code = await main(['fetch', '--config', configPath, '--pcap', join(scratch, 'no', 'such', 'dir.pcap'), `http://${LINUX}:${HTTP_PORT}/hello.txt`], io)
    expect(code).toBe(1)
    expect(io.err).toMatch(/burrow fetch: cannot write the packet capture .*no\/such\/dir\.pcap/)
  })
})
