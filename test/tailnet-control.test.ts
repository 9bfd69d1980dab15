// Burrow's ts2021 control client against a real Headscale v0.29.2 on loopback: register with a
// pre-auth key, stream the map and find ourselves in it, over both transports (HTTP Upgrade and
// WebSocket), and the refusals each surface as a clear BurrowError.
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { BurrowError } from '../src/burrow-errors.ts'
import { formatNodeKey, generateKeyPair, toHex } from '../src/crypto/index.ts'
import { TailnetControlClient, type MapPollState } from '../src/control/tailnet/client.ts'
import { webSocketDialer, type Ts2021Dialer, type WebSocketConstructor } from '../src/control/tailnet/dial.ts'
import { httpUpgradeDialer } from '../src/control/tailnet/dial-node.ts'
import type { MapResponse } from '../src/control/tailnet/tailcfg.ts'
import type { NodeKeyText } from '../src/control/tailnet/tailcfg-requests.ts'
import { LoopbackHeadscale } from './helpers/headscale.ts'

const hasGo = spawnSync('go', ['version']).status === 0
let headscale: LoopbackHeadscale
let authKey = ''
const clients: TailnetControlClient[] = []

beforeAll(async () => {
  headscale = await LoopbackHeadscale.start()
  authKey = await headscale.createAuthKey(await headscale.createUser('burrow'))
}, 600_000)
afterAll(async () => {
  for (const c of clients) c.close()
  await headscale?.stop()
})

const dialers: Array<[string, () => Ts2021Dialer]> = [
  ['HTTP Upgrade', () => httpUpgradeDialer()],
  ['WebSocket', () => webSocketDialer(WebSocket as unknown as WebSocketConstructor)],
]

function client(dialer: Ts2021Dialer, extra: Partial<ConstructorParameters<typeof TailnetControlClient>[0]> = {}): TailnetControlClient {
  const c = new TailnetControlClient({ controlURL: headscale.controlURL, machinePrivate: generateKeyPair().privateKey, dialer, ...extra })
  clients.push(c)
  return c
}

async function rejection(promise: Promise<unknown>): Promise<BurrowError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(BurrowError)
    if (process.env.SHOW_ERRORS) console.log((error as BurrowError).code, (error as Error).message)
    return error as BurrowError
  }
  throw new Error('expected a BurrowError')
}

async function waitFor(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 50))
  }
}

function firstMessages(c: TailnetControlClient, nodeKey: NodeKeyText, hostname: string, until: (m: MapResponse[]) => boolean): Promise<MapResponse[]> {
  return new Promise((resolve, reject) => {
    const messages: MapResponse[] = []
    const poll = c.pollMap({
      request: () => ({
        NodeKey: nodeKey,
        DiscoKey: `discokey:${toHex(generateKeyPair().publicKey)}`,
        Hostinfo: { Hostname: hostname, OS: 'linux', NetInfo: { PreferredDERP: 900 } },
        Endpoints: [],
      }),
      onMessage: (m) => {
        messages.push(m)
        if (until(messages)) {
          poll.stop()
          resolve(messages)
        }
      },
      onState: (state: MapPollState, detail) => {
        if (state === 'failed') reject(detail?.error)
      },
    })
  })
}

describe.skipIf(!hasGo)('tailnet control client against Headscale v0.29.2', () => {
  for (const [name, dialer] of dialers) {
    it(`${name}: registers with a pre-auth key and the map stream's first message carries our node, then a peer joins`, async () => {
      const c = client(dialer())
      const nodeKey = formatNodeKey(generateKeyPair().publicKey) as NodeKeyText
      const hostname = `burrow-${name === 'WebSocket' ? 'ws' : 'up'}`
      const registered = await c.registerWithAuthKey({ NodeKey: nodeKey, Hostinfo: { Hostname: hostname, OS: 'linux', NetInfo: { PreferredDERP: 900 } } }, authKey)
      expect(registered.MachineAuthorized).toBe(true)
      // A second node registers while we stream: we must see it arrive as a peer.
      const other = client(dialer())
      const otherKey = formatNodeKey(generateKeyPair().publicKey) as NodeKeyText
      let joined = false
      const messages = await firstMessages(c, nodeKey, hostname, (ms) => {
        if (ms.length === 1 && !joined) {
          joined = true
          void other
            .registerWithAuthKey({ NodeKey: otherKey, Hostinfo: { Hostname: `${hostname}-peer`, OS: 'linux' } }, authKey)
            .then(() => firstMessages(other, otherKey, `${hostname}-peer`, () => true))
        }
        return ms.some((m) => [...(m.Peers ?? []), ...(m.PeersChanged ?? [])].some((p) => p['Key'] === otherKey))
      })
      const self = messages[0]!.Node!
      expect(self['Key']).toBe(nodeKey)
      expect(self['Machine']).toBe(c.machineKey)
      expect(String(self['Name'])).toContain(hostname)
      expect((self['Addresses'] as string[]).some((a) => a.startsWith('100.'))).toBe(true)
      expect(messages[0]!.DERPMap).toBeDefined()
      // A lite update (Hostinfo change) is a 200 with no body.
      await c.liteUpdate({ NodeKey: nodeKey, Hostinfo: { Hostname: hostname, OS: 'linux', NetInfo: { PreferredDERP: 900 } } })
    })
  }

  it('interactive login: the AuthURL is handed over, `headscale auth register` approves it, the Followup poll returns authorized', async () => {
    const c = client(httpUpgradeDialer())
    const nodeKey = formatNodeKey(generateKeyPair().publicKey) as NodeKeyText
    const shown: string[] = []
    const response = await c.login({ NodeKey: nodeKey, Hostinfo: { Hostname: 'burrow-interactive', OS: 'linux' } }, (url) => {
      shown.push(url)
      const authId = new URL(url).pathname.split('/').pop()!
      void headscale.cli(['auth', 'register', '--auth-id', authId, '--user', 'burrow'])
    })
    expect(shown).toHaveLength(1)
    expect(shown[0]).toContain(`${headscale.controlURL}/register/`)
    expect(response.MachineAuthorized).toBe(true)
    const nodes = JSON.parse(await headscale.cli(['nodes', 'list', '-o', 'json'])) as Array<{ name: string }>
    expect(nodes.map((n) => n.name)).toContain('burrow-interactive')
  })

  it('logout (a register request with a past Expiry) expires the node in Headscale', async () => {
    const c = client(httpUpgradeDialer())
    const nodeKey = formatNodeKey(generateKeyPair().publicKey) as NodeKeyText
    await c.registerWithAuthKey({ NodeKey: nodeKey, Hostinfo: { Hostname: 'burrow-logout', OS: 'linux' } }, authKey)
    await c.logout(nodeKey)
    const nodes = JSON.parse(await headscale.cli(['nodes', 'list', '-o', 'json'])) as Array<{ name: string; expiry?: { seconds?: number | string } }>
    const node = nodes.find((n) => n.name === 'burrow-logout')!
    expect(Number(node.expiry?.seconds ?? Infinity) * 1000).toBeLessThan(Date.now())
  })

  it('the map stream survives Headscale being killed and down for 2 s: refused redials keep retrying, then a full map again', async () => {
    const c = client(httpUpgradeDialer())
    const nodeKey = formatNodeKey(generateKeyPair().publicKey) as NodeKeyText
    await c.registerWithAuthKey({ NodeKey: nodeKey, Hostinfo: { Hostname: 'burrow-restart', OS: 'linux' } }, authKey)
    const withNode: MapResponse[] = []
    const states: MapPollState[] = []
    const poll = c.pollMap({
      request: () => ({ NodeKey: nodeKey, DiscoKey: `discokey:${toHex(generateKeyPair().publicKey)}`, Hostinfo: { Hostname: 'burrow-restart', OS: 'linux' }, Endpoints: [] }),
      onMessage: (m) => m.Node && withNode.push(m),
      onState: (s) => states.push(s),
    })
    try {
      await waitFor(() => withNode.length === 1)
      // Down long enough that the first redials are refused: those must back off, not give up.
      await headscale.restart(2_000)
      await waitFor(() => withNode.length === 2, 60_000)
      expect(states).toContain('reconnecting')
      expect(states).not.toContain('failed')
      expect(withNode[1]!.Node!['Key']).toBe(nodeKey)
    } finally {
      poll.stop()
    }
  })

  it('a wrong auth key is BurrowError unauthorized naming the refusal, and the client still registers with the right one', async () => {
    const c = client(httpUpgradeDialer())
    // Well-formed (a real key with its secret part changed), so it is refused as a key, not as syntax.
    const forged = authKey.slice(0, -6) + (authKey.endsWith('aaaaaa') ? 'bbbbbb' : 'aaaaaa')
    const error = await rejection(c.registerWithAuthKey({ NodeKey: formatNodeKey(generateKeyPair().publicKey) as NodeKeyText }, forged))
    expect(error.code).toBe('unauthorized')
    expect(error.message).toMatch(/auth key/i)
    // Nothing else is disturbed: the same client (and connection) registers with the right key.
    const ok = await c.registerWithAuthKey({ NodeKey: formatNodeKey(generateKeyPair().publicKey) as NodeKeyText, Hostinfo: { Hostname: 'burrow-after-refusal' } }, authKey)
    expect(ok.MachineAuthorized).toBe(true)
  })

  for (const [name, dialer] of dialers) {
    it(`${name}: a pinned control key the server does not hold is BurrowError control-key`, async () => {
      const c = client(dialer(), { controlKey: `mkey:${toHex(generateKeyPair().publicKey)}` })
      const error = await rejection(c.register({ NodeKey: formatNodeKey(generateKeyPair().publicKey) as NodeKeyText }))
      expect(error.code).toBe('control-key')
      expect(error.message).toMatch(/mkey:/)
    })

    it(`${name}: an unsupported capability version is BurrowError unsupported-version`, async () => {
      const c = client(dialer(), { capabilityVersion: 90 })
      const error = await rejection(c.register({ NodeKey: formatNodeKey(generateKeyPair().publicKey) as NodeKeyText }))
      expect(error.code).toBe('unsupported-version')
      expect(error.message).toMatch(/90|version/)
    })
  }
})
