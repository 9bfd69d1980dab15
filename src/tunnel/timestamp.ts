// TAI64N timestamps for handshake initiations (whitepaper §5.1). Receivers compare the 12 bytes
// as a big-endian number and accept only strictly newer ones, so the clock below never repeats
// or goes back for one local identity, even for two initiations in the same millisecond.

export const TAI64N_LENGTH = 12
/** TAI64 label of the Unix epoch: 2^62 plus the 10 s TAI−UTC offset of 1970 (as wireguard-go and Linux). */
const TAI64_EPOCH = (1n << 62n) + 10n
const NANOS_PER_SECOND = 1_000_000_000n

export class Tai64nClock {
  private lastNanos = -1n

  /**
   * `wallClockOffset` maps the monotonic `now` (ms) onto Unix time (ms). Without one, the clock
   * anchors `now` to `Date.now()` at its first stamp, which is right whatever monotonic clock the
   * driver uses (performance.now(), a process uptime, a test clock).
   */
  constructor(private wallClockOffset?: number) {}

  stamp(now: number): Uint8Array {
    this.wallClockOffset ??= Date.now() - now
    const wallMs = now + this.wallClockOffset
    const wholeMs = Math.floor(wallMs)
    let nanos = BigInt(wholeMs) * 1_000_000n + BigInt(Math.floor((wallMs - wholeMs) * 1e6))
    if (nanos <= this.lastNanos) nanos = this.lastNanos + 1n
    this.lastNanos = nanos
    return encodeTai64n(nanos / NANOS_PER_SECOND, nanos % NANOS_PER_SECOND)
  }
}

export function encodeTai64n(unixSeconds: bigint, nanoseconds: bigint): Uint8Array {
  const out = new Uint8Array(TAI64N_LENGTH)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, TAI64_EPOCH + unixSeconds)
  view.setUint32(8, Number(nanoseconds))
  return out
}

/** Whether timestamp `a` is strictly later than `b` (byte-wise big-endian, as every WireGuard receiver compares). */
export function isAfter(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (b === undefined) return true
  for (let i = 0; i < TAI64N_LENGTH; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!
  }
  return false
}
