// Minimal `--flag value` / `--flag=value` parsing for the CLI commands.
import type { CliIo } from './io.ts'

export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

export interface ParsedArgs {
  flags: Map<string, string>
  positionals: string[]
}

/** Parses `args` allowing only the flags in `known` (each takes a value). */
export function parseArgs(args: string[], known: readonly string[]): ParsedArgs {
  const flags = new Map<string, string>()
  const positionals: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === '--') {
      positionals.push(...args.slice(i + 1))
      break
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg)
      continue
    }
    const equals = arg.indexOf('=')
    const name = arg.slice(2, equals < 0 ? undefined : equals)
    if (!known.includes(name)) throw new UsageError(`unknown option --${name}`)
    let value: string | undefined
    if (equals >= 0) value = arg.slice(equals + 1)
    else value = args[++i]
    if (value === undefined) throw new UsageError(`--${name} needs a value`)
    if (flags.has(name)) throw new UsageError(`--${name} given twice`)
    flags.set(name, value)
  }
  return { flags, positionals }
}

/** A flag's value as a number in [min, max], or `fallback` when absent. */
export function numberFlag(parsed: ParsedArgs, name: string, fallback: number, min: number, max: number, integer: boolean): number {
  const text = parsed.flags.get(name)
  if (text === undefined) return fallback
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw new UsageError(`--${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(text)}`)
  }
  return value
}

/**
 * Parses a command's arguments with `parse`; a UsageError is printed as `burrow <command>: <message>`
 * (followed by `usage`, if given) and becomes undefined, so the command can return EXIT_USAGE.
 */
export function parseCommandArgs<T>(command: string, io: CliIo, parse: () => T, usage = ''): T | undefined {
  try {
    return parse()
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`burrow ${command}: ${error.message}\n${usage}`)
    return undefined
  }
}
