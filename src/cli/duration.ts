// Durations on the command line: `90s`, `30m`, `24h`, `7d` (one number and one unit).
import { UsageError } from './args.ts'

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Milliseconds for `text`; a UsageError naming `flag` if it is not a positive duration. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text.trim())
  const ms = match ? Math.round(Number(match[1]) * UNITS[match[2]!]!) : NaN
  if (!match || !(ms > 0) || !Number.isSafeInteger(ms)) {
    throw new UsageError(`${flag} must be a duration like 90s, 30m, 24h or 7d, got ${JSON.stringify(text)}`)
  }
  return ms
}
