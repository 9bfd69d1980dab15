// WireGuard's protocol constants (whitepaper §6.1, same values as wireguard-go and Linux).
// Times are milliseconds because every sans-IO call takes `now` in ms.

/** A session initiated by us is renegotiated once it has sent this many messages. */
export const REKEY_AFTER_MESSAGES = 2n ** 60n
/** No message may use a counter at or beyond this value: 2^64 − 2^13 − 1. */
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n
export const REKEY_AFTER_TIME = 120_000
export const REJECT_AFTER_TIME = 180_000
export const REKEY_ATTEMPT_TIME = 90_000
export const REKEY_TIMEOUT = 5_000
/** Upper bound of the random jitter added to each handshake retry, so two peers do not retry in lockstep. */
export const REKEY_TIMEOUT_JITTER_MAX = 333
export const KEEPALIVE_TIMEOUT = 10_000
export const COOKIE_REFRESH_TIME = 120_000
/**
 * A held cookie is used for this long. Shorter than the responder's secret lifetime so a cookie
 * is never presented just after the secret that made it has rotated (Linux uses the same margin).
 */
export const COOKIE_VALIDITY = COOKIE_REFRESH_TIME - 5_000
/** An initiator rekeys on receive once its session is this old, so it never hits RejectAfterTime mid-flow. */
export const REKEY_ON_RECEIVE_AGE = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
/** Data sent and nothing heard back for this long means the session is probably dead: start a new handshake. */
export const NEW_HANDSHAKE_AFTER_SILENCE = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT

/** Random 0..REKEY_TIMEOUT_JITTER_MAX ms. */
export function rekeyJitter(random: (length: number) => Uint8Array): number {
  const bytes = random(2)
  return ((bytes[0]! << 8) | bytes[1]!) % (REKEY_TIMEOUT_JITTER_MAX + 1)
}

/** The earlier of two optional deadlines. */
export function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return a < b ? a : b
}
