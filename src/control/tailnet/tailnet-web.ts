// The tailnet client as the browser worker loads it: `import('../control/tailnet/tailnet-web.ts')`
// from src/agent/worker.ts, only when a join names a Tailscale-protocol control server, so the
// ts2021 Noise, HTTP/2, HPACK and netmap code is a chunk of its own that a page joining Burrow's
// coordination never fetches. ts2021 runs over the worker's WebSocket (dial.ts); the machine key
// stays in the worker with the node key (the agent loads both from the key store).
import { tailnetControlPlanes } from './control-plane.ts'
import { webSocketDialer } from './dial.ts'

export const webTailnetControlPlanes = tailnetControlPlanes(webSocketDialer())
