// A page running the real dataplane worker with direct paths: its peer is reached over DERP
// until WebRTC takes over; UDP packets through the WireGuard tunnel keep both peers active.
import { fromHex, generateKeyPair, toHex } from '../../src/crypto/index.ts'
import { WebRtcPageAgent } from '../../src/underlay/webrtc/page-agent.ts'
import { BurrowWorker } from '../../src/worker/client.ts'
import { PROTO_UDP, buildIp, parseAddress } from '../../src/wire/index.ts'
import type { DirectSetup } from './direct-worker.ts'

const raw = new Worker(new URL('./direct-worker.ts', import.meta.url), { type: 'module' })
const worker = new BurrowWorker(raw)
const node = generateKeyPair()
const disco = generateKeyPair()
const errors: string[] = []
worker.addEventListener('error', (event) => errors.push(String((event as unknown as { message: string }).message)))
const control = new MessageChannel()
const agent = new WebRtcPageAgent(control.port1, { onError: (error) => errors.push(error.message) })
const diag = new MessageChannel()
let diagWaiter: ((value: unknown) => void) | undefined
diag.port1.onmessage = (event) => {
  const resolve = diagWaiter
  diagWaiter = undefined
  resolve?.(event.data)
}
// The worker's diagnostics replies are read field by field in e2e/direct-paths.test.ts, untyped on purpose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
const askDiag = (message: unknown): Promise<any> =>
  new Promise((resolve) => {
    diagWaiter = resolve
    diag.port1.postMessage(message)
  })

const received: number[] = []
let sending: ReturnType<typeof setInterval> | undefined

const api = {
  keys: () => ({ nodeKey: toHex(node.publicKey), discoKey: toHex(disco.publicKey) }),
  async start(relayUrl: string, me: string, peer: { nodeKey: string; discoKey: string; address: string }) {
    await worker.start({ privateKey: node.privateKey })
    await worker.addPeer({ publicKey: fromHex(peer.nodeKey), allowedIps: [`${peer.address}/32`] })
    const overlay = await worker.attachOverlay([`${me}/32`])
    overlay.onpackets = (packets) => {
      for (const p of packets) received.push(new DataView(p.buffer, p.byteOffset).getUint32(28))
    }
    const ready = new Promise((resolve) => (diagWaiter = resolve))
    const setup: DirectSetup = { type: 'direct-setup', relayUrl, discoPrivateKey: disco.privateKey, control: control.port2, diag: diag.port2, peer }
    raw.postMessage(setup, [control.port2, diag.port2])
    await ready
    let sequence = 0
    sending = setInterval(() => {
      const payload = new Uint8Array(1000)
      new DataView(payload.buffer).setUint32(0, sequence++)
      overlay.send([buildIp({ src: parseAddress(me), dst: parseAddress(peer.address), protocol: PROTO_UDP, payload })])
    }, 50)
  },
  status: () => askDiag({ type: 'status' }),
  dropChannel: () => askDiag({ type: 'drop-channel' }),
  received: () => ({ count: received.length, last: received.at(-1) ?? -1, errors, handover: agent.lastHandover }),
  stop: () => clearInterval(sending),
}

declare global {
  interface Window {
    directE2E: typeof api
  }
}
window.directE2E = api
document.title = 'ready'
