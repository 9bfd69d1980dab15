// Structured logs: one JSON object per line.
export type LogFields = Record<string, unknown>
export type Logger = (level: 'info' | 'warn' | 'error', msg: string, fields?: LogFields) => void

export function jsonLinesLogger(write: (line: string) => void): Logger {
  return (level, msg, fields) => write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n')
}

export const silentLogger: Logger = () => {}
