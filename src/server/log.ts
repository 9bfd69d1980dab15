// Structured logs: one JSON object per line.
export type LogFields = Record<string, unknown>
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export type Logger = (level: LogLevel, msg: string, fields?: LogFields) => void

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 }
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[]

/** Writes each entry at `minLevel` or above as one JSON line; debug entries are dropped by default. */
export function jsonLinesLogger(write: (line: string) => void, minLevel: LogLevel = 'info'): Logger {
  const min = RANK[minLevel]
  return (level, msg, fields) => {
    if (RANK[level] < min) return
    write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n')
  }
}

export const silentLogger: Logger = () => {}
