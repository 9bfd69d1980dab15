// The UDP shell around StunResponder: one socket, each datagram answered from the same socket
// (so from the address and port the client sent to, as RFC 8489 §6.3 requires of the reply).
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { parseAddress } from '../../wire/address.ts'
import { type Logger, silentLogger } from '../log.ts'
import { StunCounters, StunResponder } from './server.ts'
import type { TransportAddress } from './message.ts'

export interface StunServerOptions {
  host: string
  port: number
  counters?: StunCounters
  log?: Logger
}

export interface StunServer {
  readonly host: string
  readonly port: number
  readonly counters: StunCounters
  close(): Promise<void>
}

/** The client's transport address as the responder encodes it; an IPv4-mapped IPv6 source is IPv4. */
export function transportAddressOf(info: RemoteInfo): TransportAddress {
  const text = info.address.startsWith('::ffff:') && info.address.includes('.') ? info.address.slice(7) : info.address.replace(/%.*$/, '')
  const address = parseAddress(text)
  return { family: address.length === 4 ? 4 : 6, address, port: info.port }
}

export async function startStunServer(options: StunServerOptions): Promise<StunServer> {
  const counters = options.counters ?? new StunCounters()
  const log = options.log ?? silentLogger
  const responder = new StunResponder({ counters })
  const ipv6 = options.host.includes(':')
  const socket: Socket = createSocket({ type: ipv6 ? 'udp6' : 'udp4' })
  socket.on('message', (data, info) => {
    const reply = responder.handle(new Uint8Array(data.buffer, data.byteOffset, data.length), transportAddressOf(info))
    if (reply) socket.send(reply, info.port, info.address)
  })
  // A send to an unreachable client (ICMP error) must not take the port down for everyone else.
  socket.on('error', (error) => log('warn', 'stun socket error', { error: error.message }))
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(options.port, options.host, () => {
      socket.off('error', reject)
      resolve()
    })
  })
  const bound = socket.address()
  return {
    host: bound.address,
    port: bound.port,
    counters,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  }
}
