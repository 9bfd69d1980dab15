// The messages between the page's `Burrow` object and the node agent in the dataplane worker.
//
// They travel on their own MessagePort (the "node control port"), handed to the worker once with
// `{ type: NODE_CONTROL_MESSAGE, port }`, so the dataplane protocol (src/worker/protocol.ts) stays as it is.
// The page calls (`join`, `leave`), the agent answers each call once and pushes the peer map,
// its state and errors on its own. The page may also hand over a WebRTC control port
// (`webrtcPort` next to `port`), served by a WebRtcPageAgent, for direct paths.
// Private keys never appear in any of these messages.
import type { NetworkInfo } from '../control/protocol.ts'
import type { SerializedError } from '../worker/protocol.ts'
import type { FaultProfile } from '../underlay/fault-injector.ts'

export const NODE_CONTROL_MESSAGE = 'burrow-node-control'

export type KeyStorage = 'indexeddb' | 'memory' | 'file'

export interface JoinOptions {
  /** The relay's base URL (`http://127.0.0.1:8080`); coordination at /control, DERP at /derp. */
  controlURL: string
  /** Which protocol the control server speaks (absent: Burrow's coordination). */
  control?: 'burrow' | 'tailnet'
  /** Tailnet: a pinned control key (`mkey:…`). */
  controlKey?: string
  /** Tailnet: plain-HTTP DERP (TS_DEBUG_USE_DERP_HTTP). */
  derpOverHTTP?: boolean
  /** Needed the first time this node key registers. */
  authKey?: string
  hostname: string
  storage: KeyStorage
  /** Which stored identity to use, so one origin (or one state directory) can hold several nodes. */
  keyName: string
  /** Only for `file` storage (Node). */
  stateDir?: string
  /** Try WebRTC direct paths to peers (needs the page's WebRTC port; default true). */
  direct?: boolean
  /** Test hook: drop every WebRTC signal (disco 0x80) that arrives, so direct setup always fails. */
  dropDirectSignals?: boolean
  /** How often the agent asks the page to probe its peers' round-trip times (`probe`); 0 or absent: never. */
  probeIntervalMs?: number
  /** The relay region to call home whenever it is up (absent: the lowest measured latency). */
  homeRegion?: number
  /** Test hook: every relay underlay goes through a FaultInjector with these seeded faults (loss, delay…). */
  relayFaults?: { seed: number; send?: FaultProfile; receive?: FaultProfile }
  /** Post `debug` log lines (dropped disco, filtered packets) to the page. */
  debug?: boolean
}

export interface JoinResult {
  nodeKey: string
  hostname: string
  /** [IPv4, IPv6]. */
  addresses: [string, string]
  /** The overlay prefixes, when the control plane says. */
  network?: NetworkInfo
  /** The DERP URL of our home relay. */
  relayURL: string
  /** Our home relay region's id. */
  homeRegion: number
  /** When each step of the join finished (`sharedNow()` ms, in order), for start-up diagnostics. */
  phases: Array<[step: string, at: number]>
}

export type NodeState = 'connecting' | 'online' | 'reconnecting' | 'failed' | 'closed'

/** One peer as the worker sees it; the page adds the round-trip time it measures itself. */
export interface WorkerPeerInfo {
  nodeKey: string
  hostname: string
  /** The MagicDNS name (`host.tailnet.example`), when the control plane has DNS (tailnets). */
  fqdn?: string
  addresses: [string, string]
  online: boolean
  path: 'relay' | 'direct'
  /** Round-trip time of the last disco pong on the direct path (only while `path` is direct). */
  directRttMs: number | null
  /** The relay this peer receives on (its home relay, or ours when it reported none). */
  relayURL: string
  /** That relay's region id. */
  relayRegion: number
  rxBytes: number
  txBytes: number
  /** Epoch-like ms on the `sharedNow()` clock, or null before the first handshake. */
  lastHandshake: number | null
  /** While direct: the ICE candidate types of the pair in use (host, srflx, prflx, relay), once known. */
  directCandidates?: { local: string; remote: string } | null
  /** While direct: a WebRTC datachannel, or plain UDP between two Node peers. */
  directTransport?: 'webrtc' | 'udp' | null
  /** While direct over UDP: the peer's endpoint in use (`203.0.113.7:41641`). */
  directEndpoint?: string | null
}

/** Direct-path diagnostics for one peer (tests and debugging). */
export interface DirectPathInfo {
  nodeKey: string
  path: 'relay' | 'direct'
  direct: 'none' | 'connecting' | 'open'
  rttMs: number | null
  failures: number
  /** Datagrams on the datachannel, or null without one. */
  channel: { sent: number; received: number; dropped: number } | null
  /**
   * Milliseconds from the moment the peer became known to each step of its first upgrade
   * (attempt, signalSent, signalReceived, gathered, open, trusted); a step not reached is absent.
   */
  phases?: Record<string, number>
}

export interface DirectDebugInfo {
  enabled: boolean
  counters: Record<string, number>
  peers: DirectPathInfo[]
  /** Node peers: the plain-UDP path manager's counters, its port and the endpoints it announces. */
  udp?: { counters: Record<string, number>; port: number; endpoints: string[] }
}

export type NodeCall =
  | { op: 'join'; options: JoinOptions }
  | { op: 'leave' }
  /** Test hook: ends the WebRTC session with a peer (its datachannel closes; the relay takes over). */
  | { op: 'debug-close-direct'; nodeKey: string }
  | { op: 'debug-direct' }

export interface NodeCallEnvelope {
  type: 'call'
  id: number
  call: NodeCall
}

export type NodeWorkerMessage =
  | { type: 'result'; id: number; ok: true; value: unknown }
  | { type: 'result'; id: number; ok: false; error: SerializedError & { status?: number } }
  | { type: 'peers'; peers: WorkerPeerInfo[] }
  | { type: 'path'; nodeKey: string; path: 'relay' | 'direct'; rttMs: number | null }
  | { type: 'state'; state: NodeState; reason?: string }
  | { type: 'error'; error: SerializedError & { status?: number } }
  /** Interactive login: control asks a person to open `url` and approve this node (tailnets without an auth key). */
  | { type: 'auth-url'; url: string }
  /** Time to ping the online peers (the page's stack sends the echoes; the worker keeps time). */
  | { type: 'probe' }
  /** Our home relay: its region (id, code, name), the relay we are logged in to, and the last measured region latencies (ms, null: no answer). */
  | { type: 'home'; region: number; code: string; name: string; relayURL: string; latencies: Record<number, number | null> }
  /** A debug log line (only when the join asked for them). */
  | { type: 'debug'; line: string }
