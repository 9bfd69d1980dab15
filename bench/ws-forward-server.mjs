// The relay bench's baseline: a bare `ws` server process that forwards every binary message from
// one socket of a pair to the other, unchanged. It does what a relay does for the bytes (one read,
// one write per message, in its own process) and nothing a DERP relay adds (parsing, queues).
// Prints its port on stdout. Pairs are formed by the `pair` query parameter.
import { WebSocketServer } from 'ws'

const pairs = new Map()
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 20, handleProtocols: (protocols) => [...protocols][0] ?? false })
server.on('listening', () => console.log(server.address().port))
server.on('connection', (socket, req) => {
  const pair = new URL(req.url, 'http://x').searchParams.get('pair') ?? ''
  const members = pairs.get(pair) ?? []
  pairs.set(pair, members)
  members.push(socket)
  socket.on('message', (data) => {
    for (const other of members) if (other !== socket && other.readyState === 1) other.send(data)
  })
  socket.on('close', () => members.splice(members.indexOf(socket), 1))
})
