// `burrow fetch`: one HTTP/1.1 GET through the WireGuard tunnel of a wg-quick file, over Burrow's
// own userspace TCP/IP stack. Status line to stderr, body to stdout or --output FILE.
import { createWriteStream } from 'node:fs'
import { PcapFile } from '../node/pcap-file.ts'
import { openUdpTunnel, type UdpTunnel } from '../node/udp-tunnel.ts'
import { httpFetch } from '../http/client.ts'
import type { Sockets } from '../overlay/sockets.ts'
import { numberFlag, parseArgs, parseCommandArgs, UsageError } from './args.ts'
import { type CliIo, type Command, EXIT_USAGE, processIo } from './io.ts'
import { readWgQuickFile } from './wg-quick-file.ts'

const USAGE = 'usage: burrow fetch --config FILE [--output FILE | -o FILE] [--timeout S] [--pcap FILE] URL\n'

interface FetchOptions {
  configPath: string
  url: URL
  output: string | undefined
  timeoutMs: number
  pcapPath: string | undefined
}

function parseFetchArgs(args: string[]): FetchOptions {
  const parsed = parseArgs(
    args.map((a) => (a === '-o' ? '--output' : a)),
    ['config', 'output', 'timeout', 'pcap'],
  )
  const configPath = parsed.flags.get('config')
  if (configPath === undefined) throw new UsageError('--config FILE is required')
  if (parsed.positionals.length !== 1) throw new UsageError('give exactly one URL')
  let url: URL
  try {
    url = new URL(parsed.positionals[0]!)
  } catch {
    throw new UsageError(`${JSON.stringify(parsed.positionals[0])} is not a URL`)
  }
  if (url.protocol !== 'http:') throw new UsageError(`only http:// URLs are supported (the tunnel already encrypts), not ${url.protocol}`)
  return {
    configPath,
    url,
    output: parsed.flags.get('output'),
    timeoutMs: numberFlag(parsed, 'timeout', 30, 0.1, 86_400, false) * 1000,
    pcapPath: parsed.flags.get('pcap'),
  }
}

function opener(sockets: Sockets) {
  return async (host: string, port: number) => {
    const socket = sockets.connect({ host: host.replace(/^\[(.*)\]$/, '$1'), port })
    const { readable, writable } = await socket.opened
    return { readable, writable, close: () => socket.close() }
  }
}

/** Writes body bytes where the user asked: a file, the process's stdout, or (in tests) the CliIo. */
function bodySink(io: CliIo, output: string | undefined): { write: (chunk: Uint8Array) => Promise<void>; end: () => Promise<void> } {
  if (output !== undefined) {
    const file = createWriteStream(output)
    let failure: Error | undefined
    file.on('error', (error) => (failure = error))
    return {
      write: async (chunk) => {
        if (failure) throw failure
        if (!file.write(chunk)) await new Promise<void>((resolve) => file.once('drain', resolve).once('close', resolve))
        if (failure) throw failure
      },
      end: () => new Promise<void>((resolve, reject) => file.end(() => (failure ? reject(failure) : resolve()))),
    }
  }
  if (io === processIo) {
    return {
      write: (chunk) => new Promise<void>((resolve, reject) => process.stdout.write(chunk, (error) => (error ? reject(error) : resolve()))),
      end: async () => {},
    }
  }
  const decoder = new TextDecoder()
  return { write: async (chunk) => io.stdout(decoder.decode(chunk, { stream: true })), end: async () => io.stdout(decoder.decode()) }
}

export const fetchCommand: Command = async (args, io) => {
  const options = parseCommandArgs('fetch', io, () => parseFetchArgs(args), USAGE)
  if (!options) return EXIT_USAGE
  const config = await readWgQuickFile('fetch', options.configPath, io)
  if (!config) return EXIT_USAGE
  if (config.interface.addresses.length === 0) {
    io.stderr(`burrow fetch: ${options.configPath} has no [Interface] Address for the overlay stack\n`)
    return EXIT_USAGE
  }
  let tunnel: UdpTunnel
  let pcap: PcapFile | undefined
  try {
    pcap = options.pcapPath === undefined ? undefined : PcapFile.open(options.pcapPath)
    tunnel = await openUdpTunnel(config, pcap ? { capture: (packet) => pcap!.record(packet) } : {})
  } catch (error) {
    pcap?.close()
    io.stderr(`burrow fetch: ${(error as Error).message}\n`)
    return 1
  }
  const signal = AbortSignal.timeout(options.timeoutMs)
  try {
    const response = await httpFetch(opener(tunnel.sockets), options.url, { signal })
    io.stderr(`HTTP/1.1 ${response.status} ${response.statusText}\n`)
    const sink = bodySink(io, options.output)
    if (response.body) {
      const reader = response.body.getReader()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        await sink.write(value)
      }
    }
    await sink.end()
    return response.status >= 400 ? 1 : 0
  } catch (error) {
    const reason = signal.aborted ? `no complete response within ${options.timeoutMs / 1000} s` : (error as Error).message
    io.stderr(`burrow fetch: ${options.url.href}: ${reason}\n`)
    return 1
  } finally {
    await tunnel.close()
    pcap?.close()
  }
}
