import { describe, expect, it } from 'vitest'
import { MAX_CLIENT_MESSAGE_BYTES, MAX_JSON_DEPTH, MAX_PRE_HELLO_BYTES, ProtocolError, parseClientMessage, parseServerMessage, type PeerEntry } from './protocol.ts'

const nodeKey = `nodekey:${'ab'.repeat(32)}`
const discoKey = `discokey:${'cd'.repeat(32)}`
const b64 = (n: number): string => Buffer.alloc(n, 1).toString('base64')
const proof = { nonce: b64(24), box: b64(48) }
const hello = { type: 'hello', version: 1, nodeKey, discoKey, hostname: 'h', proof }

function fieldOf(fn: () => unknown): { field: string; message: string } {
  try {
    fn()
  } catch (error) {
    if (error instanceof ProtocolError) return { field: error.field, message: error.message }
    throw error
  }
  throw new Error('expected a ProtocolError')
}

describe('parseClientMessage', () => {
  it('accepts a full hello and keeps only known fields', () => {
    const full = { ...hello, authKey: 'bwauth-1', previousNodeKey: nodeKey.replace('ab', 'ef'), previousProof: proof, homeRelay: { url: 'wss://r/derp', region: 'x' }, extra: 1 }
    expect(parseClientMessage(JSON.stringify(full))).toEqual({
      type: 'hello',
      version: 1,
      nodeKey,
      discoKey,
      hostname: 'h',
      proof,
      authKey: 'bwauth-1',
      previousNodeKey: full.previousNodeKey,
      previousProof: proof,
      homeRelay: { url: 'wss://r/derp', region: 'x' },
    })
  })

  it('accepts update and ping', () => {
    expect(parseClientMessage('{"type":"update","homeRelay":null}')).toEqual({ type: 'update', homeRelay: null })
    expect(parseClientMessage('{"type":"ping","id":3}')).toEqual({ type: 'ping', id: 3 })
  })

  it.each([
    ['nonsense', 'message', 'message is not valid JSON'],
    ['[1]', 'message', 'message must be an object'],
    ['{}', 'type', 'type must be a string'],
    ['{"type":"welcome"}', 'type', 'type "welcome" is not a client message'],
    [JSON.stringify({ ...hello, version: 2 }), 'version', 'version 2 is not supported (this side speaks 1)'],
    [JSON.stringify({ ...hello, nodeKey: 'nodekey:AB' }), 'nodeKey', 'nodeKey must be nodekey: followed by 64 lowercase hex digits'],
    [JSON.stringify({ ...hello, discoKey: nodeKey }), 'discoKey', 'discoKey must be discokey: followed by 64 lowercase hex digits'],
    [JSON.stringify({ ...hello, hostname: 5 }), 'hostname', 'hostname must be a string'],
    [JSON.stringify({ ...hello, hostname: 'a\nb' }), 'hostname', 'hostname must not contain control characters'],
    [JSON.stringify({ ...hello, proof: undefined }), 'proof', 'proof must be an object'],
    [JSON.stringify({ ...hello, proof: { nonce: b64(23), box: b64(48) } }), 'proof.nonce', 'proof.nonce must be 24 bytes, got 23'],
    [JSON.stringify({ ...hello, proof: { nonce: b64(24), box: '***' } }), 'proof.box', 'proof.box must be base64'],
    [JSON.stringify({ ...hello, authKey: 12 }), 'authKey', 'authKey must be a string'],
    [JSON.stringify({ ...hello, previousNodeKey: nodeKey }), 'previousProof', 'previousProof must be an object'],
    [JSON.stringify({ ...hello, homeRelay: { url: 'javascript:alert(1)' } }), 'homeRelay.url', 'homeRelay.url must be an http(s) or ws(s) URL'],
    ['{"type":"ping","id":1.5}', 'id', 'id must be an integer'],
  ])('rejects %s naming %s', (text, field, message) => {
    expect(fieldOf(() => parseClientMessage(text))).toEqual({ field, message })
  })

  it('refuses a client message over the limit by its length alone (a smaller limit before hello)', () => {
    const big = JSON.stringify({ ...hello, hostname: 'x'.repeat(MAX_PRE_HELLO_BYTES) })
    expect(fieldOf(() => parseClientMessage(big, MAX_PRE_HELLO_BYTES))).toEqual({ field: 'message', message: `message is larger than ${MAX_PRE_HELLO_BYTES} bytes` })
    expect(fieldOf(() => parseClientMessage(big))).toEqual({ field: 'hostname', message: 'hostname is longer than 256 characters' })
    expect(fieldOf(() => parseClientMessage(' '.repeat(MAX_CLIENT_MESSAGE_BYTES + 1)))).toEqual({
      field: 'message',
      message: `message is larger than ${MAX_CLIENT_MESSAGE_BYTES} bytes`,
    })
  })

  it('refuses deeply nested JSON without parsing it', () => {
    const nested = `{"type":"ping","id":1,"x":${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}}`
    expect(fieldOf(() => parseClientMessage(nested))).toEqual({ field: 'message', message: `message nests deeper than ${MAX_JSON_DEPTH} levels` })
  })

  it('rejects binary frames', () => {
    expect(fieldOf(() => parseClientMessage(new Uint8Array([1])))).toEqual({ field: 'message', message: 'message must be JSON text, got a binary frame' })
  })
})

describe('parseServerMessage', () => {
  const peer: PeerEntry = {
    id: 1,
    nodeKey,
    discoKey,
    hostname: 'a',
    addresses: ['100.64.0.1', 'fd00::1'],
    online: true,
    homeRelay: { url: 'https://relay/derp' },
    lastSeen: null,
    ephemeral: false,
  }

  it('round-trips every server message', () => {
    const messages = [
      { type: 'challenge', version: 1, serverKey: b64(32), challenge: b64(32) },
      { type: 'welcome', self: peer, network: { ipv4Prefix: '100.64.0.0/10', ipv6Prefix: 'fd00::/48' }, peers: [peer], more: 3 },
      { type: 'keepalive' },
      { type: 'peers', upsert: [peer], remove: [nodeKey] },
      { type: 'self', self: peer },
      { type: 'pong', id: 1 },
      { type: 'error', status: 401, error: 'authKey is unknown or already used', closing: true },
    ]
    for (const m of messages) expect(parseServerMessage(JSON.stringify(m))).toEqual(m)
  })

  it('refuses JSON nested deeper than the limit before parsing it, but not brackets inside strings', () => {
    const deep = `{"type":"pong","id":1,"x":${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`
    expect(fieldOf(() => parseServerMessage(deep))).toEqual({ field: 'message', message: `message nests deeper than ${MAX_JSON_DEPTH} levels` })
    expect(parseServerMessage(JSON.stringify({ type: 'error', status: 400, error: '[[[[[[[[[[[[{{{{{{{{{{\\"', closing: false }))).toMatchObject({ status: 400 })
  })

  it('names the bad field deep in a peer list', () => {
    const bad = { type: 'peers', upsert: [peer, { ...peer, online: 'yes' }], remove: [] }
    expect(fieldOf(() => parseServerMessage(JSON.stringify(bad)))).toEqual({ field: 'upsert[1].online', message: 'upsert[1].online must be true or false' })
    const badRemove = { type: 'peers', upsert: [], remove: ['x'] }
    expect(fieldOf(() => parseServerMessage(JSON.stringify(badRemove))).field).toBe('remove[0]')
    const badAddresses = { type: 'self', self: { ...peer, addresses: ['1.2.3.4'] } }
    expect(fieldOf(() => parseServerMessage(JSON.stringify(badAddresses))).field).toBe('self.addresses')
  })
})
