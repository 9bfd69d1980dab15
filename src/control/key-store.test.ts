import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatKey, generateKeyPair, publicKeyOf } from '../crypto/index.ts'
import { IndexedDbKeyStore, KeyStoreError, MemoryKeyStore, loadOrCreateKeyPair, type KeyStore } from './key-store.ts'
import { FileKeyStore } from './key-store-node.ts'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'burrow-keys-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

const implementations: Array<[string, () => KeyStore]> = [
  ['MemoryKeyStore', () => new MemoryKeyStore()],
  ['FileKeyStore', () => new FileKeyStore(join(dir, 'keys'))],
]

describe.each(implementations)('%s', (_, make) => {
  it('saves, loads and deletes a key', async () => {
    const store = make()
    const { privateKey } = generateKeyPair()
    expect(await store.load('node')).toBeUndefined()
    await store.save('node', privateKey)
    expect(await store.load('node')).toEqual(privateKey)
    await store.delete('node')
    expect(await store.load('node')).toBeUndefined()
    await store.delete('node')
  })

  it('creates a key pair once and returns the same one afterwards', async () => {
    const store = make()
    const first = await loadOrCreateKeyPair(store, 'node')
    expect(first.publicKey).toEqual(publicKeyOf(first.privateKey))
    expect(await loadOrCreateKeyPair(store, 'node')).toEqual(first)
    expect(await loadOrCreateKeyPair(store, 'disco')).not.toEqual(first)
  })

  it('keeps the first key when two writers race to create one', async () => {
    const store = make()
    const first = generateKeyPair().privateKey
    const second = generateKeyPair().privateKey
    const [a, b] = await Promise.all([store.saveIfAbsent('node', first), store.saveIfAbsent('node', second)])
    expect(a).toEqual(b)
    expect(await store.load('node')).toEqual(a)
    const pairs = await Promise.all([loadOrCreateKeyPair(store, 'disco'), loadOrCreateKeyPair(store, 'disco'), loadOrCreateKeyPair(store, 'disco')])
    expect(pairs[1]).toEqual(pairs[0])
    expect(pairs[2]).toEqual(pairs[0])
  })

  it('refuses bad names and bad keys without storing anything', async () => {
    const store = make()
    await expect(store.save('../etc/passwd', new Uint8Array(32))).rejects.toThrow(KeyStoreError)
    await expect(store.load('')).rejects.toThrow(/key name "" must be/)
    await expect(store.save('node', new Uint8Array(31))).rejects.toThrow('key "node" must be 32 bytes, got 31 bytes')
    expect(await store.load('node')).toBeUndefined()
  })
})

describe('FileKeyStore', () => {
  it('writes wg-format base64 with mode 0600 in a 0700 directory and leaves no temporary files', async () => {
    const store = new FileKeyStore(join(dir, 'keys'))
    const { privateKey } = generateKeyPair()
    await store.save('node', privateKey)
    const path = store.pathOf('node')
    expect(readFileSync(path, 'utf8')).toBe(`${formatKey(privateKey)}\n`)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'keys')).mode & 0o777).toBe(0o700)
    await store.save('node', generateKeyPair().privateKey)
    expect(readdirSync(join(dir, 'keys'))).toEqual(['node.key'])
  })

  it('refuses a key file others can read, and a corrupt one, naming the file', async () => {
    const store = new FileKeyStore(dir)
    writeFileSync(join(dir, 'node.key'), formatKey(generateKeyPair().privateKey), { mode: 0o644 })
    chmodSync(join(dir, 'node.key'), 0o644)
    await expect(store.load('node')).rejects.toThrow(`${join(dir, 'node.key')} is readable by others (mode 644); run chmod 600`)
    writeFileSync(join(dir, 'bad.key'), 'not a key', { mode: 0o600 })
    await expect(store.load('bad')).rejects.toThrow(`${join(dir, 'bad.key')}: key`)
  })

  it('reads keys written by wg genkey (trailing newline)', async () => {
    const store = new FileKeyStore(dir)
    const { privateKey } = generateKeyPair()
    writeFileSync(join(dir, 'wg.key'), `${formatKey(privateKey)}\n`, { mode: 0o600 })
    expect(await store.load('wg')).toEqual(privateKey)
  })
})

describe('IndexedDbKeyStore', () => {
  it('says plainly when IndexedDB is missing (Node) instead of failing obscurely', async () => {
    await expect(new IndexedDbKeyStore().load('node')).rejects.toThrow('IndexedDB is not available here')
  })
})
