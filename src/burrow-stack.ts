// The page's TCP/IP stack on an overlay port: packets both ways, and the stack's timers run on
// the worker's clock (page timers are throttled in background tabs; the worker's are not).
import { StackHost } from './overlay/host.ts'
import { Stack } from './overlay/stack.ts'
import type { OverlayPort } from './worker/client.ts'
import { sharedNow } from './worker/protocol.ts'

export function attachStack(overlay: OverlayPort, addresses: readonly string[], mtu: number): { stack: Stack; host: StackHost } {
  const stack = new Stack({ addresses: [...addresses], mtu })
  // The stack re-requests its deadline after every poll, and while data flows the deadline
  // (a retransmission timer) moves later with each ACK. Keeping an earlier pending wake-up
  // instead of replacing it costs one early poll per timer period and saves a message to the
  // worker (and a timer reset there) per poll.
  let pendingWake: number | undefined
  const host = new StackHost(stack, {
    sink: (packets) => overlay.send(packets),
    clock: {
      now: sharedNow,
      wakeAt: (deadline) => {
        if (pendingWake !== undefined && pendingWake <= deadline) return
        pendingWake = deadline
        overlay.wakeAt(deadline)
      },
    },
  })
  overlay.onpackets = (packets) => host.receive(packets)
  overlay.onwake = () => {
    pendingWake = undefined
    host.poll()
  }
  return { stack, host }
}
