// Disco received over a DERP relay, the way a Tailscale node's magicsock answers it, so that
// `tailscale ping <burrow-node>` from a real tailscaled gets its pong. Sans-IO and synchronous:
// a datagram, the node key DERP says sent it and the relay region it came in on go in; a sealed
// pong (or a verdict to drop or pass on) comes out. Nothing here reads a clock or sends.
//
// The rules are tailscale.com v1.102.x `wgengine/magicsock/magicsock.go`:
// - `handleDiscoMessage`: a frame from a disco key that is not a known peer's is ignored
//   (metricRecvDiscoBadPeer); a box that does not open is ignored (metricRecvDiscoBadKey); a box
//   that opens but does not parse is "from a newer version we do not understand" and ignored
//   (metricRecvDiscoBadParse) — capability version 121 promises exactly this;
// - `handlePingLocked`: a ping that came over DERP is answered over DERP to the DERP source node
//   key (`dstKey := derpNodeSrc`), only if that node key is a known peer, with
//   `Pong{TxID: ping.TxID, Src: src.ap}`. For a DERP frame `src.ap` is the DERP magic address
//   `127.3.3.40:<region id>` (`derp.go`, `netip.AddrPortFrom(tailcfg.DerpMagicIPAddr, regionID)`;
//   `tailcfg.DerpMagicIP`), and `disco/disco.go` writes it as the 16-byte form (`As16`, so
//   v4-mapped) and a big-endian port.
// - the pong is sealed from our disco key to the sender's (`sendDiscoMessage`).
// Burrow is stricter than magicsock in one place: the disco key must be the one the netmap gives
// the DERP source node, so a peer cannot make us answer in another peer's name.
import { equalBytes, toHex } from '../../crypto/index.ts'
import { DiscoKeyring } from './envelope.ts'
import { DiscoError } from './errors.ts'
import type { AddrPort, DiscoMessage } from './messages.ts'

/** `tailcfg.DerpMagicIP`: the fake endpoint address magicsock uses for "over DERP". */
export const DERP_MAGIC_IPV4 = Uint8Array.of(127, 3, 3, 40)

/** `127.3.3.40:<region>` as a disco AddrPort (v4-mapped 16 bytes, port = region id). */
export function derpMagicAddrPort(region: number): AddrPort {
  if (!Number.isInteger(region) || region < 0 || region > 0xffff) throw new DiscoError('bad-argument', `a DERP region id must be 0..65535, got ${region}`)
  const ip = new Uint8Array(16)
  ip[10] = 0xff
  ip[11] = 0xff
  ip.set(DERP_MAGIC_IPV4, 12)
  return { ip, port: region }
}

/** What happened to disco datagrams that came over DERP (all counted; read them in the node's status). */
export interface DerpDiscoCounters {
  /** Pings answered with a pong over DERP. */
  pingsAnswered: number
  /** Known message types this responder leaves to the direct-path code (pongs, WebRTC signals, CallMeMaybe). */
  passedOn: number
  /** Boxes that opened but held a message type we do not know (or do not support): dropped. */
  unknownType: number
  /** Boxes that opened but were malformed (too short for their type): dropped. */
  malformed: number
  /** From a disco key that is no peer's, or not the disco key of the node DERP says sent it: dropped. */
  unknownSender: number
  /** The box did not open (wrong key, forged, corrupted, not disco at all): dropped. */
  undecryptable: number
}

export type DerpDiscoVerdict =
  /** Send `datagram` back over the same relay to `to` (the DERP source node key). */
  | { kind: 'reply'; to: Uint8Array; datagram: Uint8Array; summary: string }
  /** A message for the direct-path code (it opens the box itself). */
  | { kind: 'pass'; message: DiscoMessage }
  /** Dropped and counted; `summary` is for a debug log line. */
  | { kind: 'drop'; reason: Exclude<keyof DerpDiscoCounters, 'pingsAnswered' | 'passedOn'>; summary: string }

/** Answers disco pings that arrive over DERP for the peers the netmap names. */
export class DerpDiscoResponder {
  readonly counters: DerpDiscoCounters = { pingsAnswered: 0, passedOn: 0, unknownType: 0, malformed: 0, unknownSender: 0, undecryptable: 0 }
  readonly keyring: DiscoKeyring

  /**
   * `discoKeyOf(nodeKey)` gives the disco public key the netmap lists for a peer's node key (32
   * bytes), or undefined when the node is no peer or has no disco key.
   */
  constructor(
    discoPrivateKey: Uint8Array,
    private readonly discoKeyOf: (nodeKey: Uint8Array) => Uint8Array | undefined,
  ) {
    this.keyring = new DiscoKeyring(discoPrivateKey)
  }

  /** One disco datagram that DERP delivered from `from` (a node key) on relay region `region`. */
  handle(datagram: Uint8Array, from: Uint8Array, region: number): DerpDiscoVerdict {
    const peerDisco = this.discoKeyOf(from)
    let opened: { sender: Uint8Array; message: DiscoMessage }
    try {
      opened = this.keyring.open(datagram)
    } catch (error) {
      if (!(error instanceof DiscoError)) throw error
      switch (error.code) {
        case 'unknown-type':
          return this.drop('unknownType', `from node ${short(from)}: ${error.message}`)
        case 'truncated':
        case 'bad-signal':
          return this.drop('malformed', `from node ${short(from)}: ${error.message}`)
        default:
          return this.drop('undecryptable', `from node ${short(from)}: ${error.message}`)
      }
    }
    if (!peerDisco) {
      // Not (yet) a peer: a WebRTC offer can arrive before the netmap that names its sender, and the
      // direct-path code keeps such signals until the peer appears; a ping from it is not answered.
      if (opened.message.type === 'ping') return this.drop('unknownSender', `ping from node ${short(from)}, which is not a peer with a disco key`)
      this.counters.passedOn++
      return { kind: 'pass', message: opened.message }
    }
    if (!equalBytes(opened.sender, peerDisco)) {
      return this.drop('unknownSender', `from node ${short(from)} sealed by disco key ${short(opened.sender)}, not that node's ${short(peerDisco)}`)
    }
    const message = opened.message
    if (message.type !== 'ping') {
      this.counters.passedOn++
      return { kind: 'pass', message }
    }
    const pong = this.keyring.seal(peerDisco, { type: 'pong', txId: message.txId, source: derpMagicAddrPort(region) })
    this.counters.pingsAnswered++
    return { kind: 'reply', to: from, datagram: pong, summary: `pong to node ${short(from)} tx=${toHex(message.txId).slice(0, 12)} src=127.3.3.40:${region}` }
  }

  private drop(reason: Exclude<keyof DerpDiscoCounters, 'pingsAnswered' | 'passedOn'>, summary: string): DerpDiscoVerdict {
    this.counters[reason]++
    return { kind: 'drop', reason, summary }
  }
}

function short(key: Uint8Array): string {
  return `[${toHex(key).slice(0, 8)}]`
}
