// Where a node keeps its private keys. The worker uses IndexedDB (keys are made and kept inside
// the worker; they never cross to the page), Node uses files (key-store-node.ts, kept apart so
// `node:fs` stays out of the browser bundle), tests and throwaway nodes use memory.
import { createStore, del, get, set, update, type UseStore } from 'idb-keyval'
import { KEY_LENGTH, generateKeyPair, publicKeyOf, type KeyPair } from '../crypto/index.ts'

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'KeyStoreError'
  }
}

export interface KeyStore {
  /** The 32-byte private key stored under `name`, or undefined if there is none. */
  load(name: string): Promise<Uint8Array | undefined>
  save(name: string, privateKey: Uint8Array): Promise<void>
  /**
   * Stores `privateKey` unless a key is already stored under `name`, atomically, and returns the
   * key that is stored afterwards. Two tabs (or processes) creating a key at once agree on one.
   */
  saveIfAbsent(name: string, privateKey: Uint8Array): Promise<Uint8Array>
  delete(name: string): Promise<void>
}

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/

/** Key names double as file names, so they are kept to a safe alphabet. */
export function checkKeyName(name: string): void {
  if (!NAME_PATTERN.test(name)) throw new KeyStoreError(`key name ${JSON.stringify(name)} must be 1–64 of a-z 0-9 . _ - (starting with a letter or digit)`)
}

export function checkPrivateKey(name: string, key: unknown): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH) {
    const got = key instanceof Uint8Array ? `${key.length} bytes` : typeof key
    throw new KeyStoreError(`key ${JSON.stringify(name)} must be ${KEY_LENGTH} bytes, got ${got}`)
  }
  return key
}

/** The stored key pair, or a fresh one that is saved first (so a crash never loses a key in use). */
export async function loadOrCreateKeyPair(store: KeyStore, name: string): Promise<KeyPair> {
  const existing = await store.load(name)
  if (existing !== undefined) return { privateKey: existing, publicKey: publicKeyOf(existing) }
  const privateKey = await store.saveIfAbsent(name, generateKeyPair().privateKey)
  return { privateKey, publicKey: publicKeyOf(privateKey) }
}

export class MemoryKeyStore implements KeyStore {
  private readonly keys = new Map<string, Uint8Array>()

  async load(name: string): Promise<Uint8Array | undefined> {
    checkKeyName(name)
    const key = this.keys.get(name)
    return key === undefined ? undefined : key.slice()
  }

  async save(name: string, privateKey: Uint8Array): Promise<void> {
    checkKeyName(name)
    this.keys.set(name, checkPrivateKey(name, privateKey).slice())
  }

  async saveIfAbsent(name: string, privateKey: Uint8Array): Promise<Uint8Array> {
    checkKeyName(name)
    checkPrivateKey(name, privateKey)
    if (!this.keys.has(name)) this.keys.set(name, privateKey.slice())
    return this.keys.get(name)!.slice()
  }

  async delete(name: string): Promise<void> {
    checkKeyName(name)
    this.keys.delete(name)
  }
}

/** IndexedDB database `burrow`, object store `keys` (names configurable), values are Uint8Array. */
export class IndexedDbKeyStore implements KeyStore {
  private store: UseStore | undefined
  constructor(
    private readonly databaseName = 'burrow',
    private readonly storeName = 'keys',
  ) {}

  /** Opened lazily so that merely importing this module never touches IndexedDB. */
  private idb(): UseStore {
    if (typeof indexedDB === 'undefined') throw new KeyStoreError('IndexedDB is not available here; use FileKeyStore in Node or MemoryKeyStore')
    this.store ??= createStore(this.databaseName, this.storeName)
    return this.store
  }

  async load(name: string): Promise<Uint8Array | undefined> {
    checkKeyName(name)
    const value: unknown = await get(name, this.idb())
    if (value === undefined) return undefined
    try {
      return checkPrivateKey(name, value)
    } catch (error) {
      throw new KeyStoreError(`IndexedDB ${this.databaseName}/${this.storeName} holds a corrupt key: ${(error as Error).message}`)
    }
  }

  async save(name: string, privateKey: Uint8Array): Promise<void> {
    checkKeyName(name)
    await set(name, checkPrivateKey(name, privateKey).slice(), this.idb())
  }

  async saveIfAbsent(name: string, privateKey: Uint8Array): Promise<Uint8Array> {
    checkKeyName(name)
    const fresh = checkPrivateKey(name, privateKey).slice()
    // idb-keyval's update runs the read and the write in one readwrite transaction.
    await update<unknown>(name, (existing) => existing ?? fresh, this.idb())
    const stored = await this.load(name)
    if (stored === undefined) throw new KeyStoreError(`key ${JSON.stringify(name)} vanished right after it was stored`)
    return stored
  }

  async delete(name: string): Promise<void> {
    checkKeyName(name)
    await del(name, this.idb())
  }
}
