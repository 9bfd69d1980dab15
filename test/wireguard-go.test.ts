// Interop: Burrow's tunnel (over UDP, from Node) against wireguard-go + the Linux kernel's IP stack in a namespace.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildEchoRequest, matchEchoReply } from '../src/cli/ping.ts'
import { formatKey, generateKeyPair, hash, type KeyPair, mac, parseKey, randomBytes } from '../src/crypto/index.ts'
import { openUdpTunnel, type UdpTunnel } from '../src/node/udp-tunnel.ts'
import type { PeerId } from '../src/tunnel/index.ts'
import { type UdpEndpoint, UdpUnderlay } from '../src/underlay/udp/udp-underlay.ts'
import { formatAddress, type IpAddress, parseAddress, parsePrefix } from '../src/wire/address.ts'
import { parseEcho } from '../src/wire/icmp.ts'
import { parseIp, PROTO_ICMP, PROTO_ICMPV6 } from '../src/wire/ip.ts'
import { NetworkNamespace, runCommand, type WireguardGo } from './helpers/netns.ts'

const WG_PORT = 51820
const KERNEL4 = parseAddress('10.77.0.1')
const KERNEL6 = parseAddress('fd77::1')
const REPLY_WAIT_MS = 10_000

let ns: NetworkNamespace
let wg: WireguardGo
const scratch = mkdtempSync(join(tmpdir(), 'burrow-wg-interop-'))
const open: Array<{ close(): Promise<void> }> = []

beforeAll(async () => {
  const ping = await runCommand('sh', ['-c', 'command -v ping'])
  if (ping.code !== 0) throw new Error('these tests need ping(8) inside the namespace: apt-get install iputils-ping')
  ns = await NetworkNamespace.create()
  wg = await ns.startWireguardGo({ listenPort: WG_PORT, addresses: ['10.77.0.1/24', 'fd77::1/64'] })
})

afterAll(async () => {
  for (const thing of open.splice(0)) await thing.close()
  await ns?.cleanup()
})

interface BurrowNode {
  keys: KeyPair
  tunnel: UdpTunnel
  /** The one peer: the wireguard-go instance. */
  peer: PeerId
  underlay: UdpUnderlay
  v4: IpAddress
  v6: IpAddress
  /** IP packets the dataplane delivered to Burrow's stack. */
  received: Uint8Array[]
  /** IP packets Burrow's side sent into the tunnel (its stack's answers and our probes). */
  sent: Uint8Array[]
  waiters: Array<() => void>
}

/** Echo replies among `packets` (ICMP or ICMPv6). */
function echoReplies(packets: Uint8Array[]): number {
  return packets.filter((packet) => {
    const ip = parseIp(packet)
    if (ip.protocol !== (ip.version === 4 ? PROTO_ICMP : PROTO_ICMPV6)) return false
    return parseEcho(ip.payload, ip.version, ip.src, ip.dst)?.kind === 'reply'
  }).length
}

/** Opens a Burrow node from a wg-quick style config on `underlay`, recording the packets its stack receives and sends. */
async function openBurrow(
  keys: KeyPair,
  addresses: Array<{ address: IpAddress; bits: number }>,
  peer: { publicKey: Uint8Array; allowedIps: string[]; presharedKey?: Uint8Array; endpoint?: UdpEndpoint; persistentKeepalive?: number },
  underlay: UdpUnderlay,
  options: { handshakesPerSecondUnderLoad?: number } = {},
): Promise<Pick<BurrowNode, 'tunnel' | 'peer' | 'received' | 'sent' | 'waiters'>> {
  const recorded = { received: [] as Uint8Array[], sent: [] as Uint8Array[], waiters: [] as Array<() => void> }
  const tunnel = await openUdpTunnel(
    {
      interface: { privateKey: keys.privateKey, addresses },
      peers: [
        {
          publicKey: peer.publicKey,
          allowedIps: peer.allowedIps.map(parsePrefix),
          ...(peer.presharedKey && { presharedKey: peer.presharedKey }),
          ...(peer.endpoint && { endpoint: { host: peer.endpoint.address, port: peer.endpoint.port } }),
          ...(peer.persistentKeepalive !== undefined && { persistentKeepalive: peer.persistentKeepalive }),
        },
      ],
    },
    {
      underlay,
      ...options,
      capture: (packet, direction) => {
        if (direction === 'out') return void recorded.sent.push(packet.slice())
        recorded.received.push(packet.slice())
        for (const wake of recorded.waiters.splice(0)) wake()
      },
    },
  )
  open.push(tunnel)
  return { tunnel, peer: tunnel.peers[0]!, ...recorded }
}

/** Starts a Burrow node with overlay addresses 10.77.0.<host> and fd77::<host>, whose one peer is the wireguard-go instance. */
async function startBurrow(
  host: number,
  options: {
    presharedKey?: Uint8Array
    wgEndpoint?: UdpEndpoint
    persistentKeepalive?: number
    observe?: (datagram: Uint8Array) => void
    handshakesPerSecondUnderLoad?: number
    onSend?: (datagram: Uint8Array) => void
  } = {},
): Promise<BurrowNode> {
  const keys = generateKeyPair()
  const underlay = await UdpUnderlay.open()
  const { observe, onSend } = options
  if (observe) {
    // Lets a test see every datagram before the dataplane handles it.
    const start = underlay.start.bind(underlay)
    underlay.start = (deliver) => start((from, datagrams) => (datagrams.forEach(observe), deliver(from, datagrams)))
  }
  if (onSend) {
    const send = underlay.send.bind(underlay)
    underlay.send = (to, datagrams) => (datagrams.forEach(onSend), send(to, datagrams))
  }
  const v4 = parseAddress(`10.77.0.${host}`)
  const v6 = parseAddress(`fd77::${host}`)
  const opened = await openBurrow(
    keys,
    [
      { address: v4, bits: 24 },
      { address: v6, bits: 64 },
    ],
    {
      publicKey: parseKey(wg.publicKey),
      allowedIps: ['10.77.0.0/24', 'fd77::/64'],
      ...(options.presharedKey && { presharedKey: options.presharedKey }),
      ...(options.wgEndpoint && { endpoint: options.wgEndpoint }),
      ...(options.persistentKeepalive !== undefined && { persistentKeepalive: options.persistentKeepalive }),
    },
    underlay,
    options.handshakesPerSecondUnderLoad !== undefined ? { handshakesPerSecondUnderLoad: options.handshakesPerSecondUnderLoad } : {},
  )
  return { keys, underlay, v4, v6, ...opened }
}

/** Sends ONE echo request (no retries: the first packet must survive the handshake it triggers) and waits for its reply. */
async function echoThroughTunnel(node: BurrowNode, target: IpAddress, seq: number, waitMs = REPLY_WAIT_MS): Promise<boolean> {
  const source = target.length === 4 ? node.v4 : node.v6
  const id = 0x4200 + seq
  const sentBefore = node.tunnel.core.stats(node.peer).txPackets
  node.tunnel.overlay.inject([buildEchoRequest(source, target, id, seq)])
  // Routed to wireguard-go with an endpoint to send to (else it would be counted as a drop, not sent).
  await new Promise((resolve) => setImmediate(resolve))
  expect(node.tunnel.core.stats(node.peer).txPackets).toBe(sentBefore + 1)
  const deadline = Date.now() + waitMs
  for (;;) {
    if (node.received.some((p) => matchEchoReply(p, target, id)?.seq === seq)) return true
    const left = deadline - Date.now()
    if (left <= 0) return false
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left)
      node.waiters.push(() => (clearTimeout(timer), resolve()))
    })
  }
}

const wgEndpoint = (): UdpEndpoint => ({ address: ns.nsAddress, port: WG_PORT })

async function addBurrowToWireguardGo(node: BurrowNode, extra: { presharedKey?: Uint8Array; endpoint?: string } = {}): Promise<void> {
  await wg.setPeer({
    publicKey: formatKey(node.keys.publicKey),
    allowedIps: [`${formatAddress(node.v4)}/32`, `${formatAddress(node.v6)}/128`],
    ...(extra.presharedKey && { presharedKey: formatKey(extra.presharedKey) }),
    ...(extra.endpoint && { endpoint: extra.endpoint }),
  })
}

describe('Burrow ⇄ wireguard-go', () => {
  it('Burrow initiates and pings the kernel through the tunnel over IPv4 and IPv6 overlay addresses', async () => {
    const node = await startBurrow(2, { wgEndpoint: wgEndpoint() })
    await addBurrowToWireguardGo(node)
    expect(await echoThroughTunnel(node, KERNEL4, 1), `no IPv4 reply; wireguard-go said:\n${wg.output}`).toBe(true)
    expect(await echoThroughTunnel(node, KERNEL6, 2), 'no IPv6 reply').toBe(true)
    const stats = node.tunnel.core.stats(node.peer)
    expect(stats.lastHandshake).toBeDefined()
    expect(stats.rxPackets).toBeGreaterThanOrEqual(2)
  })

  it('works over an IPv6 underlay too', async () => {
    const node = await startBurrow(6, { wgEndpoint: { address: ns.nsAddress6, port: WG_PORT } })
    await addBurrowToWireguardGo(node)
    expect(await echoThroughTunnel(node, KERNEL4, 1)).toBe(true)
    expect(node.tunnel.core.peerRoute(node.peer)?.endpoint).toEqual({ address: ns.nsAddress6, port: WG_PORT })
  })

  it('wireguard-go initiates: the kernel pings Burrow, which learns the endpoint and answers', async () => {
    // No endpoint for wireguard-go on the Burrow side: Burrow must learn it from the authenticated initiation.
    const node = await startBurrow(3)
    await addBurrowToWireguardGo(node, { endpoint: `${ns.hostAddress}:${node.underlay.port}` })
    const v4 = await ns.tryRun('ping', ['-c', '1', '-W', '5', '10.77.0.3'], { timeoutMs: 15_000 })
    expect(v4.code, v4.stdout + v4.stderr).toBe(0)
    expect(v4.stdout).toMatch(/1 received/)
    const v6 = await ns.tryRun('ping', ['-6', '-c', '1', '-W', '5', 'fd77::3'], { timeoutMs: 15_000 })
    expect(v6.code, v6.stdout + v6.stderr).toBe(0)
    expect(echoReplies(node.sent)).toBe(2)
    expect(node.tunnel.core.peerRoute(node.peer)?.endpoint).toEqual(wgEndpoint())
  })

  it('drops packets whose inner source is outside the AllowedIPs Burrow has for wireguard-go', async () => {
    const node = await startBurrow(12, { wgEndpoint: wgEndpoint() })
    await addBurrowToWireguardGo(node)
    expect(await echoThroughTunnel(node, KERNEL4, 1)).toBe(true)
    // Routed into the tunnel (destination in 10.77.0.0/24) but sourced from the veth address, which Burrow does not allow.
    const spoofed = await ns.tryRun('ping', ['-c', '1', '-W', '1', '-I', ns.nsAddress, formatAddress(node.v4)], { timeoutMs: 10_000 })
    expect(spoofed.code).not.toBe(0)
    expect(node.tunnel.core.stats(node.peer).drops['source-not-allowed']).toBe(1)
    expect(echoReplies(node.sent)).toBe(0)
  })

  it('under load, Burrow answers wireguard-go with a cookie reply and accepts the retried initiation carrying MAC2', async () => {
    let cookieReplies = 0
    // A budget of 0 handshakes per second: every handshake message finds Burrow under load.
    const node = await startBurrow(13, {
      handshakesPerSecondUnderLoad: 0,
      onSend: (datagram) => void (datagram[0] === 3 && datagram.length === 64 && cookieReplies++),
    })
    await addBurrowToWireguardGo(node, { endpoint: `${ns.hostAddress}:${node.underlay.port}` })
    // wireguard-go retries the initiation after REKEY_TIMEOUT (5 s), now with MAC2 keyed by our cookie.
    const result = await ns.tryRun('ping', ['-c', '1', '-W', '12', formatAddress(node.v4)], { timeoutMs: 20_000 })
    expect(result.code, result.stdout + wg.output.slice(-2000)).toBe(0)
    expect(cookieReplies).toBe(1)
    expect(echoReplies(node.sent)).toBe(1)
  })

  it('when wireguard-go is under load, Burrow takes its cookie reply and gets through with MAC2', async () => {
    // wireguard-go counts itself under load while ≥ 512 handshake messages are queued. Initiations with a valid MAC1 but
    // garbage inside each cost it an X25519 before being dropped, so a flood of one such packet fills the queue.
    const flooder = await UdpUnderlay.open({ ipv6: false })
    open.push(flooder)
    const junk = randomBytes(148)
    junk.set([1, 0, 0, 0])
    junk.set(generateKeyPair().publicKey, 8)
    junk.set(mac(hash(new TextEncoder().encode('mac1----'), parseKey(wg.publicKey)), junk.subarray(0, 116)), 116)
    junk.fill(0, 132)
    let flooding = true
    const flood = () => {
      if (!flooding) return
      flooder.send(wgEndpoint(), new Array<Uint8Array>(200).fill(junk))
      setImmediate(flood)
    }
    try {
      flood()
      await new Promise((resolve) => setTimeout(resolve, 300))
      let cookieReplies = 0
      const node = await startBurrow(14, {
        wgEndpoint: wgEndpoint(),
        observe: (datagram) => void (datagram[0] === 3 && datagram.length === 64 && cookieReplies++),
      })
      await addBurrowToWireguardGo(node)
      // The first initiation gets a cookie reply; the retry after REKEY_TIMEOUT carries MAC2 and is answered even though
      // the flood goes on (a retry without a valid MAC2 would only earn another cookie reply).
      expect(await echoThroughTunnel(node, KERNEL4, 1, 20_000)).toBe(true)
      expect(cookieReplies).toBeGreaterThanOrEqual(1)
    } finally {
      flooding = false
    }
  })

  it('works with a pre-shared key, and not with a wrong one', async () => {
    const psk = randomBytes(32)
    const node = await startBurrow(4, { presharedKey: psk, wgEndpoint: wgEndpoint() })
    await addBurrowToWireguardGo(node, { presharedKey: psk })
    expect(await echoThroughTunnel(node, KERNEL4, 1)).toBe(true)
    expect(await echoThroughTunnel(node, KERNEL6, 2)).toBe(true)

    const wrong = await startBurrow(5, { presharedKey: randomBytes(32), wgEndpoint: wgEndpoint() })
    await addBurrowToWireguardGo(wrong, { presharedKey: psk })
    expect(await echoThroughTunnel(wrong, KERNEL4, 1, 3000)).toBe(false)
    expect(wrong.tunnel.core.stats(wrong.peer).lastHandshake).toBeUndefined()
    const handshakes = await wg.latestHandshakes()
    expect(handshakes.get(formatKey(wrong.keys.publicKey))).toBe(0)
  })

  it('wg show latest-handshakes confirms the handshakes', async () => {
    const node = await startBurrow(7, { wgEndpoint: wgEndpoint() })
    await addBurrowToWireguardGo(node)
    const before = Math.floor(Date.now() / 1000)
    expect(await echoThroughTunnel(node, KERNEL4, 1)).toBe(true)
    const handshakes = await wg.latestHandshakes()
    const seconds = handshakes.get(formatKey(node.keys.publicKey))
    expect(seconds).toBeGreaterThanOrEqual(before - 1)
    expect(seconds).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 1)
  })

  it('carries full-size packets and bursts both ways', async () => {
    const node = await startBurrow(10, { wgEndpoint: wgEndpoint() })
    await addBurrowToWireguardGo(node)
    expect(await echoThroughTunnel(node, KERNEL4, 1)).toBe(true)
    // 1392 bytes of ICMP data + 8 + 20 = 1420, wireguard-go's MTU; -i 0.002 needs root, which these tests have.
    for (const [family, target] of [
      ['-4', formatAddress(node.v4)],
      ['-6', formatAddress(node.v6)],
    ] as const) {
      const size = family === '-4' ? '1392' : '1372'
      const burst = await ns.tryRun('ping', [family, '-c', '50', '-i', '0.002', '-s', size, '-W', '5', target], { timeoutMs: 30_000 })
      expect(burst.code, burst.stdout + burst.stderr).toBe(0)
      expect(burst.stdout).toMatch(/50 packets transmitted, 50 received/)
    }
    expect(node.tunnel.core.stats(node.peer).drops).toEqual({})
  })

  it('a persistent keepalive makes Burrow handshake and keep announcing itself without any traffic', async () => {
    const node = await startBurrow(11, { wgEndpoint: wgEndpoint(), persistentKeepalive: 1 })
    await addBurrowToWireguardGo(node)
    const key = formatKey(node.keys.publicKey)
    const deadline = Date.now() + REPLY_WAIT_MS
    while (!((await wg.latestHandshakes()).get(key)! > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect((await wg.latestHandshakes()).get(key)).toBeGreaterThan(0)
    const first = (await wg.transfer()).get(key)!.rx
    await new Promise((r) => setTimeout(r, 2500))
    // Each keepalive is an empty transport message: 32 bytes.
    expect((await wg.transfer()).get(key)!.rx - first).toBeGreaterThanOrEqual(32)
    expect(node.received).toEqual([])
    // The driver sleeps until the tunnel's next deadline; a 1 s keepalive must not make it spin.
    expect(node.tunnel.driver.counters.timerWakeups).toBeLessThan(30)
  })
})

function runCli(args: string[], onStdout?: (soFar: string, child: ChildProcess) => void): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'bin', 'burrow.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      onStdout?.(stdout, child)
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }))
  })
}

describe('wireguard-go restarts', () => {
  it('a restarted wireguard-go (same key, fresh state) re-handshakes with a Burrow that still holds the old session', async () => {
    const restartNs = await NetworkNamespace.create()
    open.push({ close: () => restartNs.cleanup() })
    const first = await restartNs.startWireguardGo({ listenPort: WG_PORT, addresses: ['10.78.0.1/24'] })
    const keys = generateKeyPair()
    const underlay = await UdpUnderlay.open()
    const burrow = await openBurrow(
      keys,
      [{ address: parseAddress('10.78.0.2'), bits: 24 }],
      { publicKey: parseKey(first.publicKey), allowedIps: ['10.78.0.0/24'], endpoint: { address: restartNs.nsAddress, port: WG_PORT } },
      underlay,
    )
    const peer = { publicKey: formatKey(keys.publicKey), allowedIps: ['10.78.0.2/32'], endpoint: `${restartNs.hostAddress}:${underlay.port}` }
    await first.setPeer(peer)
    const before = await restartNs.tryRun('ping', ['-c', '1', '-W', '5', '10.78.0.2'], { timeoutMs: 15_000 })
    expect(before.code, before.stdout).toBe(0)

    await first.stop()
    const second = await restartNs.startWireguardGo({ privateKey: first.privateKey, listenPort: WG_PORT, addresses: ['10.78.0.1/24'], peers: [peer] })
    const after = await restartNs.tryRun('ping', ['-c', '1', '-W', '5', '10.78.0.2'], { timeoutMs: 15_000 })
    expect(after.code, after.stdout + second.output).toBe(0)
    expect(echoReplies(burrow.sent)).toBe(2)
  })
})

describe('burrow ping CLI against wireguard-go', () => {
  const config = join(scratch, 'cli.conf')

  beforeAll(async () => {
    const keys = generateKeyPair()
    const psk = randomBytes(32)
    await wg.setPeer({ publicKey: formatKey(keys.publicKey), presharedKey: formatKey(psk), allowedIps: ['10.77.0.8/32', 'fd77::8/128'] })
    writeFileSync(
      config,
      `[Interface]\nPrivateKey = ${formatKey(keys.privateKey)}\nAddress = 10.77.0.8/24, fd77::8/64\n\n` +
        `[Peer]\nPublicKey = ${wg.publicKey}\nPresharedKey = ${formatKey(psk)}\nAllowedIPs = 10.77.0.0/24, fd77::/64\nEndpoint = ${ns.nsAddress}:${WG_PORT}\n`,
    )
  })

  it('gets replies over IPv4 and IPv6 and exits 0', async () => {
    const v4 = await runCli(['ping', '--config', config, '--count', '3', '--interval', '0.2', '10.77.0.1'])
    expect(v4.code, v4.stderr).toBe(0)
    expect(v4.stdout).toMatch(/64 bytes from 10\.77\.0\.1: icmp_seq=1 ttl=64 time=[\d.]+ ms/)
    expect(v4.stdout).toMatch(/3 packets transmitted, 3 received, 0% packet loss/)
    const v6 = await runCli(['ping', '--config', config, '--count', '2', '--interval', '0.2', 'fd77::1'])
    expect(v6.code, v6.stderr).toBe(0)
    expect(v6.stdout).toMatch(/64 bytes from fd77::1: icmp_seq=1 ttl=64/)
  })

  it('stops at ^C with the summary so far', async () => {
    let interrupted = false
    const result = await runCli(['ping', '--config', config, '--count', '1000', '--interval', '0.2', '10.77.0.1'], (soFar, child) => {
      if (!interrupted && /icmp_seq=2 /.test(soFar)) {
        interrupted = true
        child.kill('SIGINT')
      }
    })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/--- 10\.77\.0\.1 ping statistics ---\n\d+ packets transmitted, \d+ received/)
    expect(Number(/(\d+) packets transmitted/.exec(result.stdout)![1])).toBeLessThan(10)
  })

  it('exits 1 when no reply comes back', async () => {
    const keys = generateKeyPair() // wireguard-go does not know this key, so the handshake never completes
    const config = join(scratch, 'unknown.conf')
    writeFileSync(
      config,
      `[Interface]\nPrivateKey = ${formatKey(keys.privateKey)}\nAddress = 10.77.0.9/24\n[Peer]\nPublicKey = ${wg.publicKey}\nAllowedIPs = 10.77.0.0/24\nEndpoint = ${ns.nsAddress}:${WG_PORT}\n`,
    )
    const result = await runCli(['ping', '--config', config, '--count', '1', '--timeout', '1', '10.77.0.1'])
    expect(result.code).toBe(1)
    expect(result.stdout).toMatch(/1 packets transmitted, 0 received, 100% packet loss/)
  })

  it('exits 2 with a line-numbered message for a broken config', async () => {
    const config = join(scratch, 'broken.conf')
    writeFileSync(config, `[Interface]\nPrivateKey = ${formatKey(generateKeyPair().privateKey)}\n\n[Peer]\nPublicKey = nope\n`)
    const result = await runCli(['ping', '--config', config, '10.77.0.1'])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/line 5: PublicKey is not a valid 32-byte key/)
  })
})
