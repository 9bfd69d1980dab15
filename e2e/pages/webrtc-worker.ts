// A dedicated worker holding Burrow's WebRTC underlay: it logs in to a relay over DERP, carries
// WebRTC signals as sealed disco messages through it, adopts the datachannel the page hands over,
// and sends or checks numbered WireGuard-sized datagrams on it.
import { generateKeyPair, fromHex, toHex } from '../../src/crypto/index.ts'
import { DerpConnection } from '../../src/underlay/derp/connection.ts'
import { webSocketDialer } from '../../src/underlay/derp/dialer.ts'
import { DiscoKeyring, looksLikeDisco } from '../../src/underlay/disco/index.ts'
import { WebRtcUnderlay } from '../../src/underlay/webrtc/webrtc-underlay.ts'

export type WorkerRequest =
  | { type: 'start'; relayUrl: string; control: MessagePort }
  | { type: 'peer'; nodeKey: string; discoKey: string }
  | { type: 'connect' }
  | { type: 'blast'; count: number; size: number; window?: number }
  | { type: 'stats' }

export interface WorkerStats {
  open: boolean
  how?: string
  received: number
  outOfPattern: number
  duplicates: number
  closes: string[]
  signalsSent: number
  signalsReceived: number
  discoRejected: number
  /** Bytes received and when the first and last datagram arrived (performance.now()). */
  bytes: number
  firstAt: number
  lastAt: number
  link?: { sent: number; received: number; dropped: number; queued: number; buffered: number }
}

const node = generateKeyPair()
const disco = generateKeyPair()
const keyring = new DiscoKeyring(disco.privateKey)
let derp: DerpConnection | undefined
let underlay: WebRtcUnderlay | undefined
let peer: { nodeKey: Uint8Array; discoKey: Uint8Array } | undefined
let how: string | undefined
let open = false
const closes: string[] = []
const seen = new Set<number>()
let received = 0
let outOfPattern = 0
let duplicates = 0
let signalsSent = 0
let signalsReceived = 0
let discoRejected = 0
let bytes = 0
let firstAt = 0
let lastAt = 0

function reply(message: unknown): void {
  postMessage(message)
}

/** A WireGuard transport-data-shaped datagram: type 4, then a sequence number, then a pattern. */
function datagram(sequence: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  bytes[0] = 4
  new DataView(bytes.buffer).setUint32(4, sequence)
  for (let i = 8; i < size; i++) bytes[i] = (sequence + i) & 0xff
  return bytes
}

function check(datagram: Uint8Array): void {
  const now = performance.now()
  if (received === 0) firstAt = now
  lastAt = now
  received++
  bytes += datagram.length
  const sequence = new DataView(datagram.buffer, datagram.byteOffset).getUint32(4)
  let ok = datagram[0] === 4
  for (let i = 8; ok && i < datagram.length; i++) ok = datagram[i] === ((sequence + i) & 0xff)
  if (!ok) outOfPattern++
  if (seen.has(sequence)) duplicates++
  seen.add(sequence)
}

const nextTask = (): Promise<void> =>
  new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel()
    port1.onmessage = () => resolve()
    port2.postMessage(null)
  })

async function blast(count: number, size: number, window: number): Promise<void> {
  const target = peer!.nodeKey
  for (let sent = 0; sent < count;) {
    // The sender paces itself on backpressure, as TCP over the tunnel would.
    for (;;) {
      const link = underlay!.linkStats(target)
      if (!link || (link.queued === 0 && link.buffered < window)) break
      await nextTask()
    }
    const burst = Math.min(64, count - sent)
    const datagrams: Uint8Array[] = []
    for (let i = 0; i < burst; i++) datagrams.push(datagram(sent + i, size))
    underlay!.send(target, datagrams)
    sent += burst
    await nextTask()
  }
}

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const request = event.data
  switch (request.type) {
    case 'start': {
      underlay = new WebRtcUnderlay(request.control, { ourKey: node.publicKey }, (error) => reply({ type: 'error', message: error.message }))
      underlay.start((_source, datagrams) => {
        for (const d of datagrams) check(d)
      })
      underlay.on('open', (_peer, via) => {
        open = true
        how = via
      })
      underlay.on('close', (_peer, reason) => {
        open = false
        closes.push(reason)
      })
      underlay.on('signal', (to, signal) => {
        if (!peer || toHex(to) !== toHex(peer.nodeKey)) return
        signalsSent++
        derp!.send(to, keyring.seal(peer.discoKey, { type: 'webrtc-signal', signal }))
      })
      derp = new DerpConnection({ url: request.relayUrl, privateKey: node.privateKey, dial: webSocketDialer() })
      derp.on('packet', (source, packet) => {
        if (!looksLikeDisco(packet) || !peer) return
        try {
          const { sender, message } = keyring.open(packet)
          if (toHex(sender) !== toHex(peer.discoKey) || toHex(source) !== toHex(peer.nodeKey)) throw new Error('disco from an unknown sender')
          if (message.type === 'webrtc-signal') {
            signalsReceived++
            underlay!.handleSignal(source, message.signal)
          }
        } catch {
          discoRejected++
        }
      })
      derp.on('connected', () => reply({ type: 'ready', nodeKey: toHex(node.publicKey), discoKey: toHex(disco.publicKey) }))
      derp.start()
      return
    }
    case 'peer':
      peer = { nodeKey: fromHex(request.nodeKey), discoKey: fromHex(request.discoKey) }
      reply({ type: 'ok' })
      return
    case 'connect':
      underlay!.connect(peer!.nodeKey)
      reply({ type: 'ok' })
      return
    case 'blast':
      blast(request.count, request.size, request.window ?? 64 * 1024).then(
        () => reply({ type: 'ok' }),
        (error: Error) => reply({ type: 'error', message: error.message }),
      )
      return
    case 'stats': {
      const stats: WorkerStats = {
        open,
        received,
        outOfPattern,
        duplicates,
        closes,
        signalsSent,
        signalsReceived,
        discoRejected,
        bytes,
        firstAt,
        lastAt,
        ...(how ? { how } : {}),
      }
      const link = peer && underlay?.linkStats(peer.nodeKey)
      if (link) stats.link = link
      reply({ type: 'stats', stats })
      return
    }
  }
}
