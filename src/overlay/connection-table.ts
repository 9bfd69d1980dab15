import { addressEquals as imported_addressEquals, type IpAddress } from '../wire/index.ts'

// Module-local copies of the imports the per-packet path calls: under Node's ESM→CJS interop
// (tsx, vitest) every use of an imported binding is a getter call, ~10 % of a 1420-byte profile.
const addressEquals = imported_addressEquals

// TCP demultiplexing by 4-tuple without building a key string per packet: connections are
// bucketed by their port pair (one number) and the few in a bucket compared by address.
// Iteration follows insertion order, as a Map's does, so polling order is unchanged.

function portPair(localPort: number, remotePort: number): number {
  return localPort * 0x10000 + remotePort
}

/** What the table needs of a connection: its own 4-tuple, fixed for its lifetime. */
export interface FourTuple {
  readonly localAddress: IpAddress
  readonly localPort: number
  readonly remoteAddress: IpAddress
  readonly remotePort: number
}

export class ConnectionTable<T extends FourTuple> {
  private readonly byPorts = new Map<number, T[]>()
  private readonly ordered = new Set<T>()

  get size(): number {
    return this.ordered.size
  }

  values(): IterableIterator<T> {
    return this.ordered.values()
  }

  get(local: IpAddress, localPort: number, remote: IpAddress, remotePort: number): T | undefined {
    const bucket = this.byPorts.get(portPair(localPort, remotePort))
    if (bucket === undefined) return undefined
    for (let i = 0; i < bucket.length; i++) {
      const connection = bucket[i]!
      if (addressEquals(connection.remoteAddress, remote) && addressEquals(connection.localAddress, local)) return connection
    }
    return undefined
  }

  has(local: IpAddress, localPort: number, remote: IpAddress, remotePort: number): boolean {
    return this.get(local, localPort, remote, remotePort) !== undefined
  }

  /** Adds `connection` under its own 4-tuple, which must not be taken. */
  add(connection: T): void {
    const key = portPair(connection.localPort, connection.remotePort)
    const bucket = this.byPorts.get(key)
    if (bucket === undefined) this.byPorts.set(key, [connection])
    else bucket.push(connection)
    this.ordered.add(connection)
  }

  /** Removes `connection` if it is in the table. */
  delete(connection: T): void {
    if (!this.ordered.delete(connection)) return
    const key = portPair(connection.localPort, connection.remotePort)
    const bucket = this.byPorts.get(key)!
    const at = bucket.indexOf(connection)
    if (bucket.length === 1) this.byPorts.delete(key)
    else bucket.splice(at, 1)
  }
}
