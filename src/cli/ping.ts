// `burrow ping`: ICMP/ICMPv6 echo through a WireGuard tunnel described by a wg-quick file.
import { randomBytes } from '../crypto/index.ts'
import { PcapFile } from '../node/pcap-file.ts'
import { openUdpTunnel, type UdpTunnel } from '../node/udp-tunnel.ts'
import { addressEquals, formatAddress, type IpAddress, parseAddress } from '../wire/address.ts'
import { WireError } from '../wire/errors.ts'
import { buildEcho, parseEcho } from '../wire/icmp.ts'
import { buildIp, parseIp, PROTO_ICMP, PROTO_ICMPV6 } from '../wire/ip.ts'
import { numberFlag, parseArgs, parseCommandArgs, UsageError } from './args.ts'
import { type Command, EXIT_USAGE } from './io.ts'
import { readWgQuickFile } from './wg-quick-file.ts'

const USAGE = 'usage: burrow ping --config FILE [--count N] [--interval S] [--timeout S] [--pcap FILE] ADDRESS\n'
/** Echo payload size, as ping(8) sends by default. */
const DATA_LENGTH = 56

export function buildEchoRequest(src: IpAddress, dst: IpAddress, id: number, seq: number): Uint8Array {
  const version = src.length === 4 ? 4 : 6
  const data = new Uint8Array(DATA_LENGTH)
  for (let i = 0; i < data.length; i++) data[i] = i
  const payload = buildEcho({ kind: 'request', id, seq, data }, version, src, dst)
  return buildIp({ src, dst, protocol: version === 4 ? PROTO_ICMP : PROTO_ICMPV6, payload })
}

export interface EchoReplyInfo {
  seq: number
  ttl: number
  /** ICMP message length, what ping(8) reports as "bytes". */
  bytes: number
}

/** The reply's sequence number when `packet` is an echo reply from `target` to our echo `id`; else undefined. */
export function matchEchoReply(packet: Uint8Array, target: IpAddress, id: number): EchoReplyInfo | undefined {
  try {
    const ip = parseIp(packet)
    if (ip.protocol !== (ip.version === 4 ? PROTO_ICMP : PROTO_ICMPV6) || !addressEquals(ip.src, target)) return undefined
    const echo = parseEcho(ip.payload, ip.version, ip.src, ip.dst)
    if (echo?.kind !== 'reply' || echo.id !== id) return undefined
    return { seq: echo.seq, ttl: ip.ttl, bytes: ip.payload.length }
  } catch (error) {
    if (error instanceof WireError) return undefined
    throw error
  }
}

export function formatSummary(target: string, transmitted: number, rtts: readonly number[]): string {
  const received = rtts.length
  const loss = transmitted === 0 ? 0 : Math.round(((transmitted - received) / transmitted) * 100)
  let text = `--- ${target} ping statistics ---\n${transmitted} packets transmitted, ${received} received, ${loss}% packet loss\n`
  if (received > 0) {
    const min = Math.min(...rtts)
    const max = Math.max(...rtts)
    const avg = rtts.reduce((a, b) => a + b, 0) / received
    text += `rtt min/avg/max = ${min.toFixed(3)}/${avg.toFixed(3)}/${max.toFixed(3)} ms\n`
  }
  return text
}

interface PingOptions {
  configPath: string
  target: IpAddress
  count: number
  intervalMs: number
  timeoutMs: number
  pcapPath: string | undefined
}

function parsePingArgs(args: string[]): PingOptions {
  const parsed = parseArgs(args, ['config', 'count', 'interval', 'timeout', 'pcap'])
  const configPath = parsed.flags.get('config')
  if (configPath === undefined) throw new UsageError('--config FILE is required')
  if (parsed.positionals.length !== 1) throw new UsageError('give exactly one ADDRESS to ping')
  let target: IpAddress
  try {
    target = parseAddress(parsed.positionals[0]!)
  } catch {
    throw new UsageError(`${JSON.stringify(parsed.positionals[0])} is not an IPv4 or IPv6 address`)
  }
  return {
    configPath,
    target,
    count: numberFlag(parsed, 'count', 4, 1, 1_000_000, true),
    intervalMs: numberFlag(parsed, 'interval', 1, 0.01, 3600, false) * 1000,
    timeoutMs: numberFlag(parsed, 'timeout', 5, 0, 3600, false) * 1000,
    pcapPath: parsed.flags.get('pcap'),
  }
}

/** Why packets to `target` cannot leave (no peer's AllowedIPs hold it, or that peer has no endpoint), or undefined. */
function whyUnreachable(tunnel: UdpTunnel, target: IpAddress): string | undefined {
  if (tunnel.overlay.stack.addresses.some((local) => addressEquals(local, target))) return undefined
  const peer = tunnel.core.routeFor(target)
  const targetText = formatAddress(target)
  if (peer === undefined) return `no [Peer] has AllowedIPs containing ${targetText}`
  if (!tunnel.core.peerRoute(peer)) return `the [Peer] for ${targetText} has no Endpoint and has not been heard from`
  return undefined
}

export const ping: Command = async (args, io) => {
  const options = parseCommandArgs('ping', io, () => parsePingArgs(args), USAGE)
  if (!options) return EXIT_USAGE
  const config = await readWgQuickFile('ping', options.configPath, io)
  if (!config) return EXIT_USAGE
  const { target } = options
  const targetText = formatAddress(target)
  const source = config.interface.addresses.find((a) => a.address.length === target.length)
  if (!source) {
    io.stderr(`burrow ping: ${options.configPath} has no IPv${target.length === 4 ? 4 : 6} Address to ping ${targetText} from\n`)
    return EXIT_USAGE
  }

  const idBytes = randomBytes(2)
  const id = (idBytes[0]! << 8) | idBytes[1]!
  const sentAt = new Map<number, number>()
  const rtts: number[] = []
  // Settles when every request has its reply or the user pressed ^C; all waiting below ends early then.
  let finish: () => void = () => {}
  const finished = new Promise<void>((resolve) => (finish = resolve))
  let interrupted = false
  const interrupt = () => {
    interrupted = true
    finish()
  }
  const wait = async (ms: number) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
    clearTimeout(timer)
  }

  const onPacket = (packet: Uint8Array) => {
    const reply = matchEchoReply(packet, target, id)
    const sent = reply && sentAt.get(reply.seq)
    if (!reply || sent === undefined) return
    sentAt.delete(reply.seq)
    const rtt = performance.now() - sent
    rtts.push(rtt)
    io.stdout(`${reply.bytes} bytes from ${targetText}: icmp_seq=${reply.seq} ttl=${reply.ttl} time=${rtt.toFixed(2)} ms\n`)
    if (rtts.length === options.count) finish()
  }

  let tunnel: UdpTunnel
  let pcap: PcapFile | undefined
  try {
    pcap = options.pcapPath === undefined ? undefined : PcapFile.open(options.pcapPath)
    // The stack answers echo requests itself; our own probes' replies are read off the wire as ping(8) does.
    tunnel = await openUdpTunnel(config, {
      capture: (packet, direction) => {
        pcap?.record(packet)
        if (direction === 'in') onPacket(packet)
      },
    })
  } catch (error) {
    pcap?.close()
    io.stderr(`burrow ping: ${(error as Error).message}\n`)
    return 1
  }
  let transmitted = 0
  process.once('SIGINT', interrupt)
  try {
    const unreachable = whyUnreachable(tunnel, target)
    if (unreachable) {
      io.stderr(`burrow ping: ${unreachable}\n`)
      return 1
    }
    io.stdout(`PING ${targetText} from ${formatAddress(source.address)} through WireGuard (UDP port ${tunnel.underlay.port})\n`)
    for (let seq = 1; seq <= options.count && !interrupted; seq++) {
      sentAt.set(seq, performance.now())
      tunnel.overlay.inject([buildEchoRequest(source.address, target, id, seq)])
      transmitted++
      if (seq < options.count) await wait(options.intervalMs)
    }
    if (!interrupted) await wait(options.timeoutMs)
  } finally {
    process.off('SIGINT', interrupt)
    await tunnel.close()
    pcap?.close()
  }
  io.stdout('\n' + formatSummary(targetText, transmitted, rtts))
  return rtts.length > 0 ? 0 : 1
}
