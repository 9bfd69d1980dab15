// A Burrow Node peer in a live Headscale tailnet whose membership changes under it: tailscaled
// nodes join, rename, go offline and back, log out and are deleted, Headscale itself is killed and
// restarted in the middle of a transfer, and the DERP map loses the region the Burrow node calls
// home. Everything is real: Headscale v0.29.2, tailscaled/derper v1.102.5 and `burrow relay` as a
// second DERP region, in a network namespace this file creates. Conditions are polled for (the
// latency is measured in bench/tailnet.bench.ts, never asserted here).
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Burrow, type BurrowPeer } from '../src/node.ts'
import { DERP_REGION_ID, hasGo, SECOND_DERP_REGION_ID, Tailnet, type TailscaledNode, waitUntil } from './helpers/tailnet.ts'

const isRoot = process.getuid?.() === 0
const BLOB_BYTES = 32 * 1024 * 1024
/** Headscale and tailscaled settle in seconds; a loaded shared machine may take much longer. */
const SETTLE_MS = 120_000

describe.skipIf(!hasGo || !isRoot)('a Burrow Node peer follows a changing Headscale tailnet (derper region 900, burrow relay region 901)', () => {
  let tailnet: Tailnet | undefined
  let alpha: TailscaledNode
  let burrow: Burrow | undefined
  let blobSha = ''
  const states: string[] = []

  const peer = (hostname: string): BurrowPeer | undefined => burrow!.peers().find((p) => p.hostname === hostname)

  beforeAll(async () => {
    tailnet = await Tailnet.start({ derp: 'derper', secondDerp: 'burrow' })
    alpha = await tailnet.addNode({ hostname: 'alpha' })
    const blob = randomBytes(BLOB_BYTES)
    blobSha = createHash('sha256').update(blob).digest('hex')
    writeFileSync(join(tailnet.dir, 'blob'), blob)
    // Userspace tailscaled forwards connections to its tailnet address to the same port on its own 127.0.0.1.
    tailnet.serveFiles()
    burrow = await Burrow.start({
      ...(await tailnet.burrowJoin('burrow')),
      // This file follows churn from a known home; the latency choice has its own test below.
      homeRegion: DERP_REGION_ID,
    })
    burrow.addEventListener('state', (event) => states.push((event as unknown as { state: string }).state))
    await waitUntil('burrow to see alpha online', () => peer('alpha')?.online, SETTLE_MS)
  }, 900_000)

  afterAll(async () => {
    await burrow?.close()
    await tailnet?.stop()
  })

  it('the node reports as PreferredDERP the region whose relay it holds: Headscale records 900 and tailscaled sees it homed in lab', async () => {
    expect(new URL(burrow!.relayURL).port).toBe(new URL(tailnet!.derpRegions.find((r) => r.id === DERP_REGION_ID)!.url).port)
    // Headscale's record (its node store; `headscale nodes list -o json` does not show Hostinfo) …
    await waitUntil('Headscale to hold PreferredDERP 900 for burrow', async () => (await tailnet!.preferredDERP('burrow')) === DERP_REGION_ID, SETTLE_MS)
    // … and tailscaled's view of the peer, which is where it sends to it.
    const seen = await waitUntil('alpha to see burrow homed in lab', async () => ((await alpha.peer('burrow'))?.Relay === 'lab' ? true : undefined), SETTLE_MS)
    expect(seen).toBe(true)
  })

  it('without homeRegion a node probes every region of the DERP map, homes in the one it measured fastest and reports exactly that as PreferredDERP', async () => {
    const other = await Burrow.start(await tailnet!.burrowJoin('burrow-probe'))
    try {
      const home = other.homeRelay!
      expect(Object.keys(home.latencies).map(Number).sort()).toEqual([DERP_REGION_ID, SECOND_DERP_REGION_ID].sort())
      const measured = Object.entries(home.latencies).filter((entry): entry is [string, number] => entry[1] !== null)
      expect(measured.length).toBeGreaterThan(0)
      const fastest = Math.min(...measured.map(([, ms]) => ms))
      expect(home.latencies[home.region]).toBe(fastest)
      await waitUntil(`Headscale to hold PreferredDERP ${home.region} for burrow-probe`, async () => (await tailnet!.preferredDERP('burrow-probe')) === home.region, SETTLE_MS)
    } finally {
      await other.close()
    }
  })

  it('a third tailscaled node that joins appears in peers(), online, with the address Headscale gave it', async () => {
    const charlie = await tailnet!.addNode({ hostname: 'charlie' })
    const seen = await waitUntil('charlie in peers()', () => (peer('charlie')?.online ? peer('charlie') : undefined), SETTLE_MS)
    expect(seen.addresses[0]).toBe(await charlie.ipv4())
    expect(peer('alpha')?.online).toBe(true)
  })

  it('`tailscale set --hostname` renames the peer in peers(): same node key, new name, the old name gone', async () => {
    const before = peer('charlie')!
    const charlie = await nodeNamed('charlie')
    await charlie.tailscale(['set', '--hostname', 'charlie-renamed'])
    const renamed = await waitUntil('charlie-renamed in peers()', () => peer('charlie-renamed'), SETTLE_MS)
    expect(renamed.nodeKey).toBe(before.nodeKey)
    expect(renamed.addresses).toEqual(before.addresses)
    expect(peer('charlie')).toBeUndefined()
    // The new MagicDNS name resolves to it: a ping by name reaches the renamed tailscaled.
    expect(await burrow!.ping('charlie-renamed', { timeout: 20_000 })).toBeGreaterThanOrEqual(0)
  })

  it('`tailscale down` turns the peer offline in peers() and `tailscale up` online again (online change from control)', async () => {
    const charlie = await nodeNamed('charlie')
    await charlie.tailscale(['down'])
    await waitUntil('charlie-renamed offline in peers()', () => peer('charlie-renamed')?.online === false, SETTLE_MS)
    // Offline is not gone: the peer stays listed with its key and addresses.
    expect(peer('charlie-renamed')!.addresses[0]).toMatch(/^100\./)
    // `tailscale up` again must repeat every non-default flag (tailscale's own rule).
    await charlie.tailscale(['up', `--login-server=${tailnet!.controlURL}`, '--hostname=charlie-renamed', '--accept-dns=false'], 60_000)
    await waitUntil('charlie-renamed online again in peers()', () => peer('charlie-renamed')?.online === true, SETTLE_MS)
  })

  it('`tailscale logout` removes the peer from peers() (Headscale expires its key; expired peers are unreachable)', async () => {
    const charlie = await nodeNamed('charlie')
    const nodeKey = peer('charlie-renamed')!.nodeKey
    await charlie.tailscale(['logout'], 60_000)
    await waitUntil('charlie-renamed gone from peers()', () => !burrow!.peers().some((p) => p.nodeKey === nodeKey), SETTLE_MS)
    // Headscale still lists it, expired: the peer left because of its key expiry, not a deletion.
    const listed = (await tailnet!.listNodes()).find((n) => (n.given_name ?? n.name) === 'charlie-renamed')
    expect(listed?.expiry).toBeDefined()
    expect(peer('alpha')?.online).toBe(true)
  })

  it('`headscale nodes delete` removes the peer from peers()', async () => {
    await tailnet!.addNode({ hostname: 'delta' })
    await waitUntil('delta in peers()', () => peer('delta'), SETTLE_MS)
    const id = (await tailnet!.listNodes()).find((n) => (n.given_name ?? n.name) === 'delta')!.id
    await tailnet!.deleteNode(id)
    await waitUntil('delta gone from peers()', () => !peer('delta'), SETTLE_MS)
    expect(peer('alpha')?.online).toBe(true)
  })

  it('Headscale killed and restarted mid-transfer: the 32 MB download completes SHA-256 exact, the map stream comes back and the peer map is whole', async () => {
    const response = await burrow!.fetch(`http://${await alpha.ipv4()}:8000/blob`)
    expect(response.status).toBe(200)
    const reader = response.body!.getReader()
    const hash = createHash('sha256')
    let bytes = 0
    // Some bytes first, so the transfer is in flight over DERP when control goes away.
    while (bytes < 1 << 20) {
      const { value, done } = await reader.read()
      if (done) throw new Error(`the download ended after ${bytes} bytes`)
      hash.update(value)
      bytes += value.length
    }
    const statesBefore = states.length
    await tailnet!.restartHeadscale()
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      hash.update(r.value)
      bytes += r.value.length
    }
    expect(bytes).toBe(BLOB_BYTES)
    expect(hash.digest('hex')).toBe(blobSha)
    // The node noticed the lost map stream and came back once the new Headscale answered.
    await waitUntil('burrow to be online again', () => burrow!.state === 'online' && states.slice(statesBefore).includes('reconnecting'), SETTLE_MS)
    expect(states.slice(statesBefore).at(-1)).toBe('online')
    // The new stream is live (not the last netmap kept): a node that joins the restarted Headscale shows up, next to alpha.
    await tailnet!.addNode({ hostname: 'echo' })
    await waitUntil('echo in peers() after the restart', () => peer('echo')?.online, SETTLE_MS)
    // alpha's own map stream comes back on tailscaled's backoff; until then Headscale calls it offline.
    await waitUntil('alpha online again in peers()', () => peer('alpha')?.online, SETTLE_MS)
    expect(burrow!.peers().map((p) => p.hostname)).toEqual(expect.arrayContaining(['alpha', 'echo']))
    expect(await burrow!.ping('alpha', { timeout: 20_000 })).toBeGreaterThanOrEqual(0)
  })

  it('when its home region leaves the DERP map the node moves home to burrow relay (901) and re-reports it: Headscale records 901, tailscaled sees lab2, and traffic flows over burrow relay', async () => {
    tailnet!.setDerpRegions([SECOND_DERP_REGION_ID])
    await tailnet!.restartHeadscale()
    await waitUntil('Headscale to hold PreferredDERP 901 for burrow', async () => (await tailnet!.preferredDERP('burrow')) === SECOND_DERP_REGION_ID, SETTLE_MS)
    await waitUntil('alpha to see burrow homed in lab2', async () => (await alpha.peer('burrow'))?.Relay === 'lab2', SETTLE_MS)
    await waitUntil('alpha homed in lab2 too', async () => JSON.stringify((await alpha.status()).Self).includes('"Relay":"lab2"'), SETTLE_MS)
    // Only burrow relay is left to carry packets: a download through it is byte-exact.
    const response = await burrow!.fetch(`http://${await alpha.ipv4()}:8000/blob`)
    const body = new Uint8Array(await response.arrayBuffer())
    expect(body.length).toBe(BLOB_BYTES)
    expect(createHash('sha256').update(body).digest('hex')).toBe(blobSha)
    expect(await burrow!.ping('alpha', { timeout: 20_000 })).toBeGreaterThanOrEqual(0)
  })

  async function nodeNamed(hostname: string): Promise<TailscaledNode> {
    const node = tailnet!.tailscaledNodes.find((n) => n.hostname === hostname)
    if (!node) throw new Error(`no tailscaled node ${hostname}`)
    return node
  }
})
