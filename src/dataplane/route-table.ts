// Longest-prefix-match table over IPv4 and IPv6 prefixes: a binary trie per address family.
// Lookups walk at most 32 (IPv4) or 128 (IPv6) nodes, independent of how many routes exist.
import { DataplaneError } from './errors.ts'

/** Structurally the same as `Prefix` from `src/wire/address.ts`. */
export interface RoutePrefix {
  address: Uint8Array
  bits: number
}

interface TrieNode<V> {
  zero: TrieNode<V> | undefined
  one: TrieNode<V> | undefined
  /** Whether a route ends exactly here (a value may legitimately be `undefined`). */
  hasValue: boolean
  value: V | undefined
}

function newNode<V>(): TrieNode<V> {
  return { zero: undefined, one: undefined, hasValue: false, value: undefined }
}

function bitAt(address: Uint8Array, index: number): number {
  return (address[index >> 3]! >> (7 - (index & 7))) & 1
}

/** Throws `DataplaneError('bad-prefix')` unless `prefix` is a 4- or 16-byte address with a length in range. */
export function checkPrefix(prefix: RoutePrefix): void {
  const length = prefix.address.length
  if (length !== 4 && length !== 16) {
    throw new DataplaneError('bad-prefix', `route prefix address must be 4 or 16 bytes, got ${length}`)
  }
  if (!Number.isInteger(prefix.bits) || prefix.bits < 0 || prefix.bits > length * 8) {
    throw new DataplaneError('bad-prefix', `route prefix length ${prefix.bits} is out of range 0..${length * 8}`)
  }
}

/**
 * Maps IP prefixes to values and answers "which value owns this address" by longest prefix.
 * Host bits beyond a prefix's length are ignored (10.1.2.3/8 is 10.0.0.0/8).
 */
export class RouteTable<V> {
  private readonly v4: TrieNode<V> = newNode()
  private readonly v6: TrieNode<V> = newNode()
  private count = 0

  get size(): number {
    return this.count
  }

  /** Sets the value for `prefix`; returns the value it replaced, if there was one. */
  insert(prefix: RoutePrefix, value: V): { replaced: boolean; previous: V | undefined } {
    checkPrefix(prefix)
    let node = prefix.address.length === 4 ? this.v4 : this.v6
    for (let i = 0; i < prefix.bits; i++) {
      if (bitAt(prefix.address, i) === 0) node = node.zero ??= newNode()
      else node = node.one ??= newNode()
    }
    const replaced = node.hasValue
    const previous = node.value
    if (!replaced) this.count++
    node.hasValue = true
    node.value = value
    return { replaced, previous }
  }

  /** Removes exactly `prefix` (not its more-specific routes). Returns whether it existed. */
  remove(prefix: RoutePrefix): boolean {
    checkPrefix(prefix)
    const root = prefix.address.length === 4 ? this.v4 : this.v6
    const path: TrieNode<V>[] = [root]
    let node: TrieNode<V> | undefined = root
    for (let i = 0; i < prefix.bits && node; i++) {
      node = bitAt(prefix.address, i) === 0 ? node.zero : node.one
      if (node) path.push(node)
    }
    if (!node || !node.hasValue) return false
    node.hasValue = false
    node.value = undefined
    this.count--
    // Prune now-empty branches so the trie does not grow without bound under churn.
    for (let depth = path.length - 1; depth > 0; depth--) {
      const child = path[depth]!
      if (child.hasValue || child.zero || child.one) break
      const parent = path[depth - 1]!
      if (bitAt(prefix.address, depth - 1) === 0) parent.zero = undefined
      else parent.one = undefined
    }
    return true
  }

  /** The value of the longest prefix containing `address`, or undefined. */
  lookup(address: Uint8Array): V | undefined {
    const length = address.length
    let node: TrieNode<V> | undefined
    if (length === 4) node = this.v4
    else if (length === 16) node = this.v6
    else return undefined
    let best: V | undefined = node.hasValue ? node.value : undefined
    const totalBits = length * 8
    for (let i = 0; i < totalBits; i++) {
      node = bitAt(address, i) === 0 ? node.zero : node.one
      if (!node) break
      if (node.hasValue) best = node.value
    }
    return best
  }

  /** The value stored for exactly `prefix`, if any. */
  get(prefix: RoutePrefix): V | undefined {
    checkPrefix(prefix)
    let node: TrieNode<V> | undefined = prefix.address.length === 4 ? this.v4 : this.v6
    for (let i = 0; i < prefix.bits && node; i++) node = bitAt(prefix.address, i) === 0 ? node.zero : node.one
    return node?.hasValue ? node.value : undefined
  }

  /** Every route, IPv4 first, in trie order. Addresses are fresh, host bits zeroed. */
  *entries(): IterableIterator<[RoutePrefix, V]> {
    yield* walk(this.v4, new Uint8Array(4), 0)
    yield* walk(this.v6, new Uint8Array(16), 0)
  }

  clear(): void {
    for (const root of [this.v4, this.v6]) {
      root.zero = root.one = undefined
      root.hasValue = false
      root.value = undefined
    }
    this.count = 0
  }
}

function* walk<V>(node: TrieNode<V>, address: Uint8Array, depth: number): IterableIterator<[RoutePrefix, V]> {
  if (node.hasValue) yield [{ address: address.slice(), bits: depth }, node.value as V]
  if (node.zero) yield* walk(node.zero, address, depth + 1)
  if (node.one) {
    address[depth >> 3]! |= 0x80 >> (depth & 7)
    yield* walk(node.one, address, depth + 1)
    address[depth >> 3]! &= ~(0x80 >> (depth & 7))
  }
}
