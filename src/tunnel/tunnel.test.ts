import { describe, expect, it } from 'vitest'
import { Tunnel, WeakKeyError, UnknownPeerError } from './index.ts'
import { CookieJar } from './cookie.ts'
import { readU32 } from './messages.ts'
import { REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES } from './timers.ts'
import { ipv4Packet, Pair, privateKeyFrom, seededRandom, WALL_CLOCK_OFFSET } from './testing.ts'

const T0 = 1_000

describe('handshake and data', () => {
  it('completes a handshake on first send and carries data both ways', () => {
    const pair = new Pair()
    const first = ipv4Packet(60, 1)
    const sent = pair.a.send(pair.toB, first, T0)
    expect(sent).toHaveLength(1)
    expect(sent[0]!.length).toBe(148)
    expect([...sent[0]!.subarray(0, 4)]).toEqual([1, 0, 0, 0])

    const atB = pair.b.receive(sent[0]!, T0 + 1)
    expect(atB.peer).toBe(pair.toA)
    expect(atB.dropped).toBeUndefined()
    expect(atB.replies).toHaveLength(1)
    expect(atB.replies[0]!.length).toBe(92)

    const atA = pair.a.receive(atB.replies[0]!, T0 + 2)
    expect(atA.peer).toBe(pair.toB)
    // The queued packet goes out on the new session: 16 header + 64 padded + 16 tag.
    expect(atA.replies).toHaveLength(1)
    const data = atA.replies[0]!
    expect(data.length).toBe(96)
    expect([...data.subarray(0, 4)]).toEqual([4, 0, 0, 0])
    expect([...data.subarray(8, 16)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]) // counter 0, LE u64

    const delivered = pair.b.receive(data, T0 + 3)
    expect(delivered.packets).toEqual([first]) // padding trimmed by the IP length
    expect(delivered.peer).toBe(pair.toA)

    const back = ipv4Packet(1420, 2)
    const reply = pair.b.send(pair.toA, back, T0 + 4)
    expect(reply).toHaveLength(1)
    expect(reply[0]!.length).toBe(16 + 1424 + 16)
    expect(pair.a.receive(reply[0]!, T0 + 5).packets).toEqual([back])

    const second = pair.a.send(pair.toB, ipv4Packet(33, 3), T0 + 6)
    expect(readU32(second[0]!, 8)).toBe(1)
    expect(pair.b.receive(second[0]!, T0 + 7).packets[0]!.length).toBe(33)

    expect(pair.a.stats(pair.toB)).toMatchObject({ txPackets: 2, rxPackets: 1, lastHandshake: T0 + 2, drops: {} })
    expect(pair.b.stats(pair.toA)).toMatchObject({ txPackets: 1, rxPackets: 2, lastHandshake: T0 + 1, drops: {} })
    expect(pair.a.drops).toEqual({})
    expect(pair.b.drops).toEqual({})
  })

  it('rejects a replayed data message without delivering it twice', () => {
    const pair = new Pair()
    pair.connect(T0)
    const [data] = pair.a.send(pair.toB, ipv4Packet(40), T0 + 10)
    expect(pair.b.receive(data!, T0 + 11).packets).toHaveLength(1)
    const replay = pair.b.receive(data!, T0 + 12)
    expect(replay).toEqual({ packets: [], replies: [], dropped: 'replayed' })
    expect(pair.b.stats(pair.toA).drops.replayed).toBe(1)
    expect(pair.b.stats(pair.toA).rxPackets).toBe(1)
  })

  it('accepts data reordered within the window and refuses what fell out of it', () => {
    const pair = new Pair()
    pair.connect(T0)
    const messages = Array.from({ length: 10 }, (_, i) => pair.a.send(pair.toB, ipv4Packet(20 + i), T0 + 1)[0]!)
    for (const i of [5, 9, 0, 7, 1]) expect(pair.b.receive(messages[i]!, T0 + 2).packets).toHaveLength(1)
    expect(pair.b.receive(messages[5]!, T0 + 2).dropped).toBe('replayed')
    const internals = pair.internalsA()
    internals.current!.setSendCounterForTesting(20_000n)
    pair.b.receive(pair.a.send(pair.toB, ipv4Packet(20), T0 + 3)[0]!, T0 + 3)
    expect(pair.b.receive(messages[2]!, T0 + 4).dropped).toBe('replayed')
  })

  it('drops traffic for an unknown receiver index into the tunnel counters', () => {
    const pair = new Pair()
    pair.connect(T0)
    const [data] = pair.a.send(pair.toB, ipv4Packet(40), T0)
    data![4]! ^= 0xff
    expect(pair.b.receive(data!, T0).dropped).toBe('unknown-index')
    expect(pair.b.drops['unknown-index']).toBe(1)
  })
})

describe('handshake ahead of traffic', () => {
  it('handshake() sends one initiation, and the session it makes carries the first packet without waiting', () => {
    const pair = new Pair()
    const [initiation] = pair.a.handshake(pair.toB, T0)
    expect(initiation!.length).toBe(148)
    expect([...initiation!.subarray(0, 4)]).toEqual([1, 0, 0, 0])
    // In progress: neither handshake() nor a packet sends a second initiation.
    expect(pair.a.handshake(pair.toB, T0 + 1)).toEqual([])
    const atB = pair.b.receive(initiation!, T0 + 2)
    const atA = pair.a.receive(atB.replies[0]!, T0 + 3)
    // Nothing was queued: the initiator confirms the keys with a keepalive (16 header + 0 + 16 tag).
    expect(atA.replies.map((r) => r.length)).toEqual([32])
    expect(pair.b.receive(atA.replies[0]!, T0 + 4).packets).toEqual([])
    const first = ipv4Packet(60, 1)
    const sent = pair.a.send(pair.toB, first, T0 + 5)
    expect(sent.map((m) => m[0])).toEqual([4])
    expect(pair.b.receive(sent[0]!, T0 + 6).packets).toEqual([first])
    // With a session that can send, handshake() does nothing.
    expect(pair.a.handshake(pair.toB, T0 + 7)).toEqual([])
  })

  it('handshake() for an unknown peer throws UnknownPeerError', () => {
    const pair = new Pair()
    expect(() => pair.a.handshake(999, T0)).toThrow(UnknownPeerError)
  })
})

describe('initiation replay protection (TAI64N)', () => {
  it('refuses a replayed initiation (equal timestamp)', () => {
    const pair = new Pair()
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    expect(pair.b.receive(initiation!, T0).replies).toHaveLength(1)
    const again = pair.b.receive(initiation!, T0 + 50)
    expect(again).toEqual({ packets: [], replies: [], dropped: 'stale-timestamp' })
    expect(pair.b.stats(pair.toA).drops['stale-timestamp']).toBe(1)
  })

  it('refuses an older initiation after a newer one', () => {
    const pair = new Pair()
    const [older] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    const retry = pair.a.poll(pair.a.nextEvent()!)
    expect(retry).toHaveLength(1)
    expect(pair.b.receive(retry[0]!.message, T0 + 6000).replies).toHaveLength(1)
    expect(pair.b.receive(older!, T0 + 6001).dropped).toBe('stale-timestamp')
  })

  it('refuses an initiation from a restarted peer whose clock says the same instant', () => {
    const pair = new Pair()
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    pair.b.receive(initiation!, T0)
    // Same key, same wall clock, same instant: an identical timestamp must not be accepted.
    const twin = new Tunnel({ privateKey: privateKeyFrom(11), random: seededRandom(99), wallClockOffset: WALL_CLOCK_OFFSET })
    expect(twin.publicKey).toEqual(pair.a.publicKey)
    const [twinInitiation] = twin.send(twin.addPeer({ publicKey: pair.b.publicKey }), ipv4Packet(20), T0)
    expect(pair.b.receive(twinInitiation!, T0 + 1).dropped).toBe('stale-timestamp')
    // One millisecond later it is newer and accepted.
    const later = new Tunnel({ privateKey: privateKeyFrom(11), random: seededRandom(98), wallClockOffset: WALL_CLOCK_OFFSET })
    const [laterInitiation] = later.send(later.addPeer({ publicKey: pair.b.publicKey }), ipv4Packet(20), T0 + 1)
    expect(pair.b.receive(laterInitiation!, T0 + 2).replies).toHaveLength(1)
  })
})

describe('session lifetime', () => {
  it('the initiator rekeys when sending at 120 s; the responder does not', () => {
    const pair = new Pair()
    pair.connect(T0)
    expect(pair.a.send(pair.toB, ipv4Packet(20), T0 + 119_999)).toHaveLength(1)
    expect(pair.b.send(pair.toA, ipv4Packet(20), T0 + 120_000)).toHaveLength(1)
    const sent = pair.a.send(pair.toB, ipv4Packet(20), T0 + 120_000)
    expect(sent.map((m) => m[0])).toEqual([4, 1])
    // The rekey completes and the old session stays usable for what was in flight.
    const inflight = pair.b.send(pair.toA, ipv4Packet(21), T0 + 120_001)[0]!
    const received = pair.deliver('a', [sent[1]!], T0 + 120_002)
    expect(received).toEqual({ a: [], b: [] })
    expect(pair.a.receive(inflight, T0 + 120_003).packets).toHaveLength(1)
    expect(pair.internalsA().current!.createdAt).toBe(T0 + 120_002)
    expect(pair.internalsB().current!.createdAt).toBe(T0 + 120_002)
    const fresh = pair.b.send(pair.toA, ipv4Packet(22), T0 + 120_004)
    expect(pair.a.receive(fresh[0]!, T0 + 120_005).packets).toHaveLength(1)
  })

  it('the initiator rekeys on receive once its session is 165 s old', () => {
    const pair = new Pair()
    pair.connect(T0)
    expect(pair.a.receive(pair.b.send(pair.toA, ipv4Packet(20), T0 + 164_999)[0]!, T0 + 164_999).replies).toEqual([])
    const atA = pair.a.receive(pair.b.send(pair.toA, ipv4Packet(20), T0 + 165_000)[0]!, T0 + 165_000)
    expect(atA.packets).toHaveLength(1)
    expect(atA.replies.map((m) => m[0])).toEqual([1])
  })

  it('after 180 s a session neither sends nor receives, and its keys are zeroed', () => {
    const pair = new Pair()
    pair.connect(T0)
    const late = pair.b.send(pair.toA, ipv4Packet(20), T0 + 179_999)
    expect(late).toHaveLength(1)
    const atA = pair.a.receive(late[0]!, T0 + 180_000)
    expect(atA.dropped).toBe('expired-session')
    expect(atA.packets).toEqual([])
    expect(pair.a.stats(pair.toB).drops['expired-session']).toBe(1)
    // Sending now queues the packet behind a new handshake instead of using the dead session.
    const sent = pair.b.send(pair.toA, ipv4Packet(20), T0 + 180_000)
    expect(sent.map((m) => m[0])).toEqual([1])
    expect(pair.internalsB().queuedPackets).toBe(1)
    const session = pair.internalsA().current!
    expect(pair.a.nextEvent()).toBeLessThanOrEqual(T0 + 180_000)
    pair.a.poll(T0 + 180_000)
    expect(session.isZeroed).toBe(true)
    expect(pair.internalsA().current).toBeUndefined()
  })

  it('rekeys after REKEY_AFTER_MESSAGES and stops at REJECT_AFTER_MESSAGES', () => {
    const pair = new Pair()
    pair.connect(T0)
    const session = pair.internalsA().current!
    session.setSendCounterForTesting(REKEY_AFTER_MESSAGES - 2n)
    const t = T0 + 10_000 // past the RekeyTimeout spacing since the first handshake
    expect(pair.a.send(pair.toB, ipv4Packet(20), t).map((m) => m[0])).toEqual([4])
    const sent = pair.a.send(pair.toB, ipv4Packet(20), t + 1)
    expect(sent.map((m) => m[0])).toEqual([4, 1])
    expect(readU32(sent[0]!, 8)).toBe(0xffffffff)
    expect(readU32(sent[0]!, 12)).toBe(0x0fffffff)
    expect(pair.b.receive(sent[0]!, t + 2).packets).toHaveLength(1)

    session.setSendCounterForTesting(REJECT_AFTER_MESSAGES - 1n)
    expect(pair.a.send(pair.toB, ipv4Packet(20), t + 3).map((m) => m[0])).toEqual([4])
    expect(pair.a.send(pair.toB, ipv4Packet(20), t + 4)).toEqual([]) // queued; the handshake is already pending
    expect(pair.internalsA().queuedPackets).toBe(1)
    // Traffic still arriving on the exhausted session must not flush the queue onto it.
    const atA = pair.a.receive(pair.b.send(pair.toA, ipv4Packet(20), t + 5)[0]!, t + 5)
    expect(atA.packets).toHaveLength(1)
    expect(atA.replies).toEqual([])
    expect(pair.internalsA().queuedPackets).toBe(1)
  })

  it('refuses a received counter at REJECT_AFTER_MESSAGES even when it authenticates', () => {
    const pair = new Pair()
    pair.connect(T0)
    const session = pair.internalsA().current!
    session.setSendCounterForTesting(REJECT_AFTER_MESSAGES)
    const forged = session.seal(ipv4Packet(20))
    expect(pair.b.receive(forged, T0 + 1).dropped).toBe('replayed')
  })
})

describe('keepalives', () => {
  it('sends a passive keepalive 10 s after receiving data when it has nothing to send', () => {
    const pair = new Pair()
    pair.connect(T0)
    pair.b.receive(pair.a.send(pair.toB, ipv4Packet(20), T0 + 100)[0]!, T0 + 100)
    expect(pair.b.nextEvent()).toBe(T0 + 10_100)
    expect(pair.b.poll(T0 + 10_099)).toEqual([])
    const out = pair.b.poll(T0 + 10_100)
    expect(out).toHaveLength(1)
    expect(out[0]!.peer).toBe(pair.toA)
    expect(out[0]!.message.length).toBe(32)
    const atA = pair.a.receive(out[0]!.message, T0 + 10_101)
    expect(atA).toEqual({ peer: pair.toB, packets: [], replies: [] })
    expect(pair.b.poll(T0 + 20_100)).toEqual([])
  })

  it('sends no passive keepalive when it answered with data', () => {
    const pair = new Pair()
    pair.connect(T0)
    pair.b.receive(pair.a.send(pair.toB, ipv4Packet(20), T0 + 100)[0]!, T0 + 100)
    pair.a.receive(pair.b.send(pair.toA, ipv4Packet(20), T0 + 200)[0]!, T0 + 200)
    expect(pair.b.poll(T0 + 10_100)).toEqual([])
  })

  it('persistent keepalive: handshake at once, then a keepalive every interval of silence, visible in nextEvent()', () => {
    const pair = new Pair({ persistentKeepaliveA: 25 })
    expect(pair.a.nextEvent()).toBe(0)
    const first = pair.a.poll(T0)
    expect(first.map((m) => m.message[0])).toEqual([1])
    pair.deliver('a', [first[0]!.message], T0)
    expect(pair.a.nextEvent()).toBe(T0 + 25_000)
    expect(pair.a.poll(T0 + 24_999)).toEqual([])
    const keepalive = pair.a.poll(T0 + 25_000)
    expect(keepalive.map((m) => m.message.length)).toEqual([32])
    expect(pair.a.nextEvent()).toBe(T0 + 50_000)
    // Traffic pushes the next keepalive back.
    pair.a.send(pair.toB, ipv4Packet(20), T0 + 40_000)
    expect(pair.a.nextEvent()).toBe(T0 + 55_000)
    expect(pair.b.nextEvent()).not.toBe(T0 + 25_000) // b has no persistent keepalive
  })
})

describe('handshake retries', () => {
  it('retries every 5 s plus up to 333 ms of jitter, gives up after 90 s and drops the queue', () => {
    const pair = new Pair()
    const sent = pair.a.send(pair.toB, ipv4Packet(20), T0)
    pair.a.send(pair.toB, ipv4Packet(21), T0 + 1)
    expect(sent).toHaveLength(1)
    const times = [T0]
    const initiations = [sent[0]!]
    for (;;) {
      const due = pair.a.nextEvent()!
      expect(pair.a.poll(due - 1)).toEqual([])
      const out = pair.a.poll(due)
      if (out.length === 0) break
      expect(out[0]!.message[0]).toBe(1)
      times.push(due)
      initiations.push(out[0]!.message)
    }
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(5_000)
      expect(gap).toBeLessThanOrEqual(5_333)
    }
    expect(new Set(gaps).size).toBeGreaterThan(1)
    expect(times.at(-1)! - T0).toBeLessThan(90_000)
    expect(times.length).toBeGreaterThanOrEqual(17)
    // Every retry is a fresh initiation: new sender index and ephemeral key.
    expect(new Set(initiations.map((m) => readU32(m, 4))).size).toBe(initiations.length)
    expect(pair.a.stats(pair.toB).drops['handshake-failed']).toBe(2)
    expect(pair.internalsA().queuedPackets).toBe(0)
    expect(pair.a.nextEvent()).toBeUndefined()
    // A later send starts over.
    expect(pair.a.send(pair.toB, ipv4Packet(20), T0 + 200_000).map((m) => m[0])).toEqual([1])
  })

  it('starts a new handshake when data sent gets no answer for 15 s', () => {
    const pair = new Pair()
    pair.connect(T0)
    pair.a.send(pair.toB, ipv4Packet(20), T0 + 30_000) // lost
    expect(pair.a.nextEvent()).toBe(T0 + 45_000)
    expect(pair.a.poll(T0 + 44_999)).toEqual([])
    expect(pair.a.poll(T0 + 45_000).map((m) => m.message[0])).toEqual([1])
  })

  it('does not start one when the peer answered', () => {
    const pair = new Pair()
    pair.connect(T0)
    pair.b.receive(pair.a.send(pair.toB, ipv4Packet(20), T0 + 30_000)[0]!, T0 + 30_000)
    const keepalive = pair.b.poll(T0 + 40_000)
    pair.a.receive(keepalive[0]!.message, T0 + 40_001)
    expect(pair.a.poll(T0 + 45_000)).toEqual([])
  })

  it('bounds the queue, dropping the oldest packets', () => {
    const pair = new Pair({ queueLimit: 3 })
    for (let i = 0; i < 5; i++) pair.a.send(pair.toB, ipv4Packet(20 + i), T0)
    expect(pair.a.stats(pair.toB).drops['queue-overflow']).toBe(2)
    const [initiation] = pair.a.poll(pair.a.nextEvent()!)
    const received = pair.deliver('a', [initiation!.message], T0 + 6_000)
    expect(received.b.map((p) => p.length)).toEqual([22, 23, 24])
  })
})

describe('simultaneous initiation', () => {
  it('resolves to working sessions when both initiations cross', () => {
    const pair = new Pair()
    const [fromA] = pair.a.send(pair.toB, ipv4Packet(30, 0xa), T0)
    const [fromB] = pair.b.send(pair.toA, ipv4Packet(31, 0xb), T0)
    const responseFromA = pair.a.receive(fromB!, T0 + 1).replies
    const responseFromB = pair.b.receive(fromA!, T0 + 1).replies
    const flushedByA = pair.a.receive(responseFromB[0]!, T0 + 2).replies
    const flushedByB = pair.b.receive(responseFromA[0]!, T0 + 2).replies
    expect(flushedByA.flatMap((m) => pair.b.receive(m, T0 + 3).packets).map((p) => p.length)).toEqual([30])
    expect(flushedByB.flatMap((m) => pair.a.receive(m, T0 + 3).packets).map((p) => p.length)).toEqual([31])
    for (let i = 0; i < 3; i++) {
      expect(pair.deliver('a', pair.a.send(pair.toB, ipv4Packet(40), T0 + 10 + i), T0 + 10 + i).b).toHaveLength(1)
      expect(pair.deliver('b', pair.b.send(pair.toA, ipv4Packet(41), T0 + 20 + i), T0 + 20 + i).a).toHaveLength(1)
    }
    expect(pair.a.drops).toEqual({})
    expect(pair.b.drops).toEqual({})
    // Nothing keeps retrying once both sides have sessions.
    pair.a.poll(T0 + 6_000)
    pair.b.poll(T0 + 6_000)
    expect(pair.a.poll(T0 + 12_000).filter((m) => m.message[0] === 1)).toEqual([])
  })

  it('resolves when one side confirms before the other sees its response', () => {
    const pair = new Pair()
    const [fromA] = pair.a.send(pair.toB, ipv4Packet(30), T0)
    const [fromB] = pair.b.send(pair.toA, ipv4Packet(31), T0)
    const responseFromB = pair.b.receive(fromA!, T0 + 1).replies
    const flushedByA = pair.a.receive(responseFromB[0]!, T0 + 2).replies
    // b learns of a's session through a's data before a even sees b's initiation.
    const atB = pair.b.receive(flushedByA[0]!, T0 + 3)
    expect(atB.packets).toHaveLength(1)
    const queuedFromB = atB.replies
    expect(pair.a.receive(queuedFromB[0]!, T0 + 4).packets.map((p) => p.length)).toEqual([31])
    // The late crossing initiation still gets a normal answer and nothing breaks.
    const lateResponse = pair.a.receive(fromB!, T0 + 5).replies
    pair.deliver('a', lateResponse, T0 + 6)
    expect(pair.deliver('a', pair.a.send(pair.toB, ipv4Packet(50), T0 + 7), T0 + 7).b).toHaveLength(1)
    expect(pair.deliver('b', pair.b.send(pair.toA, ipv4Packet(51), T0 + 8), T0 + 8).a).toHaveLength(1)
  })
})

describe('cookies under load', () => {
  it('answers with a cookie reply, then accepts the retry that carries MAC2', () => {
    const pair = new Pair()
    const source = new Uint8Array([192, 0, 2, 1, 0x30, 0x39])
    pair.b.underLoad = true
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    expect(initiation!.subarray(132).every((b) => b === 0)).toBe(true)
    const refused = pair.b.receive(initiation!, T0, source)
    expect(refused.dropped).toBe('bad-mac2')
    expect(refused.replies).toHaveLength(1)
    expect(refused.replies[0]!.length).toBe(64)
    expect(pair.b.drops['bad-mac2']).toBe(1)
    expect(pair.b.stats(pair.toA).lastHandshake).toBeUndefined()

    expect(pair.a.receive(refused.replies[0]!, T0 + 1)).toEqual({ packets: [], replies: [] })
    expect(pair.internalsA().cookies.hasCookie(T0 + 1)).toBe(true)
    // A second copy of the reply no longer matches an outstanding MAC1.
    expect(pair.a.receive(refused.replies[0]!, T0 + 1).dropped).toBe('decrypt-failed')
    const [retry] = pair.a.poll(pair.a.nextEvent()!)
    expect(retry!.message.subarray(132).some((b) => b !== 0)).toBe(true)
    // The cookie is bound to the source address.
    expect(pair.b.receive(retry!.message, T0 + 5_400, new Uint8Array([192, 0, 2, 2, 0x30, 0x39])).dropped).toBe('bad-mac2')
    const accepted = pair.b.receive(retry!.message, T0 + 5_400, source)
    expect(accepted.dropped).toBeUndefined()
    expect(accepted.replies[0]!.length).toBe(92)
    const data = pair.a.receive(accepted.replies[0]!, T0 + 5_401, source).replies
    expect(pair.b.receive(data[0]!, T0 + 5_402, source).packets).toHaveLength(1)
  })

  it('an initiator under load sends the responder a cookie for its response', () => {
    const pair = new Pair()
    pair.a.underLoad = true
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    const [response] = pair.b.receive(initiation!, T0).replies
    const refused = pair.a.receive(response!, T0)
    expect(refused.dropped).toBe('bad-mac2')
    expect(refused.replies[0]!.length).toBe(64)
    expect(pair.b.receive(refused.replies[0]!, T0)).toEqual({ packets: [], replies: [] })
    expect(pair.internalsB().cookies.hasCookie(T0)).toBe(true)
    // a retries; b's answer now carries MAC2 and gets through.
    const [retry] = pair.a.poll(pair.a.nextEvent()!)
    const now = T0 + 5_400
    const [secondResponse] = pair.b.receive(retry!.message, now).replies
    const accepted = pair.a.receive(secondResponse!, now)
    expect(accepted.dropped).toBeUndefined()
    expect(pair.b.receive(accepted.replies[0]!, now).packets).toHaveLength(1)
  })

  it('under load, answers a flood of MAC1-valid initiations from one source 5 + 20/s times, not once each, and still serves other sources', () => {
    const pair = new Pair()
    const flooder = new Uint8Array([198, 51, 100, 7, 0x30, 0x39])
    const honest = new Uint8Array([192, 0, 2, 1, 0x30, 0x39])
    pair.b.underLoad = true
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    let replies = 0
    // 1000 copies a second for 2 s: every member knows b's public key, so each carries a valid MAC1.
    for (let i = 0; i < 2000; i++) replies += pair.b.receive(initiation!, T0 + i, flooder).replies.length
    expect(replies).toBe(5 + 2 * 20 - 1)
    expect(pair.b.drops['rate-limited']).toBe(2000 - replies)
    expect(pair.b.receive(initiation!, T0 + 2000, honest).replies).toHaveLength(1)
    // Not under load, nothing is rate limited.
    pair.b.underLoad = false
    expect(pair.b.receive(initiation!, T0 + 2000, flooder).dropped).not.toBe('rate-limited')
  })

  it('does not demand MAC2 when not under load', () => {
    const pair = new Pair()
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    expect(pair.b.receive(initiation!, T0).replies[0]!.length).toBe(92)
  })
})

describe('preshared keys', () => {
  it('works when both sides share the key', () => {
    const psk = new Uint8Array(32).fill(7)
    const pair = new Pair({ presharedKeyA: psk, presharedKeyB: psk })
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    expect(pair.deliver('a', [initiation!], T0).b).toHaveLength(1)
  })

  it('fails the handshake when the keys differ', () => {
    const pair = new Pair({ presharedKeyA: new Uint8Array(32).fill(7), presharedKeyB: new Uint8Array(32).fill(8) })
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    const response = pair.b.receive(initiation!, T0).replies
    expect(response).toHaveLength(1)
    const atA = pair.a.receive(response[0]!, T0)
    expect(atA.dropped).toBe('decrypt-failed')
    expect(atA.replies).toEqual([])
    expect(pair.a.stats(pair.toB).drops['decrypt-failed']).toBe(1)
    expect(pair.internalsA().current).toBeUndefined()
    expect(pair.internalsA().queuedPackets).toBe(1)
  })

  it('fails when only one side has a key', () => {
    const pair = new Pair({ presharedKeyA: new Uint8Array(32).fill(7) })
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    expect(pair.a.receive(pair.b.receive(initiation!, T0).replies[0]!, T0).dropped).toBe('decrypt-failed')
  })
})

describe('peers and bad input', () => {
  it('manages peers by id and key', () => {
    const pair = new Pair()
    expect(pair.a.peerByKey(pair.b.publicKey)).toBe(pair.toB)
    expect(pair.a.peerByKey(new Uint8Array(32).fill(1))).toBeUndefined()
    expect(() => pair.a.addPeer({ publicKey: pair.b.publicKey })).toThrow(/already/)
    expect(() => pair.a.addPeer({ publicKey: pair.a.publicKey })).toThrow(/own public key/)
    expect(() => pair.a.addPeer({ publicKey: new Uint8Array(31) })).toThrow(/32-byte/)
    expect(() => pair.a.addPeer({ publicKey: new Uint8Array(32) })).toThrow(WeakKeyError)
    expect(() => pair.a.addPeer({ publicKey: privateKeyFrom(5), presharedKey: new Uint8Array(3) })).toThrow(/preshared key must be 32 bytes/)
    expect(() => new Tunnel({ privateKey: new Uint8Array(16) })).toThrow(/32 bytes/)
    pair.connect(T0)
    const [data] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    pair.b.removePeer(pair.toA)
    expect(pair.b.peerByKey(pair.a.publicKey)).toBeUndefined()
    expect(pair.b.receive(data!, T0).dropped).toBe('unknown-index')
    expect(() => pair.b.send(pair.toA, ipv4Packet(20), T0)).toThrow(UnknownPeerError)
    expect(() => pair.b.stats(pair.toA)).toThrow(/no peer with id/)
    expect(pair.b.nextEvent()).toBeUndefined()
  })

  it('drops an initiation from an unknown key and one with a low-order ephemeral key', () => {
    const pair = new Pair()
    const stranger = new Tunnel({ privateKey: privateKeyFrom(77), random: seededRandom(78) })
    const [initiation] = stranger.send(stranger.addPeer({ publicKey: pair.b.publicKey }), ipv4Packet(20), T0)
    expect(pair.b.receive(initiation!, T0).dropped).toBe('unknown-peer')
    expect(pair.b.drops['unknown-peer']).toBe(1)

    const [genuine] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    const lowOrder = genuine!.slice()
    lowOrder.fill(0, 8, 40) // ephemeral = 0, a low-order point
    new CookieJar(pair.b.publicKey).stamp(lowOrder, T0)
    expect(pair.b.receive(lowOrder, T0).dropped).toBe('weak-key')
    expect(pair.b.drops['weak-key']).toBe(1)
    expect(pair.b.receive(genuine!, T0).replies).toHaveLength(1)
  })

  it('counts garbage, unknown types and bad MAC1 at the tunnel', () => {
    const pair = new Pair()
    expect(pair.b.receive(new Uint8Array([1, 0]), T0).dropped).toBe('malformed')
    expect(pair.b.receive(new Uint8Array([9, 0, 0, 0, 1, 2]), T0).dropped).toBe('unknown-type')
    expect(pair.b.receive(new Uint8Array(147).fill(0).fill(1, 0, 1), T0).dropped).toBe('malformed')
    const [initiation] = pair.a.send(pair.toB, ipv4Packet(20), T0)
    initiation![50]! ^= 1
    expect(pair.b.receive(initiation!, T0).dropped).toBe('bad-mac1')
    expect(pair.b.drops).toEqual({ malformed: 2, 'unknown-type': 1, 'bad-mac1': 1 })
  })
})
