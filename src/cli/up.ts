// `burrow up --control URL [--authkey KEY] [--serve PORT=HOST:PORT]… [--serve-udp …]… [--allow …]…`:
// joins the network as a Node peer and exposes local services on its overlay addresses.
// Logs are JSON lines on stdout (who connected to what, when, and how it ended); the live state
// is in <state dir>/status.json for `burrow status`. SIGINT/SIGTERM close the bridged
// connections with FINs and leave; the identity stays registered unless --ephemeral.
import { chmod, mkdir } from 'node:fs/promises'
import { Burrow, BurrowError, BurrowPathEvent, defaultStateDir, nodeWebRtcSupport, type BurrowPeer } from '../node.ts'
import { DEFAULT_OVERLAY_MTU, type NodeState, type PacketTap } from '../burrow.ts'
import { summarizePacket } from '../wire/summary.ts'
import { jsonLinesLogger, type Logger } from '../server/log.ts'
import { TcpService, type ServiceEvent } from '../node/serve.ts'
import { UdpForwarder, type UdpForwardEvent } from '../node/udp-forward.ts'
import { PcapFile } from '../node/pcap-file.ts'
import { removeStatusFile, writeStatusFile, type NodeStatus } from '../node/status-file.ts'
import { parseCommandArgs } from './args.ts'
import { EXIT_USAGE, type CliIo, type Command } from './io.ts'
import { parseUpArgs, type UpConfig } from './up-args.ts'

/** Errors that retrying cannot fix. */
const FATAL_CODES = new Set(['unauthorized', 'forbidden', 'bad-options', 'key-store'])
const STATUS_INTERVAL_MS = 1000
/** Given to Burrow explicitly so the UDP forwarder knows the largest reply it can send back. */
const OVERLAY_MTU = DEFAULT_OVERLAY_MTU

export const up: Command = async (args, io) => {
  const config = parseCommandArgs('up', io, () => parseUpArgs(args))
  if (!config) return EXIT_USAGE
  const stop = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  return runUp(config, io, stop)
}

/** Runs until `stop` settles (with the reason to log); returns the exit status. */
export async function runUp(config: UpConfig, io: CliIo, stop: Promise<string>): Promise<number> {
  const log = jsonLinesLogger(io.stdout, config.logLevel)
  const stateDir = config.stateDir ?? defaultStateDir()
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 })
    await chmod(stateDir, 0o700)
  } catch (error) {
    io.stderr(`burrow up: cannot use the state directory ${stateDir}: ${(error as Error).message}\n`)
    return 1
  }
  let pcap: PcapFile | undefined
  if (config.pcapPath !== undefined) {
    try {
      pcap = PcapFile.open(config.pcapPath)
    } catch (error) {
      io.stderr(`burrow up: ${(error as Error).message}\n`)
      return 1
    }
  }
  try {
    return await runJoined(config, io, stop, log, stateDir, pcap)
  } finally {
    pcap?.close()
  }
}

/** What sees each overlay packet: the --pcap file and, at --log-level debug, a one-line summary in the log. */
export function tapFor(config: UpConfig, pcap: PcapFile | undefined, log: Logger): PacketTap | undefined {
  const debug = config.logLevel === 'debug'
  if (!pcap && !debug) return undefined
  return (packet, direction) => {
    pcap?.record(packet)
    if (debug) log('debug', 'packet', { direction, summary: summarizePacket(packet) })
  }
}

/** Joins (retrying) and serves until `stop`; the capture file, if any, is the caller's to close. */
async function runJoined(config: UpConfig, io: CliIo, stop: Promise<string>, log: Logger, stateDir: string, pcap: PcapFile | undefined): Promise<number> {
  let stopReason: string | undefined
  void stop.then((reason) => (stopReason = reason))

  const node = await startWithRetry(config, stateDir, log, stop, pcap)
  if (node instanceof BurrowError) {
    io.stderr(`burrow up: ${node.message}\n`)
    return 1
  }
  if (node === undefined) {
    log('info', 'stopped before joining', { signal: stopReason })
    return 0
  }
  log('info', 'up', { hostname: node.hostname, addresses: node.addresses, nodeKey: node.nodeKey, relayURL: node.relayURL, stateDir, ephemeral: config.ephemeral })
  const webrtc = nodeWebRtcSupport()
  if (config.noDirect) log('info', 'direct paths off (--no-direct): every peer stays on its relay')
  else {
    log('info', 'direct paths: plain UDP to Node peers (STUN, CallMeMaybe, disco pings); WireGuard moves onto it when a pong answers')
    if (webrtc.available) log('info', 'direct paths: WebRTC (@roamhq/wrtc) available; peers move off the relay when a direct path answers')
    else log('warn', 'WebRTC direct paths off: browser tabs stay on the relay', { reason: webrtc.reason })
  }
  node.addEventListener('path', (event) => {
    const { nodeKey, path } = event as BurrowPathEvent
    const peer = node.peers().find((p) => p.nodeKey === nodeKey)
    log('info', 'path', { peer: peer?.hostname ?? nodeKey, path })
  })

  node.addEventListener('state', () => log(node.state === 'online' || node.state === 'closed' ? 'info' : 'warn', 'state', { state: node.state as NodeState }))
  node.addEventListener('error', (event) => log('warn', 'node error', { error: (event as Event & { message: string }).message }))
  let known = new Map<string, BurrowPeer>()
  const logPeers = (): void => {
    const now = new Map(node.peers().map((p) => [p.nodeKey, p]))
    for (const [key, peer] of now) {
      const before = known.get(key)
      if (!before) log('info', 'peer joined', { peer: peer.hostname, addresses: peer.addresses, online: peer.online })
      else if (before.online !== peer.online) log('info', peer.online ? 'peer online' : 'peer offline', { peer: peer.hostname })
    }
    for (const [key, peer] of known) if (!now.has(key)) log('info', 'peer left', { peer: peer.hostname })
    known = now
  }
  node.addEventListener('peers', logPeers)
  logPeers()

  const peers = (): BurrowPeer[] => node.peers()
  const peersChanged = (): Promise<void> => new Promise((resolve) => node.addEventListener('peers', () => resolve(), { once: true }))
  const allow = config.allow.length > 0 ? config.allow : 'every node'
  const logServing = (proto: 'tcp' | 'udp', spec: { port: number; target: { host: string; port: number } }): void =>
    log('info', 'serving', { proto, port: spec.port, to: `${spec.target.host}:${spec.target.port}`, allow })
  const tcp = config.serveTcp.map((spec) => {
    const service = new TcpService(node.listen({ port: spec.port }), {
      port: spec.port,
      target: spec.target,
      policy: config.policy,
      peers,
      peersChanged,
      onEvent: (event) => logServiceEvent(log, event),
    })
    logServing('tcp', spec)
    return { spec, service }
  })
  const udp = config.serveUdp.map((spec) => {
    const forwarder = new UdpForwarder(node.udp({ localPort: spec.port }), {
      port: spec.port,
      target: spec.target,
      policy: config.policy,
      peers,
      idleMs: config.udpIdleSeconds * 1000,
      mtu: OVERLAY_MTU,
      onEvent: (event) => logUdpEvent(log, event),
    })
    logServing('udp', spec)
    return { spec, forwarder }
  })

  try {
    await Promise.all([...tcp.map(({ service }) => service.ready), ...udp.map(({ forwarder }) => forwarder.ready)])
  } catch (error) {
    io.stderr(`burrow up: cannot serve: ${(error as Error).message}\n`)
    await Promise.all([...tcp.map(({ service }) => service.close()), ...udp.map(({ forwarder }) => forwarder.close())])
    await node.close()
    return 1
  }

  const snapshot = (): NodeStatus => ({
    version: 1,
    pid: process.pid,
    updatedAt: Date.now(),
    self: {
      hostname: node.hostname,
      addresses: node.addresses,
      nodeKey: node.nodeKey,
      state: node.state,
      relayURL: node.relayURL,
      ...(node.homeRelay ? { homeRegion: { id: node.homeRelay.region, code: node.homeRelay.code, name: node.homeRelay.name } } : {}),
    },
    peers: node.peers().map((p) => ({
      hostname: p.hostname,
      addresses: p.addresses,
      online: p.online,
      path: p.path,
      candidateType: p.candidateType,
      rttMs: p.rttMs,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    })),
    services: [
      ...tcp.map(({ spec, service }) => ({ proto: 'tcp' as const, port: spec.port, target: `${spec.target.host}:${spec.target.port}`, active: service.active.size })),
      ...udp.map(({ spec, forwarder }) => ({ proto: 'udp' as const, port: spec.port, target: `${spec.target.host}:${spec.target.port}`, active: forwarder.sessionCount })),
    ],
  })
  let writing: Promise<void> = Promise.resolve()
  const writeStatus = (): void => {
    // One write at a time; a slow disk skips ticks rather than piling writes up.
    writing = writing.then(() => writeStatusFile(stateDir, snapshot()).catch((error: Error) => log('warn', 'cannot write the status file', { error: error.message })))
  }
  writeStatus()
  // The capture file is flushed on the same beat, so `tcpdump -r` on a quiet node is at most a second behind.
  const timer = setInterval(() => {
    writeStatus()
    pcap?.flush()
  }, STATUS_INTERVAL_MS)

  // A node whose identity was taken over elsewhere (or that failed for good) ends the process.
  const failed = new Promise<string>((resolve) => {
    node.addEventListener('state', () => {
      if (node.state === 'failed') resolve('failed')
    })
  })
  const reason = await Promise.race([stop, failed])
  log(reason === 'failed' ? 'error' : 'info', 'shutting down', { signal: reason, ephemeral: config.ephemeral })
  clearInterval(timer)
  await Promise.all([...tcp.map(({ service }) => service.close()), ...udp.map(({ forwarder }) => forwarder.close())])
  await node.close()
  await writing
  await removeStatusFile(stateDir).catch(() => {})
  log('info', 'stopped', config.ephemeral ? { identity: 'discarded' } : { identity: 'kept', stateDir })
  if (reason === 'failed') {
    io.stderr('burrow up: the node failed (see the log above); stopping\n')
    return 1
  }
  return 0
}

/**
 * Joins, retrying while the relay is unreachable (it may start after us, or be restarting).
 * Returns the node, a fatal error, or undefined when stopped first.
 */
async function startWithRetry(config: UpConfig, stateDir: string, log: Logger, stop: Promise<string>, pcap: PcapFile | undefined): Promise<Burrow | BurrowError | undefined> {
  const tap = tapFor(config, pcap, log)
  let delay = 500
  let stopped = false
  void stop.then(() => (stopped = true))
  for (;;) {
    try {
      const starting = Burrow.start({
        controlURL: config.controlURL,
        ...(config.authKey !== undefined ? { authKey: config.authKey } : {}),
        ...(config.hostname !== undefined ? { hostname: config.hostname } : {}),
        // Ephemeral: a fresh identity that is never written down. (The coordination service
        // removes the node when it disconnects if the auth key itself was made --ephemeral.)
        storage: config.ephemeral ? 'memory' : 'file',
        stateDir,
        mtu: OVERLAY_MTU,
        ...(config.noDirect ? { direct: false } : {}),
        ...(config.controlKey !== undefined ? { controlKey: config.controlKey } : {}),
        ...(config.derpOverHTTP ? { derpOverHTTP: true } : {}),
        ...(config.homeRegion !== undefined ? { homeRegion: config.homeRegion } : {}),
        ...(tap && { capture: tap }),
        // Plain-HTTP DERP for tailnets whose DERP servers have no TLS, switched on as tailscaled
        // does it (derp/derphttp/derphttp_client.go reads TS_DEBUG_USE_DERP_HTTP).
        ...(process.env.TS_DEBUG_USE_DERP_HTTP === '1' ? { derpOverHTTP: true } : {}),
        ...(config.logLevel === 'debug' ? { debug: (line: string) => log('debug', line) } : {}),
      })
      // A relay that swallows packets can keep a join pending for a while; a signal must not wait for it.
      const first = await Promise.race([starting, stop.then(() => undefined)])
      if (first === undefined) {
        void starting.then(
          (node) => node.close(),
          () => {},
        )
        return undefined
      }
      return first
    } catch (error) {
      const burrowError = error instanceof BurrowError ? error : new BurrowError('worker', (error as Error).message)
      if (FATAL_CODES.has(burrowError.code)) return burrowError
      log('warn', 'cannot join yet; retrying', { error: burrowError.message, code: burrowError.code, retryInMs: delay })
    }
    const timer = new Promise<'timer'>((resolve) => setTimeout(() => resolve('timer'), delay))
    await Promise.race([timer, stop])
    if (stopped) return undefined
    delay = Math.min(delay * 2, 10_000)
  }
}

function logServiceEvent(log: Logger, event: ServiceEvent): void {
  const to = 'target' in event ? `${event.target.host}:${event.target.port}` : undefined
  switch (event.type) {
    case 'accepted':
      log('info', 'connection', { proto: 'tcp', port: event.port, from: event.remote, peer: event.peer ?? null, to, ...(event.rule ? { rule: event.rule } : {}) })
      break
    case 'denied':
      log('warn', 'connection denied', { proto: 'tcp', port: event.port, from: event.remote, peer: event.peer ?? null, reason: event.reason })
      break
    case 'ended':
      log(event.end === 'closed' || event.end === 'shutdown' ? 'info' : 'warn', 'connection ended', {
        proto: 'tcp',
        port: event.port,
        from: event.remote,
        peer: event.peer ?? null,
        to,
        end: event.end,
        ...(event.reason !== undefined ? { reason: event.reason } : {}),
        bytesIn: event.bytesToService,
        bytesOut: event.bytesToOverlay,
        durationMs: event.durationMs,
      })
      break
  }
}

function logUdpEvent(log: Logger, event: UdpForwardEvent): void {
  switch (event.type) {
    case 'udp-session':
      log('info', 'udp flow', { proto: 'udp', port: event.port, from: event.remote, peer: event.peer ?? null, to: `${event.target.host}:${event.target.port}` })
      break
    case 'udp-denied':
      log('warn', 'udp denied', { proto: 'udp', port: event.port, from: event.remote, peer: event.peer ?? null, reason: event.reason })
      break
    case 'udp-dropped':
      log('warn', 'udp dropped', { proto: 'udp', port: event.port, from: event.remote, peer: event.peer ?? null, reason: event.reason })
      break
    case 'udp-session-ended':
      log(event.why === 'service-error' ? 'warn' : 'info', 'udp flow ended', {
        proto: 'udp',
        port: event.port,
        from: event.remote,
        peer: event.peer ?? null,
        why: event.why,
        ...(event.detail !== undefined ? { detail: event.detail } : {}),
        datagramsIn: event.datagramsIn,
        datagramsOut: event.datagramsOut,
      })
      break
  }
}
