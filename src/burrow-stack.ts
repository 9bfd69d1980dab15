// The page's TCP/IP stack on an overlay port: packets both ways, and the stack's timers run on
// the worker's clock (page timers are throttled in background tabs; the worker's are not).
import type { DriverClock } from './clock/clock.ts'
import { StackHost } from './overlay/host.ts'
import { Stack } from './overlay/stack.ts'
import type { BurrowTcpOptions, PacketTap } from './burrow-options.ts'
import type { OverlayPort } from './worker/client.ts'
import { sharedNow } from './worker/protocol.ts'

/** The worker's clock as the stack sees it: a timer is one wake-up the worker sends at its instant. */
function overlayClock(overlay: OverlayPort): DriverClock {
  let due: (() => void) | undefined
  overlay.onwake = () => {
    const callback = due
    due = undefined
    callback?.()
  }
  return {
    now: sharedNow,
    setTimer(at, callback) {
      // The worker keeps one wake-up per overlay and replaces it with each request, so a
      // cleared timer needs no message: the stale wake-up, if it comes, finds nothing due.
      due = callback
      overlay.wakeAt(at)
      return {
        clear: () => {
          if (due === callback) due = undefined
        },
      }
    },
  }
}

/** `tap`, if given, sees every packet both ways (packet capture) before it is handed on. */
export function attachStack(overlay: OverlayPort, addresses: readonly string[], mtu: number, tap?: PacketTap, tcp: BurrowTcpOptions = {}): { stack: Stack; host: StackHost } {
  const stack = new Stack({ addresses: [...addresses], mtu, tcp })
  // The stack re-requests its deadline after every poll, and while data flows the deadline
  // (a retransmission timer) moves later with each ACK. Keeping an earlier pending wake-up
  // instead of replacing it costs one early poll per timer period and saves a message to the
  // worker (and a timer reset there) per poll.
  const sink = tap
    ? (packets: Uint8Array[]) => {
        // Before the send: sending transfers (detaches) the packets' buffers to the worker.
        for (const packet of packets) tap(packet, 'out')
        overlay.send(packets)
      }
    : (packets: Uint8Array[]) => overlay.send(packets)
  // Packets from the worker arrive in transferred buffers nobody else holds (unpackPackets).
  const host = new StackHost(stack, { sink, clock: overlayClock(overlay), keepEarlierWake: true, ownsInboundPackets: true })
  overlay.onpackets = tap
    ? (packets) => {
        for (const packet of packets) tap(packet, 'in')
        host.receive(packets)
      }
    : (packets) => host.receive(packets)
  return { stack, host }
}
