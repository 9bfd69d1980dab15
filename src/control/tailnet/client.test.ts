// TailnetControlClient against an in-memory control server: our controlbase responder in front
// of Node's own HTTP/2 server (nghttp2), so the server side speaks real HTTP/2. Each test scripts
// what /machine/map sends: garbled messages, zstd, silence (watchdog), early payloads.
import { afterEach, describe, expect, it } from 'vitest'
import { BurrowError } from '../../burrow-errors.ts'
import { fromHex, generateKeyPair, toHex } from '../../crypto/index.ts'
import { ManualClock, type DriverClock } from '../../clock/clock.ts'
import { MAP_WATCHDOG_MS, TailnetControlClient, type MapPollState } from './client.ts'
import type { Ts2021Dialer } from './dial.ts'
import type { MapResponse } from './tailcfg.ts'
import { fakeControl, fakeControlKey as control, frameMessage } from './testing/fake-control.ts'

// `zstd --no-check` of {"KeepAlive":false,"Domain":"zstd.example"}: one frame, as Go's zstdframe writes.
const ZSTD_MESSAGE = fromHex('28b52ffd202b5901007b224b656570416c697665223a66616c73652c22446f6d61696e223a227a7374642e6578616d706c65227d')

/** Moves a ManualClock forward by `ms`, firing every timer it passes, in order. */
function advance(clock: ManualClock, ms: number): void {
  const to = clock.now() + ms
  while (clock.fireNext(to));
  clock.set(to)
}

const clients: TailnetControlClient[] = []
afterEach(() => {
  for (const c of clients.splice(0)) c.close()
})
function client(dialer: Ts2021Dialer, clock?: DriverClock): TailnetControlClient {
  const c = new TailnetControlClient({
    controlURL: 'http://control.test',
    machinePrivate: generateKeyPair().privateKey,
    controlKey: `mkey:${toHex(control.publicKey)}`,
    dialer,
    random: () => 0.5,
    ...(clock ? { clock } : {}),
  })
  clients.push(c)
  return c
}
const mapRequest = () => ({ NodeKey: `nodekey:${'11'.repeat(32)}` as const, DiscoKey: `discokey:${'22'.repeat(32)}` as const })
const until = (check: () => boolean): Promise<void> =>
  new Promise((resolve) => {
    const tick = (): void => (check() ? resolve() : void setTimeout(tick, 5))
    tick()
  })

describe('TailnetControlClient (in-memory control over real HTTP/2)', () => {
  it('register sends Version and our fields over ts2021 and skips an early payload', async () => {
    let seen: unknown
    const { dialer } = fakeControl(
      (stream, headers, body) => {
        seen = { path: headers[':path'], method: headers[':method'], body }
        stream.respond({ ':status': 200, 'content-type': 'application/json' })
        stream.end(JSON.stringify({ MachineAuthorized: true, User: { ID: 1 } }))
      },
      { earlyPayload: true },
    )
    const response = await client(dialer).registerWithAuthKey({ NodeKey: `nodekey:${'11'.repeat(32)}` }, 'hskey-auth-x')
    expect(response.MachineAuthorized).toBe(true)
    expect(seen).toEqual({ path: '/machine/register', method: 'POST', body: { Version: 130, NodeKey: `nodekey:${'11'.repeat(32)}`, Auth: { AuthKey: 'hskey-auth-x' } } })
  })

  it('interactive login hands the AuthURL to the app, then long-polls with Followup until authorized', async () => {
    const bodies: Array<Record<string, unknown>> = []
    const { dialer } = fakeControl((stream, _h, body) => {
      bodies.push(body as Record<string, unknown>)
      stream.respond({ ':status': 200 })
      if (!(body as { Followup?: string }).Followup) stream.end(JSON.stringify({ AuthURL: 'http://control.test/register/abc' }))
      else setTimeout(() => stream.end(JSON.stringify({ MachineAuthorized: true })), 50) // the user logs in
    })
    const shown: string[] = []
    const response = await client(dialer).login({ NodeKey: `nodekey:${'11'.repeat(32)}` }, (url) => shown.push(url))
    expect(shown).toEqual(['http://control.test/register/abc'])
    expect(response.MachineAuthorized).toBe(true)
    expect(bodies[1]!['Followup']).toBe('http://control.test/register/abc')
  })

  it('logout is a register request whose Expiry is in the past', async () => {
    let body: Record<string, unknown> = {}
    const { dialer } = fakeControl((stream, _h, b) => {
      body = b as Record<string, unknown>
      stream.respond({ ':status': 200 })
      stream.end('{}')
    })
    await client(dialer).logout(`nodekey:${'11'.repeat(32)}`)
    expect(Date.parse(body['Expiry'] as string)).toBeLessThan(Date.now())
  })

  it('the map stream delivers length-framed messages in order, decodes a zstd one, and counts keep-alives apart', async () => {
    let request: Record<string, unknown> = {}
    const { dialer } = fakeControl((stream, _h, body) => {
      request = body as Record<string, unknown>
      stream.respond({ ':status': 200 })
      const first = frameMessage(JSON.stringify({ Node: { ID: 1 }, Peers: [] }))
      // Split across writes at awkward places: framing must not depend on DATA boundaries.
      stream.write(first.subarray(0, 2))
      stream.write(Buffer.concat([first.subarray(2), frameMessage('{"KeepAlive":true}'), frameMessage(ZSTD_MESSAGE).subarray(0, 7)]))
      stream.write(frameMessage(ZSTD_MESSAGE).subarray(7))
    })
    const messages: MapResponse[] = []
    let keepAlives = 0
    const poll = client(dialer).pollMap({ request: mapRequest, onMessage: (m) => messages.push(m), onKeepAlive: () => keepAlives++ })
    await until(() => messages.length === 2)
    poll.stop()
    expect(messages).toEqual([
      { Node: { ID: 1 }, Peers: [] },
      { KeepAlive: false, Domain: 'zstd.example' },
    ])
    expect(keepAlives).toBe(1)
    expect(request).toMatchObject({ Version: 130, Stream: true, KeepAlive: true, Compress: '', DiscoKey: `discokey:${'22'.repeat(32)}` })
  })

  it('a garbled map message is reported as BurrowError protocol and only the stream is reopened, on the same connection', async () => {
    let calls = 0
    const fake = fakeControl((stream) => {
      calls++
      stream.respond({ ':status': 200 })
      if (calls === 1) stream.write(frameMessage('{"Node": not json'))
      else stream.write(frameMessage('{"Node":{"ID":2}}'))
    })
    const states: Array<[MapPollState, BurrowError | undefined]> = []
    const messages: MapResponse[] = []
    const poll = client(fake.dialer).pollMap({ request: mapRequest, onMessage: (m) => messages.push(m), onState: (s, d) => states.push([s, d?.error]) })
    await until(() => messages.length === 1)
    poll.stop()
    // Only the stream was reopened; the connection (and anything else on it) carried on.
    expect(fake.dials()).toBe(1)
    const reported = states.find(([s]) => s === 'reconnecting')![1]!
    expect(reported).toBeInstanceOf(BurrowError)
    expect(reported.code).toBe('protocol')
    expect(reported.message).toMatch(/garbled map message/)
    expect(messages).toEqual([{ Node: { ID: 2 } }])
  })

  it('a length prefix over the limit is a garbled stream, not an allocation', async () => {
    const { dialer } = fakeControl((stream) => {
      stream.respond({ ':status': 200 })
      stream.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))
    })
    const errors: BurrowError[] = []
    const poll = client(dialer).pollMap({ request: mapRequest, onMessage: () => {}, onState: (s, d) => s === 'reconnecting' && d?.error && errors.push(d.error) })
    await until(() => errors.length > 0)
    poll.stop()
    expect(errors[0]!.code).toBe('protocol')
    expect(errors[0]!.message).toMatch(/exceeds/)
  })

  it('120 s without a message (keep-alives included) drops the connection and redials', async () => {
    const clock = new ManualClock()
    let streams = 0
    const fake = fakeControl((stream) => {
      streams++
      stream.respond({ ':status': 200 })
      stream.write(frameMessage(`{"Node":{"ID":${streams}}}`))
      // …then silence.
    })
    const messages: MapResponse[] = []
    const states: MapPollState[] = []
    const poll = client(fake.dialer, clock).pollMap({ request: mapRequest, onMessage: (m) => messages.push(m), onState: (s) => states.push(s) })
    await until(() => messages.length === 1)
    advance(clock, MAP_WATCHDOG_MS - 1)
    expect(states).not.toContain('reconnecting')
    advance(clock, 1)
    expect(states).toContain('reconnecting')
    advance(clock, 30_000) // past any backoff
    await until(() => messages.length === 2)
    poll.stop()
    expect(fake.dials()).toBe(2)
  })

  it('a 4xx answer to the map request stops the poll with a BurrowError naming the status', async () => {
    const { dialer } = fakeControl((stream) => {
      stream.respond({ ':status': 401 })
      stream.end('node not found')
    })
    const failed = await new Promise<BurrowError>((resolve) => {
      client(dialer).pollMap({ request: mapRequest, onMessage: () => {}, onState: (s, d) => s === 'failed' && resolve(d!.error!) })
    })
    expect(failed.code).toBe('unauthorized')
    expect(failed.status).toBe(401)
    expect(failed.message).toMatch(/node not found/)
  })

  it('a lite update is a non-streaming map request with OmitPeers', async () => {
    let body: Record<string, unknown> = {}
    const { dialer } = fakeControl((stream, _h, b) => {
      body = b as Record<string, unknown>
      stream.respond({ ':status': 200 })
      stream.end()
    })
    await client(dialer).liteUpdate({ NodeKey: `nodekey:${'11'.repeat(32)}`, Hostinfo: { NetInfo: { PreferredDERP: 7 } } })
    expect(body).toMatchObject({ Stream: false, OmitPeers: true, Hostinfo: { NetInfo: { PreferredDERP: 7 } } })
  })

  it('several requests share one connection concurrently', async () => {
    const fake = fakeControl((stream, headers) => {
      stream.respond({ ':status': 200 })
      setTimeout(() => stream.end(JSON.stringify({ path: headers[':path'] })), 20)
    })
    const c = client(fake.dialer)
    const answers = await Promise.all([1, 2, 3].map(() => c.roundTrip('/machine/register', {})))
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200])
    expect(fake.dials()).toBe(1)
  })
})
