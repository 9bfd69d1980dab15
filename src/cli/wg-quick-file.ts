import { readFile } from 'node:fs/promises'
import { ConfigError, parseWgQuick, type WgQuickConfig } from '../control/wg-quick.ts'
import type { CliIo } from './io.ts'

/**
 * Reads and parses a wg-quick file for `burrow <command>`; on failure tells the user which file and
 * what is wrong with it (the line, for a bad config) and returns undefined.
 */
export async function readWgQuickFile(command: string, path: string, io: CliIo): Promise<WgQuickConfig | undefined> {
  try {
    return parseWgQuick(await readFile(path, 'utf8'))
  } catch (error) {
    if (error instanceof ConfigError) io.stderr(`burrow ${command}: ${path}: ${error.message}\n`)
    else io.stderr(`burrow ${command}: cannot read ${path}: ${(error as Error).message}\n`)
    return undefined
  }
}
