// The dataplane worker (the real WorkerHost) plus direct paths, wired the way a runtime would:
// a DERP connection as the relay underlay, a WebRtcUnderlay on the control port the page's
// WebRtcPageAgent serves, and DirectPaths fed by the host's disco hook.
import { fromHex } from '../../src/crypto/index.ts'
import { DerpConnection } from '../../src/underlay/derp/connection.ts'
import { webSocketDialer } from '../../src/underlay/derp/dialer.ts'
import { DerpUnderlay } from '../../src/underlay/derp/underlay.ts'
import { DirectPaths } from '../../src/underlay/webrtc/direct-paths.ts'
import { WebRtcUnderlay } from '../../src/underlay/webrtc/webrtc-underlay.ts'
import { WorkerHost, type WorkerContext } from '../../src/worker/host.ts'

export interface DirectSetup {
  type: 'direct-setup'
  relayUrl: string
  discoPrivateKey: Uint8Array
  control: MessagePort
  diag: MessagePort
  peer: { nodeKey: string; discoKey: string }
}

let context: WorkerContext | undefined
let paths: DirectPaths | undefined
let webrtc: WebRtcUnderlay | undefined
const pathChanges: string[] = []

const host = new WorkerHost((message) => postMessage(message), {
  extensions: [
    {
      onStart: (started) => {
        context = started
      },
      onDisco: (datagram) => paths?.handleDisco(datagram),
    },
  ],
})

function setup(message: DirectSetup): void {
  const { core, driver, reportError } = context!
  const relay = new DerpConnection({ url: message.relayUrl, privateKey: nodePrivateKey!, dial: webSocketDialer() })
  relay.start()
  const relayUnderlay = driver.addUnderlay(new DerpUnderlay(relay))
  const peerKey = fromHex(message.peer.nodeKey)
  driver.withCore((c) => c.setPeerRoute(c.peerByKey(peerKey)!, relayUnderlay, peerKey))
  webrtc = new WebRtcUnderlay(message.control, { ourKey: core.publicKey }, reportError)
  const webrtcUnderlay = driver.addUnderlay(webrtc)
  paths = new DirectPaths({
    driver,
    discoPrivateKey: message.discoPrivateKey,
    relayUnderlay,
    webrtc,
    webrtcUnderlay,
    reportError,
    onPathChange: (_peer, path) => pathChanges.push(path),
  })
  paths.setPeer(peerKey, fromHex(message.peer.discoKey))
  message.diag.onmessage = (event: MessageEvent<{ type: 'status' } | { type: 'drop-channel' }>) => {
    if (event.data.type === 'drop-channel') webrtc!.disconnect(peerKey, 'dropped by the test')
    message.diag.postMessage({
      status: paths!.status(peerKey),
      counters: paths!.counters,
      link: webrtc!.linkStats(peerKey) ?? null,
      relayConnected: relay.isConnected,
      pathChanges,
    })
  }
  message.diag.postMessage({ ready: true })
}

let nodePrivateKey: Uint8Array | undefined

self.onmessage = (event: MessageEvent) => {
  const data = event.data as { type?: string; request?: { op?: string; config?: { privateKey?: unknown } } }
  if (data?.type === 'direct-setup') return setup(data as unknown as DirectSetup)
  // A runtime keeps the node key itself; this test worker reads it from the start request.
  const key = data?.request?.op === 'start' ? data.request.config?.privateKey : undefined
  if (key instanceof Uint8Array) nodePrivateKey = key
  host.handle(event.data)
}
