import { describe, expect, it } from 'vitest'
import { BOX_NONCE_LENGTH, boxKey, boxSeal, generateKeyPair, randomBytes, toHex } from '../../crypto/index.ts'
import { DerpDiscoResponder, derpMagicAddrPort } from './derp-responder.ts'
import { DISCO_MAGIC, DiscoKeyring } from './envelope.ts'

const ours = generateKeyPair()
const peerDisco = generateKeyPair()
const peerNode = generateKeyPair().publicKey
const strangerNode = generateKeyPair().publicKey
const peer = new DiscoKeyring(peerDisco.privateKey)
const txId = Uint8Array.from({ length: 12 }, (_, i) => 0xc0 + i)

function responder(): DerpDiscoResponder {
  const known = new Map([[toHex(peerNode), peerDisco.publicKey]])
  return new DerpDiscoResponder(ours.privateKey, (nodeKey) => known.get(toHex(nodeKey)))
}

/** A disco packet from the peer whose box holds `plaintext` verbatim (type byte, version, body). */
function rawFromPeer(plaintext: Uint8Array): Uint8Array {
  const nonce = randomBytes(BOX_NONCE_LENGTH)
  const sealed = boxSeal(boxKey(peerDisco.privateKey, ours.publicKey), nonce, plaintext)
  const packet = new Uint8Array(DISCO_MAGIC.length + 32 + nonce.length + sealed.length)
  packet.set(DISCO_MAGIC, 0)
  packet.set(peerDisco.publicKey, DISCO_MAGIC.length)
  packet.set(nonce, DISCO_MAGIC.length + 32)
  packet.set(sealed, DISCO_MAGIC.length + 32 + nonce.length)
  return packet
}

describe('DerpDiscoResponder (disco over DERP, magicsock rules)', () => {
  it('answers a ping over DERP with a pong carrying the same TxID and Src 127.3.3.40:<region>, sealed from our disco key to the peer, addressed to the DERP source', () => {
    const r = responder()
    const ping = peer.seal(ours.publicKey, { type: 'ping', txId, nodeKey: peerNode, padding: 0 })
    const verdict = r.handle(ping, peerNode, 900)
    expect(verdict.kind).toBe('reply')
    if (verdict.kind !== 'reply') return
    expect(verdict.to).toEqual(peerNode)
    const opened = peer.open(verdict.datagram)
    expect(opened.sender).toEqual(ours.publicKey)
    expect(opened.message).toEqual({ type: 'pong', txId, source: { ip: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 3, 3, 40), port: 900 } })
    expect(r.counters.pingsAnswered).toBe(1)
  })

  it('the DERP magic address is v4-mapped 127.3.3.40 with the region as port; a region outside 0..65535 is refused', () => {
    expect([...derpMagicAddrPort(1).ip]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 3, 3, 40])
    expect(derpMagicAddrPort(65535).port).toBe(65535)
    expect(() => derpMagicAddrPort(70000)).toThrow(/region id/)
  })

  it('a padded ping (path MTU probe) without a node key is answered too', () => {
    const r = responder()
    const verdict = r.handle(peer.seal(ours.publicKey, { type: 'ping', txId, padding: 100 }), peerNode, 7)
    expect(verdict.kind).toBe('reply')
  })

  it('an unknown disco message type in a box that opens is dropped and counted as unknownType, with no reply', () => {
    const r = responder()
    for (const type of [0x0a, 0x42, 0x05]) {
      const verdict = r.handle(rawFromPeer(Uint8Array.of(type, 0, 1, 2, 3)), peerNode, 900)
      expect(verdict).toMatchObject({ kind: 'drop', reason: 'unknownType' })
    }
    expect(r.counters).toMatchObject({ unknownType: 3, pingsAnswered: 0 })
  })

  it('a truncated ping is malformed, a box that does not open is undecryptable, each counted and unanswered', () => {
    const r = responder()
    expect(r.handle(rawFromPeer(Uint8Array.of(0x01, 0, 1, 2)), peerNode, 900)).toMatchObject({ kind: 'drop', reason: 'malformed' })
    const ping = peer.seal(ours.publicKey, { type: 'ping', txId, padding: 0 })
    ping[ping.length - 1]! ^= 1
    expect(r.handle(ping, peerNode, 900)).toMatchObject({ kind: 'drop', reason: 'undecryptable' })
    expect(r.handle(Uint8Array.of(...DISCO_MAGIC, 1, 2), peerNode, 900)).toMatchObject({ kind: 'drop', reason: 'undecryptable' })
    expect(r.counters).toMatchObject({ malformed: 1, undecryptable: 2, pingsAnswered: 0 })
  })

  it('a ping from a node that is no peer, or sealed by a disco key other than the one the netmap gives that node, is not answered', () => {
    const r = responder()
    const ping = peer.seal(ours.publicKey, { type: 'ping', txId, padding: 0 })
    expect(r.handle(ping, strangerNode, 900)).toMatchObject({ kind: 'drop', reason: 'unknownSender' })
    const impostor = new DiscoKeyring(generateKeyPair().privateKey)
    expect(r.handle(impostor.seal(ours.publicKey, { type: 'ping', txId, padding: 0 }), peerNode, 900)).toMatchObject({ kind: 'drop', reason: 'unknownSender' })
    expect(r.counters).toMatchObject({ unknownSender: 2, pingsAnswered: 0 })
  })

  it('pongs, CallMeMaybe and WebRTC signals are passed on to the direct-path code, not answered', () => {
    const r = responder()
    const pong = peer.seal(ours.publicKey, { type: 'pong', txId, source: derpMagicAddrPort(1) })
    expect(r.handle(pong, peerNode, 1)).toMatchObject({ kind: 'pass', message: { type: 'pong' } })
    expect(r.handle(peer.seal(ours.publicKey, { type: 'call-me-maybe', endpoints: [] }), peerNode, 1)).toMatchObject({ kind: 'pass', message: { type: 'call-me-maybe' } })
    expect(r.handle(peer.seal(ours.publicKey, { type: 'webrtc-signal', signal: { session: 1, kind: 'request' } }), peerNode, 1)).toMatchObject({
      kind: 'pass',
      message: { type: 'webrtc-signal' },
    })
    expect(r.counters).toMatchObject({ passedOn: 3, pingsAnswered: 0 })
  })

  it('a WebRTC signal from a node not yet in the netmap is passed on (the direct-path code keeps early signals until the peer appears), a ping from it is not answered', () => {
    const r = responder()
    const offer = peer.seal(ours.publicKey, { type: 'webrtc-signal', signal: { session: 1, kind: 'request' } })
    expect(r.handle(offer, strangerNode, 1)).toMatchObject({ kind: 'pass', message: { type: 'webrtc-signal' } })
    expect(r.handle(peer.seal(ours.publicKey, { type: 'ping', txId, padding: 0 }), strangerNode, 1)).toMatchObject({ kind: 'drop', reason: 'unknownSender' })
    expect(r.counters).toMatchObject({ passedOn: 1, unknownSender: 1, pingsAnswered: 0 })
  })
})
