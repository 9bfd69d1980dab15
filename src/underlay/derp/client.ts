// Several relays at once: the home relay (NotePreferred), plus connections opened on demand to
// the home relay of a peer we send to, closed again after a minute without traffic.
import { DerpConnection, type DerpConnectionOptions } from './connection.ts'
import { Emitter } from './emitter.ts'

export interface DerpClientOptions extends Omit<DerpConnectionOptions, 'url'> {
  homeUrl: string
  /** A non-home connection with no packet in either direction for this long is closed. */
  idleCloseMs?: number
}

export interface DerpClientEvents {
  packet: [source: Uint8Array, packet: Uint8Array, connection: DerpConnection]
  /** A relay connection came into use; it is one underlay transport until `connection-removed`. */
  'connection-added': [connection: DerpConnection]
  'connection-removed': [connection: DerpConnection]
}

interface Entry {
  connection: DerpConnection
  lastUsedAt: number
  idleTimer: ReturnType<typeof setTimeout> | undefined
}

export class DerpClient extends Emitter<DerpClientEvents> {
  private readonly entries = new Map<string, Entry>()
  private homeUrl: string
  private readonly idleCloseMs: number
  private readonly clock: () => number
  private closed = false

  constructor(private readonly options: DerpClientOptions) {
    super()
    this.homeUrl = options.homeUrl
    this.idleCloseMs = options.idleCloseMs ?? 60_000
    this.clock = options.clock ?? (() => performance.now())
  }

  /** Opens the home relay connection. */
  start(): this {
    this.open(this.homeUrl).connection.setPreferred(true)
    return this
  }

  /** The home relay connection (undefined before `start()` and after `close()`). */
  get home(): DerpConnection | undefined {
    return this.entries.get(this.homeUrl)?.connection
  }

  get connections(): DerpConnection[] {
    return [...this.entries.values()].map((e) => e.connection)
  }

  /** Sends through `relayUrl` (the destination's home relay), or our home relay when omitted. */
  send(destination: Uint8Array, packet: Uint8Array, relayUrl: string = this.homeUrl): void {
    if (this.closed) return
    const entry = this.open(relayUrl)
    entry.lastUsedAt = this.clock()
    entry.connection.send(destination, packet)
  }

  /** Moves home: the new relay is told it is preferred, the old one that it is not (and may idle out). */
  setHome(url: string): void {
    if (url === this.homeUrl) return
    const old = this.entries.get(this.homeUrl)
    this.homeUrl = url
    const entry = this.open(url)
    this.cancelIdle(entry)
    entry.connection.setPreferred(true)
    if (old) {
      old.connection.setPreferred(false)
      old.lastUsedAt = this.clock()
      this.armIdle(old.connection.url, old)
    }
  }

  close(): void {
    this.closed = true
    for (const [url, entry] of this.entries) this.remove(url, entry)
  }

  private open(url: string): Entry {
    const existing = this.entries.get(url)
    if (existing) return existing
    const connection = new DerpConnection({ ...this.options, url })
    const entry: Entry = { connection, lastUsedAt: this.clock(), idleTimer: undefined }
    this.entries.set(url, entry)
    connection.on('packet', (source, packet) => {
      entry.lastUsedAt = this.clock()
      this.emit('packet', source, packet, connection)
    })
    this.emit('connection-added', connection)
    connection.start()
    if (url !== this.homeUrl) this.armIdle(url, entry)
    return entry
  }

  private armIdle(url: string, entry: Entry): void {
    this.cancelIdle(entry)
    const due = entry.lastUsedAt + this.idleCloseMs
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = undefined
      if (url === this.homeUrl || this.entries.get(url) !== entry) return
      if (this.clock() >= entry.lastUsedAt + this.idleCloseMs) this.remove(url, entry)
      else this.armIdle(url, entry)
    }, Math.max(0, due - this.clock()))
  }

  private cancelIdle(entry: Entry): void {
    if (entry.idleTimer !== undefined) clearTimeout(entry.idleTimer)
    entry.idleTimer = undefined
  }

  private remove(url: string, entry: Entry): void {
    this.cancelIdle(entry)
    this.entries.delete(url)
    entry.connection.close()
    this.emit('connection-removed', entry.connection)
  }
}
