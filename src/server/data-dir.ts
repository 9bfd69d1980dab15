// The relay's data directory holds secrets (relay.key, and coordination.sqlite with the
// coordination server's private key, enough to impersonate the server to every node). Like ssh
// with a private key, we refuse to use such a file when other users can read or write it, and
// say which file and how to fix it, rather than chmod it behind the operator's back: a file that
// was readable may already have been read, and the operator has to know.
import { closeSync, openSync, statSync } from 'node:fs'

export class DataDirPermissionError extends Error {
  readonly path: string
  constructor(path: string, message: string) {
    super(message)
    this.name = 'DataDirPermissionError'
    this.path = path
  }
}

/** Permission checks mean nothing on Windows (no POSIX modes). */
const POSIX = process.platform !== 'win32'

/** Throws if `path` exists and its group/other permission bits are set. `holds` says what is at stake. */
export function assertPrivateFile(path: string, holds: string): void {
  if (!POSIX) return
  let mode: number
  try {
    mode = statSync(path).mode
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0')
    throw new DataDirPermissionError(
      path,
      `permissions ${octal} for ${path} are too open: it holds ${holds} and must be readable only by its owner; refusing to use it (run: chmod 600 ${JSON.stringify(path)})`,
    )
  }
}

/** Creates `path` empty with mode 0600 unless it exists (any umask: 0600 has no bits a umask removes that matter). */
export function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
}
