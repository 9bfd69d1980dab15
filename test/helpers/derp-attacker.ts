// A hostile DERP client, run as its own process (so its CPU is not the test's): it logs in over
// a raw `Upgrade: DERP` socket and then floods. Prints JSON lines: {"ready":true} once logged in,
// then {"sent":N,"received":M} every 250 ms (frames written, packets received).
//
//   node --import tsx test/helpers/derp-attacker.ts ping URL            Ping frames, reading replies
//   node --import tsx test/helpers/derp-attacker.ts ping-noread URL     Ping frames, never reading
//   node --import tsx test/helpers/derp-attacker.ts ping-ws URL         Ping frames over WebSocket, reading replies
//   node --import tsx test/helpers/derp-attacker.ts packets URL DSTHEX HEX  one packet (hex) to DSTHEX, over and over
import { connect } from 'node:net'
import WebSocket from 'ws'
import { fromHex, generateKeyPair } from '../../src/crypto/index.ts'
import { encodeFrame } from '../../src/underlay/derp/frames.ts'
import { DerpClientSession } from '../../src/underlay/derp/session.ts'

const [mode, url, dstHex, packetHex] = process.argv.slice(2)
if (!mode || !url) throw new Error('usage: derp-attacker.ts ping|ping-noread|ping-ws|packets URL [DSTHEX HEX]')
const { hostname, port } = new URL(url)
const keys = generateKeyPair()
const session = new DerpClientSession({ privateKey: keys.privateKey, pingIntervalMs: 1e9 }, performance.now())
let received = 0
let sent = 0

let frame: Uint8Array
if (mode === 'packets') {
  if (!dstHex || !packetHex) throw new Error('packets mode needs DSTHEX and HEX')
  frame = encodeFrame({ type: 'send-packet', destination: fromHex(dstHex), packet: fromHex(packetHex) })
} else {
  frame = encodeFrame({ type: 'ping', data: new Uint8Array(8) })
}
const perChunk = Math.max(1, Math.floor((64 * 1024) / frame.length))
const chunk = new Uint8Array(frame.length * perChunk)
for (let i = 0; i < perChunk; i++) chunk.set(frame, i * frame.length)

if (mode === 'ping-ws') {
  // One WebSocket message per 64 KiB of Pings, at most 4 MiB waiting in ws's buffer.
  const ws = new WebSocket(url.replace(/^http/, 'ws'), 'derp')
  ws.binaryType = 'nodebuffer'
  const pump = (): void => {
    while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 4 << 20) {
      ws.send(chunk)
      sent += perChunk
    }
    if (ws.readyState === WebSocket.OPEN) setTimeout(pump, 5)
  }
  ws.on('message', (data: Buffer) => {
    const wasReady = session.state === 'ready'
    session.receive(new Uint8Array(data), performance.now())
    for (let out = session.takeOutput(); out; out = session.takeOutput()) ws.send(out)
    for (let e = session.takeEvent(); e; e = session.takeEvent()) if (e.type === 'packet') received++
    if (!wasReady && session.state === 'ready') {
      process.stdout.write(JSON.stringify({ ready: true, key: Buffer.from(keys.publicKey).toString('hex') }) + '\n')
      pump()
    }
  })
  ws.on('error', () => {})
  ws.on('close', () => {
    process.stdout.write(JSON.stringify({ closed: true, sent, received }) + '\n')
    process.exit(0)
  })
}

const socket = mode === 'ping-ws' ? undefined : connect({ host: hostname, port: Number(port) })
socket?.setNoDelay(true)

function flood(): void {
  if (!socket) return
  for (;;) {
    sent += perChunk
    if (!socket.write(chunk)) {
      socket.once('drain', flood)
      return
    }
  }
}

socket?.on('connect', () => {
  socket!.write(`GET /derp HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n\r\n`)
})
socket?.on('data', (data: Buffer) => {
  const wasReady = session.state === 'ready'
  session.receive(new Uint8Array(data), performance.now())
  for (let out = session.takeOutput(); out; out = session.takeOutput()) socket!.write(out)
  for (let e = session.takeEvent(); e; e = session.takeEvent()) if (e.type === 'packet') received++
  if (!wasReady && session.state === 'ready') {
    process.stdout.write(JSON.stringify({ ready: true, key: Buffer.from(keys.publicKey).toString('hex') }) + '\n')
    if (mode === 'ping-noread') socket!.pause()
    flood()
  }
})
socket?.on('error', () => {})
socket?.on('close', () => {
  process.stdout.write(JSON.stringify({ closed: true, sent, received }) + '\n')
  process.exit(0)
})
setInterval(() => process.stdout.write(JSON.stringify({ sent, received }) + '\n'), 250)
