// The Node key store: one file per key, `<dir>/<name>.key`, holding the base64 private key
// (the `wg genkey` format) with mode 0600 in a 0700 directory. Writes go to a temporary file
// that is renamed into place, so a crash leaves either the old key or the new one.
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { KeyFormatError, formatKey, parseKey, randomBytes, toHex } from '../crypto/index.ts'
import { KeyStoreError, checkKeyName, checkPrivateKey, type KeyStore } from './key-store.ts'

export class FileKeyStore implements KeyStore {
  constructor(readonly directory: string) {}

  pathOf(name: string): string {
    checkKeyName(name)
    return join(this.directory, `${name}.key`)
  }

  async load(name: string): Promise<Uint8Array | undefined> {
    const path = this.pathOf(name)
    let text: string
    try {
      const info = await stat(path)
      // Like ssh: a private key others can read is treated as compromised configuration, not used silently.
      if ((info.mode & 0o077) !== 0) {
        throw new KeyStoreError(`${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); run chmod 600 ${path}`)
      }
      text = await readFile(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
    try {
      return parseKey(text)
    } catch (error) {
      if (error instanceof KeyFormatError) throw new KeyStoreError(`${path}: ${error.message}`)
      throw error
    }
  }

  async save(name: string, privateKey: Uint8Array): Promise<void> {
    const path = this.pathOf(name)
    const temporary = await this.writeTemporary(name, privateKey)
    try {
      await rename(temporary, path)
    } catch (error) {
      await rm(temporary, { force: true })
      throw error
    }
  }

  async saveIfAbsent(name: string, privateKey: Uint8Array): Promise<Uint8Array> {
    const path = this.pathOf(name)
    const temporary = await this.writeTemporary(name, privateKey)
    try {
      // link() fails with EEXIST instead of replacing, so only the first writer's key lands.
      await link(temporary, path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    } finally {
      await rm(temporary, { force: true })
    }
    const stored = await this.load(name)
    if (stored === undefined) throw new KeyStoreError(`${path} vanished right after it was stored`)
    return stored
  }

  /** A complete 0600 file holding the key, next to where it will live. */
  private async writeTemporary(name: string, privateKey: Uint8Array): Promise<string> {
    checkPrivateKey(name, privateKey)
    await mkdir(this.directory, { recursive: true, mode: 0o700 })
    const temporary = join(this.directory, `.${name}.key.${toHex(randomBytes(6))}.tmp`)
    const file = await open(temporary, 'wx', 0o600)
    try {
      await file.writeFile(`${formatKey(privateKey)}\n`)
      await file.sync()
      // The umask may have narrowed the mode further, never widened it; make it exact anyway.
      await file.chmod(0o600)
    } catch (error) {
      await file.close()
      await rm(temporary, { force: true })
      throw error
    }
    await file.close()
    return temporary
  }

  async delete(name: string): Promise<void> {
    await rm(this.pathOf(name), { force: true })
  }
}
