// `npm run bench -- --only tailnet`: a Burrow Node peer in a real Headscale tailnet (Headscale
// v0.29.2, one derper region, userspace tailscaled v1.102.5 nodes that use DERP only), inside a
// network namespace (test/helpers/tailnet.ts), against tailscaled itself in the same run:
//   tailnet.join_ms              Burrow.start with a fresh auth key and fresh keys until the first
//                                byte of an HTTP answer from behind a tailscaled peer; baseline: a
//                                fresh tailscaled (process start, `tailscale up`) until the same
//                                first byte through its SOCKS5 proxy
//   tailnet.fetch_mb_per_s       Burrow Node downloading 16 MiB from behind tailscaled over the one
//                                derper; baseline: tailscaled downloading the same file from the
//                                same tailscaled over the same derper (curl through its SOCKS5)
//   tailnet.peer_map_follow_ms   a new tailscaled node's `tailscale up` until it is in the Burrow
//                                node's peers(); baseline: until it is in an existing tailscaled's
//                                `tailscale status`, measured from the same instant
// Needs root (network namespaces) and the Go interop binaries (built with Go when absent); skipped
// with a message otherwise.
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Burrow } from '../src/node.ts'
import { HEADSCALE_VERSION, Tailnet, TAILSCALE_VERSION, type TailscaledNode, waitUntil } from '../test/helpers/tailnet.ts'
import type { Bench, BenchResult } from './types.ts'

const BLOB_BYTES = 16 * 1024 * 1024
const ROUNDS = 3
const HELLO = 'hello from behind tailscaled\n'

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const round1 = (n: number): number => Math.round(n * 10) / 10

/** Why the bench cannot run here, or undefined. */
function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (it creates a network namespace)'
  const bin = join(homedir(), '.cache', 'burrow', 'go-bin')
  const cached = ['tailscaled', 'tailscale', 'derper'].every((name) => existsSync(join(bin, TAILSCALE_VERSION, name))) && existsSync(join(bin, `headscale-${HEADSCALE_VERSION}`))
  if (!cached && spawnSync('go', ['version']).status !== 0)
    return `needs tailscaled/derper ${TAILSCALE_VERSION} and headscale ${HEADSCALE_VERSION} in ~/.cache/burrow/go-bin, or Go to build them`
  return undefined
}

/** Reads a whole response body; resolves with the byte count and the instant of the first byte. */
async function drain(response: Response): Promise<{ bytes: number; firstByteAt: number; sha256: string }> {
  const reader = response.body!.getReader()
  const hash = createHash('sha256')
  let bytes = 0
  let firstByteAt = 0
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    if (bytes === 0) firstByteAt = performance.now()
    hash.update(r.value)
    bytes += r.value.length
  }
  return { bytes, firstByteAt, sha256: hash.digest('hex') }
}

const bench: Bench = async () => {
  const why = unavailable()
  if (why) {
    process.stderr.write(`  tailnet bench skipped: ${why}\n`)
    return []
  }
  const tailnet = await Tailnet.start({ derp: 'derper' })
  const nodes: Burrow[] = []
  try {
    const alpha = await tailnet.addNode({ hostname: 'alpha' })
    const bravo = await tailnet.addNode({ hostname: 'bravo', socks5Port: 1080 })
    const blob = randomBytes(BLOB_BYTES)
    const blobSha = createHash('sha256').update(blob).digest('hex')
    writeFileSync(join(tailnet.dir, 'blob'), blob)
    writeFileSync(join(tailnet.dir, 'hello'), HELLO)
    tailnet.namespace.spawn('python3', ['-m', 'http.server', '8000', '--bind', '127.0.0.1', '--directory', tailnet.dir])
    const alphaIP = await alpha.ipv4()
    const blobURL = `http://${alphaIP}:8000/blob`
    const helloURL = `http://${alphaIP}:8000/hello`
    await waitUntil('bravo to reach alpha', () => bravo.fetchThroughProxy(helloURL, 'socks5'), 60_000)

    // --- join: fresh Burrow identity + fresh key, until the first byte from behind alpha ---
    const burrowJoins: number[] = []
    const tailscaledJoins: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const authKey = await tailnet.createAuthKey({ reusable: false })
      const start = performance.now()
      const node = await Burrow.start({ controlURL: tailnet.controlURL, authKey, hostname: `join-${i}`, storage: 'memory', derpOverHTTP: true, direct: false })
      nodes.push(node)
      const firstByte = await waitUntil(
        'the first byte from behind alpha',
        async () => {
          const result = await drain(await node.fetch(helloURL))
          return result.bytes === HELLO.length ? result.firstByteAt : undefined
        },
        120_000,
      )
      burrowJoins.push(firstByte - start)

      const tsStart = performance.now()
      const fresh = await tailnet.addNode({ hostname: `tsjoin-${i}`, socks5Port: 1090 + i, authKey: await tailnet.createAuthKey({ reusable: false }) })
      await waitUntil('the first byte through the fresh tailscaled', () => fresh.fetchThroughProxy(helloURL, 'socks5'), 120_000)
      tailscaledJoins.push(performance.now() - tsStart)
      await fresh.stop()
    }

    // --- fetch: Burrow vs tailscaled, the same file from alpha over the same derper, interleaved ---
    const burrow = nodes[0]!
    const burrowFetch = async (): Promise<number> => {
      const start = performance.now()
      const result = await drain(await burrow.fetch(blobURL))
      const seconds = (performance.now() - start) / 1000
      if (result.bytes !== BLOB_BYTES || result.sha256 !== blobSha) throw new Error(`Burrow's download was not byte-exact (${result.bytes} bytes)`)
      return BLOB_BYTES / 1e6 / seconds
    }
    const tailscaledFetch = async (): Promise<number> => {
      const start = performance.now()
      const result = await bravo.fetchThroughProxy(blobURL, 'socks5')
      const seconds = (performance.now() - start) / 1000
      if (result.bytes !== BLOB_BYTES || result.sha256 !== blobSha) throw new Error(`tailscaled's download was not byte-exact (${result.bytes} bytes)`)
      return BLOB_BYTES / 1e6 / seconds
    }
    await burrowFetch()
    await tailscaledFetch()
    const viaBurrow: number[] = []
    const viaTailscaled: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      viaBurrow.push(await burrowFetch())
      viaTailscaled.push(await tailscaledFetch())
    }

    // --- peer map follow: a new node's `tailscale up` until Burrow's peers() / alpha's status list it ---
    const burrowFollow: number[] = []
    const tailscaledFollow: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const hostname = `follow-${i}`
      let upAt = 0
      let burrowAt = 0
      const watchBurrow = (): void => {
        if (upAt && !burrowAt && burrow.peers().some((p) => p.hostname === hostname)) burrowAt = performance.now()
      }
      burrow.addEventListener('peers', watchBurrow)
      let newcomer: TailscaledNode | undefined
      try {
        const joined = tailnet.addNode({ hostname, onUp: () => (upAt = performance.now()) })
        newcomer = await joined
        if (!upAt) throw new Error('addNode did not report when tailscale up returned')
        watchBurrow()
        const alphaAt = await waitUntil(
          `${hostname} in alpha's status`,
          async () => {
            const seen = await alpha.peer(hostname)
            return seen ? performance.now() : undefined
          },
          120_000,
        )
        await waitUntil(`${hostname} in peers()`, () => burrowAt > 0, 120_000)
        burrowFollow.push(burrowAt - upAt)
        tailscaledFollow.push(alphaAt - upAt)
      } finally {
        burrow.removeEventListener('peers', watchBurrow)
        await newcomer?.stop()
      }
    }

    const results: BenchResult[] = [
      {
        name: 'tailnet.join_ms',
        value: Math.round(median(burrowJoins)),
        unit: 'ms',
        baseline: Math.round(median(tailscaledJoins)),
        ratio: Math.round((median(burrowJoins) / median(tailscaledJoins)) * 1000) / 1000,
        note: `median of ${ROUNDS}: Burrow.start (fresh keys, a new one-off Headscale key) until the first byte of an HTTP answer from behind tailscaled over derper (${burrowJoins.map(Math.round).join(', ')}); baseline: a fresh userspace tailscaled started, \`tailscale up\` with a new key, until curl through its SOCKS5 proxy got the same answer (${tailscaledJoins.map(Math.round).join(', ')}); lower is better`,
      },
      {
        name: 'tailnet.fetch_mb_per_s',
        value: round1(median(viaBurrow)),
        unit: 'MB/s',
        baseline: round1(median(viaTailscaled)),
        ratio: Math.round((median(viaBurrow) / median(viaTailscaled)) * 1000) / 1000,
        note: `median of ${ROUNDS} interleaved downloads of ${BLOB_BYTES >> 20} MiB from python http.server behind tailscaled alpha over one derper: Burrow Node fetch() (${viaBurrow.map((r) => r.toFixed(1)).join(', ')}); baseline: tailscaled bravo, curl through its SOCKS5 proxy (${viaTailscaled.map((r) => r.toFixed(1)).join(', ')}); both DERP-only, SHA-256 checked`,
      },
      {
        name: 'tailnet.peer_map_follow_ms',
        value: Math.round(median(burrowFollow)),
        unit: 'ms',
        baseline: Math.round(median(tailscaledFollow)),
        ratio: Math.round((median(burrowFollow) / Math.max(1, median(tailscaledFollow))) * 1000) / 1000,
        note: `median of ${ROUNDS}: from a new tailscaled's \`tailscale up\` returning until the Burrow node's peers() lists it (its peers event; ${burrowFollow.map(Math.round).join(', ')}); baseline: until tailscaled alpha's \`tailscale status\` lists it, polled (each poll is a CLI call, so the baseline is coarse; ${tailscaledFollow.map(Math.round).join(', ')}); lower is better`,
      },
    ]
    return results
  } finally {
    await Promise.allSettled(nodes.map((node) => node.close()))
    await tailnet.stop()
  }
}

export default bench
