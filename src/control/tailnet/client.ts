// The tailnet control client driver: owns the ts2021 transport, the timers and the retry loop
// around the sans-IO Ts2021Connection, and offers what a ControlPlane needs: the control key,
// register (auth key, interactive, logout), the streamed map long-poll and "lite" updates. It
// emits raw MapResponse objects; merging them into a netmap is netmap.ts's job.
// Upstream behaviour: tailscale.com/control/controlclient/{direct,noise}.go.
import { BurrowError } from '../../burrow-errors.ts'
import { systemClock, type DriverClock, type Timer } from '../../clock/clock.ts'
import { equalBytes, parseKey, publicKeyOf, toHex } from '../../crypto/index.ts'
import { backoffDelay } from '../coordination-client.ts'
import { CAPABILITY_VERSION } from './capver.ts'
import type { ByteStream, Ts2021Dialer } from './dial.ts'
import type { HeaderList } from './hpack.ts'
import { decodeMapMessage, isZstd, loadZstd, MapMessageReader, MapStreamError } from './map-stream.ts'
import type { MapResponse } from './tailcfg.ts'
import type { MapRequest, NodeKeyText, OverTLSPublicKeyResponse, RegisterRequest, RegisterResponse } from './tailcfg-requests.ts'
import { Ts2021Connection, Ts2021Error, type Ts2021Event } from './ts2021.ts'

/** control/controlclient/direct.go watchdogTimeout: this long without a map message = dead stream. */
export const MAP_WATCHDOG_MS = 120_000
/** Go's decode() reads at most 1 MiB of a non-streamed answer. */
const MAX_RESPONSE_BODY = 1 << 20
/** How long the Noise handshake and HTTP/2 start may take. */
const CONNECT_TIMEOUT_MS = 30_000

export interface TailnetControlOptions {
  /** `http(s)://control[:port]` (Headscale's server_url). */
  controlURL: string
  /** The machine key: the Noise static key that identifies this machine to control. */
  machinePrivate: Uint8Array
  /** A pinned control key (`mkey:<hex>`); otherwise fetched from `/key?v=<capver>`. */
  controlKey?: string
  /** The transport (webSocketDialer() in browsers; httpUpgradeDialer() or webSocketDialer in Node). */
  dialer: Ts2021Dialer
  /** Only for tests of version refusal; everything else uses CAPABILITY_VERSION. */
  capabilityVersion?: number
  fetch?: typeof fetch
  /** Every timer (handshake timeout, map watchdog, backoff) runs on it; tests pass a ManualClock. */
  clock?: DriverClock
  random?: () => number
}

export interface StreamHandlers {
  onResponse(status: number, headers: HeaderList): void
  onData(data: Uint8Array): void
  onEnd(): void
  onError(error: BurrowError): void
}

/** One live ts2021 connection: routes HTTP/2 events to per-stream handlers. */
class ControlConnection {
  readonly ready: Promise<void>
  readonly #handlers = new Map<number, StreamHandlers>()
  #transport: ByteStream | undefined
  #failure: BurrowError | undefined
  #resolveReady!: () => void
  #rejectReady!: (error: BurrowError) => void
  #readyTimer: Timer | undefined
  #sawReady = false
  #transportOpen = false

  readonly #conn: Ts2021Connection
  readonly #clock: DriverClock
  readonly #explainHandshakeFailure: (error: Ts2021Error) => Promise<BurrowError>

  constructor(conn: Ts2021Connection, clock: DriverClock, explainHandshakeFailure: (error: Ts2021Error) => Promise<BurrowError>) {
    this.#conn = conn
    this.#clock = clock
    this.#explainHandshakeFailure = explainHandshakeFailure
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve
      this.#rejectReady = reject
    })
    this.ready.catch(() => {})
  }

  get usable(): boolean {
    return !this.#failure && this.#conn.acceptsRequests
  }

  attach(transport: ByteStream): void {
    this.#transport = transport
    this.#readyTimer = this.#clock.setTimer(this.#clock.now() + CONNECT_TIMEOUT_MS, () => {
      this.#onEvents(this.#conn.transportClosed(`no Noise handshake response within ${CONNECT_TIMEOUT_MS} ms`), true)
      transport.close()
    })
  }

  receive(bytes: Uint8Array): void {
    this.#onEvents(this.#conn.receive(bytes, this.#clock.now()), false)
  }

  /** The transport is up (TCP/WebSocket connected); from now on a close is the server's answer. */
  opened(): void {
    this.#transportOpen = true
  }

  closed(reason: string, detail?: { status?: number; body?: string }): void {
    // Never connected (refused, unreachable, DNS): nothing to do with keys or versions.
    if (!this.#transportOpen && detail?.status === undefined) this.#fail(new BurrowError('unreachable', `could not connect to the control server: ${reason}`))
    let events = this.#conn.transportClosed(reason)
    if (detail?.status !== undefined) {
      const error = new Ts2021Error('closed', reason)
      // The upgrade itself was refused (e.g. 404: not a ts2021 server): no handshake happened.
      events = events.map((e) => (e.type === 'closed' ? { type: 'closed', error } : e))
      this.#fail(new BurrowError(detail.status === 404 || detail.status === 405 ? 'unreachable' : 'coordination', reason, detail.status))
    }
    this.#onEvents(events, true)
  }

  open(head: { method: string; path: string; headers?: HeaderList }, body: Uint8Array | undefined, handlers: StreamHandlers): number {
    if (this.#failure) throw this.#failure
    const id = this.#conn.request(head, body)
    this.#handlers.set(id, handlers)
    this.#flush()
    return id
  }

  cancel(id: number): void {
    if (this.#handlers.delete(id)) {
      this.#conn.cancel(id)
      this.#flush()
    }
  }

  close(): void {
    this.#conn.close()
    this.#flush()
    this.#transport?.close()
    this.#fail(new BurrowError('closed', 'control connection closed'))
  }

  #flush(): void {
    for (const bytes of this.#conn.takeOutput()) this.#transport?.send(bytes)
  }

  #onEvents(events: Ts2021Event[], transportGone: boolean): void {
    this.#flush()
    for (const event of events) {
      switch (event.type) {
        case 'ready':
          this.#readyTimer?.clear()
          this.#sawReady = true
          this.#resolveReady()
          break
        case 'early':
        case 'pong':
        case 'goaway':
          break
        case 'response':
          this.#handlers.get(event.stream)?.onResponse(event.status, event.headers)
          break
        case 'data':
          this.#handlers.get(event.stream)?.onData(event.data)
          break
        case 'end': {
          const h = this.#handlers.get(event.stream)
          this.#handlers.delete(event.stream)
          h?.onEnd()
          break
        }
        case 'reset': {
          const h = this.#handlers.get(event.stream)
          this.#handlers.delete(event.stream)
          h?.onError(this.#failure ?? new BurrowError('unreachable', `control request failed: ${event.reason}`))
          break
        }
        case 'closed': {
          this.#readyTimer?.clear()
          const error = event.error
          if (!this.#sawReady && !this.#failure) {
            void this.#explainHandshakeFailure(error).then((e) => this.#fail(e))
          } else {
            this.#fail(
              this.#failure ?? new BurrowError(error.code === 'http2' || error.code === 'bad-frame' || error.code === 'decrypt-failed' ? 'protocol' : 'unreachable', error.message),
            )
          }
          if (!transportGone) this.#transport?.close()
          break
        }
      }
    }
  }

  #fail(error: BurrowError): void {
    if (this.#failure) return
    this.#failure = error
    this.#rejectReady(error)
    const pending = [...this.#handlers.values()]
    this.#handlers.clear()
    for (const h of pending) h.onError(error)
  }
}

export interface RoundTrip {
  status: number
  headers: HeaderList
  body: Uint8Array
}

export type MapPollState = 'connecting' | 'streaming' | 'reconnecting' | 'stopped' | 'failed'

export interface MapPollOptions {
  /** Built afresh for every (re)connection: current Hostinfo (PreferredDERP), DiscoKey, … */
  request(): Omit<MapRequest, 'Version' | 'Stream' | 'KeepAlive' | 'Compress'>
  /** Every non-keep-alive message, in order, as the server sent it. */
  onMessage(message: MapResponse): void
  onKeepAlive?(): void
  onState?(state: MapPollState, detail?: { error?: BurrowError; retryInMs?: number }): void
}

export interface MapPoll {
  /** Ends the long-poll for good. */
  stop(): void
  /** Drops the current stream and opens a new one now (e.g. after the node key changed). */
  restart(): void
}

export class TailnetControlClient {
  readonly version: number
  readonly #clock: DriverClock
  readonly #fetchImpl: typeof fetch
  readonly #random: () => number
  #controlKeyPromise: Promise<Uint8Array> | undefined
  #current: ControlConnection | undefined
  #closedForGood = false

  readonly #options: TailnetControlOptions

  constructor(options: TailnetControlOptions) {
    this.#options = options
    this.version = options.capabilityVersion ?? CAPABILITY_VERSION
    this.#clock = options.clock ?? systemClock
    this.#fetchImpl = options.fetch ?? ((...args) => fetch(...args))
    this.#random = options.random ?? Math.random
    if (options.machinePrivate.length !== 32) throw new BurrowError('bad-options', 'machine key must be 32 bytes')
  }

  /** The machine public key control knows us by (`mkey:<hex>`). */
  get machineKey(): string {
    return `mkey:${toHex(publicKeyOf(this.#options.machinePrivate))}`
  }

  /** The control server's Noise key: pinned, or `GET /key?v=<capver>` → `publicKey` (tailcfg.OverTLSPublicKeyResponse). */
  controlKey(): Promise<Uint8Array> {
    this.#controlKeyPromise ??= (async () => {
      if (this.#options.controlKey !== undefined) {
        try {
          return parseKey(this.#options.controlKey)
        } catch (error) {
          throw new BurrowError('bad-options', `controlKey: ${(error as Error).message}`)
        }
      }
      return this.#fetchControlKey()
    })()
    this.#controlKeyPromise.catch(() => (this.#controlKeyPromise = undefined))
    return this.#controlKeyPromise
  }

  async #fetchControlKey(): Promise<Uint8Array> {
    const url = new URL(`/key?v=${this.version}`, this.#options.controlURL)
    let response: Response
    try {
      response = await this.#fetchImpl(url)
    } catch (error) {
      throw new BurrowError(
        'unreachable',
        `could not fetch the control key from ${url} (${(error as Error).message}); a page on another origin cannot read it (no CORS): pin it with controlKey: 'mkey:…'`,
      )
    }
    if (!response.ok)
      throw new BurrowError(
        response.status === 404 ? 'unreachable' : 'coordination',
        `${url} answered ${response.status}: not a Tailscale-protocol control server?`,
        response.status,
      )
    let parsed: OverTLSPublicKeyResponse
    try {
      parsed = (await response.json()) as OverTLSPublicKeyResponse
      return parseKey(parsed.publicKey)
    } catch {
      throw new BurrowError('protocol', `${url} did not answer with {"publicKey":"mkey:…"}`)
    }
  }

  /** Says why a handshake failed: a key mismatch (checked against /key when we pinned one) or our version. */
  async #explainHandshakeFailure(error: Ts2021Error, used: Uint8Array): Promise<BurrowError> {
    if (error.code === 'server-error') return new BurrowError('unsupported-version', error.message)
    if (error.code === 'decrypt-failed') return new BurrowError('control-key', `the control server does not hold the control key mkey:${toHex(used)}: ${error.message}`)
    let actual: Uint8Array | undefined
    try {
      actual = await this.#fetchControlKey()
    } catch {
      // Unknown (e.g. no CORS): say both possibilities.
    }
    if (actual && !equalBytes(actual, used)) {
      return new BurrowError('control-key', `the control server's key is mkey:${toHex(actual)}, not the mkey:${toHex(used)} we used; it closed the Noise handshake`)
    }
    if (actual) return new BurrowError('unsupported-version', `the control server closed the Noise handshake: it does not support capability version ${this.version}`)
    return new BurrowError('control-key', `${error.message} (capability version ${this.version})`)
  }

  #connecting: Promise<ControlConnection> | undefined

  /** The live connection, or a new one; concurrent callers share one dial. */
  async #connection(): Promise<ControlConnection> {
    if (this.#closedForGood) throw new BurrowError('closed', 'control client closed')
    if (this.#current?.usable) {
      await this.#current.ready
      return this.#current
    }
    if (!this.#connecting) {
      this.#connecting = this.#dial()
      const clear = (): void => void (this.#connecting = undefined)
      this.#connecting.then(clear, clear)
    }
    return this.#connecting
  }

  async #dial(): Promise<ControlConnection> {
    const controlPublic = await this.controlKey()
    const url = new URL(this.#options.controlURL)
    const conn = new Ts2021Connection({ machinePrivate: this.#options.machinePrivate, controlPublic, version: this.version, authority: url.host })
    const wrapper = new ControlConnection(conn, this.#clock, (e) => this.#explainHandshakeFailure(e, controlPublic))
    this.#current = wrapper
    const transport = this.#options.dialer(this.#options.controlURL, conn.handshakeParameter, {
      onOpen: () => wrapper.opened(),
      onData: (bytes) => wrapper.receive(bytes),
      onClose: (reason, detail) => wrapper.closed(reason, detail),
    })
    wrapper.attach(transport)
    await wrapper.ready
    return wrapper
  }

  /** A streaming request: handlers get the response, the body as it arrives, and the end. */
  async stream(path: string, body: unknown, handlers: StreamHandlers): Promise<() => void> {
    const conn = await this.#connection()
    const json = new TextEncoder().encode(JSON.stringify(body))
    const id = conn.open(
      {
        method: 'POST',
        path,
        headers: [
          ['content-type', 'application/json'],
          ['content-length', String(json.length)],
        ],
      },
      json,
      handlers,
    )
    return () => conn.cancel(id)
  }

  /** POST a JSON body and read the whole (≤ 1 MiB) answer. */
  roundTrip(path: string, body: unknown): Promise<RoundTrip> {
    return new Promise((resolve, reject) => {
      let status = 0
      let headers: HeaderList = []
      const chunks: Uint8Array[] = []
      let size = 0
      let cancel: (() => void) | undefined
      this.stream(path, body, {
        onResponse: (s, h) => {
          status = s
          headers = h
        },
        onData: (data) => {
          size += data.length
          if (size > MAX_RESPONSE_BODY) {
            cancel?.()
            reject(new BurrowError('protocol', `control answer to ${path} exceeds ${MAX_RESPONSE_BODY} bytes`))
          } else chunks.push(data)
        },
        onEnd: () => {
          const out = new Uint8Array(size)
          let o = 0
          for (const c of chunks) {
            out.set(c, o)
            o += c.length
          }
          resolve({ status, headers, body: out })
        },
        onError: reject,
      }).then((c) => (cancel = c), reject)
    })
  }

  async #postJson<T>(path: string, body: unknown): Promise<T> {
    const answer = await this.roundTrip(path, body)
    const text = new TextDecoder().decode(answer.body)
    if (answer.status !== 200) throw statusError(path, answer.status, text)
    try {
      return JSON.parse(text) as T
    } catch {
      throw new BurrowError('protocol', `control answer to ${path} is not JSON: ${JSON.stringify(text.slice(0, 200))}`)
    }
  }

  /**
   * POST /machine/register. A response with `Error` (e.g. Headscale's "invalid pre auth key")
   * becomes BurrowError 'unauthorized'; one with `AuthURL` is returned for the caller to show.
   */
  async register(request: Omit<RegisterRequest, 'Version'>): Promise<RegisterResponse> {
    const response = await this.#postJson<RegisterResponse>('/machine/register', { Version: this.version, ...request })
    if (typeof response !== 'object' || response === null) throw new BurrowError('protocol', 'register answer is not a JSON object')
    if (response.Error) throw new BurrowError('unauthorized', `control refused the registration: ${response.Error}`, 401)
    return response
  }

  /** Registers with an auth key (pre-auth key): authorized at once, or an error. */
  async registerWithAuthKey(request: Omit<RegisterRequest, 'Version' | 'Auth'>, authKey: string): Promise<RegisterResponse> {
    const response = await this.register({ ...request, Auth: { AuthKey: authKey } })
    if (!response.MachineAuthorized)
      throw new BurrowError('unauthorized', `control did not authorize the machine${response.AuthURL ? ` (it asks for an interactive login at ${response.AuthURL})` : ''}`, 401)
    return response
  }

  /**
   * Interactive login: registers without credentials; when control answers with an AuthURL it is
   * handed to `onAuthURL` (the app shows it), then a Followup request long-polls until the user
   * has logged in (controlclient/direct.go doLogin).
   */
  async login(request: Omit<RegisterRequest, 'Version' | 'Auth' | 'Followup'>, onAuthURL: (url: string) => void): Promise<RegisterResponse> {
    let response = await this.register(request)
    while (!response.MachineAuthorized && response.AuthURL) {
      onAuthURL(response.AuthURL)
      response = await this.register({ ...request, Followup: response.AuthURL })
    }
    if (!response.MachineAuthorized) throw new BurrowError('unauthorized', 'control did not authorize the machine', 401)
    return response
  }

  /** Logout: a register request whose Expiry is in the past (controlclient/direct.go doLogin with logout). */
  async logout(nodeKey: NodeKeyText, hostinfo?: RegisterRequest['Hostinfo']): Promise<void> {
    await this.register({ NodeKey: nodeKey, Expiry: new Date(123_000).toISOString(), ...(hostinfo ? { Hostinfo: hostinfo } : {}) })
  }

  /** A "lite" update (Hostinfo / PreferredDERP change): a non-streaming map request without peers. */
  async liteUpdate(request: Omit<MapRequest, 'Version' | 'Stream' | 'OmitPeers' | 'KeepAlive' | 'Compress'>): Promise<void> {
    const answer = await this.roundTrip('/machine/map', { Version: this.version, Compress: '', KeepAlive: false, ...request, Stream: false, OmitPeers: true })
    if (answer.status !== 200) throw statusError('/machine/map', answer.status, new TextDecoder().decode(answer.body))
  }

  /**
   * The streamed map long-poll: one stream at a time, restarted with backoff when it ends, fails
   * or goes quiet for 120 s (MAP_WATCHDOG_MS). Refusals (HTTP 4xx) stop it with state 'failed'.
   */
  pollMap(options: MapPollOptions): MapPoll {
    let stopped = false
    let attempt = 0
    let cancelStream: (() => void) | undefined
    let watchdog: Timer | undefined
    let retryTimer: Timer | undefined
    let generation = 0
    const state = (s: MapPollState, detail?: { error?: BurrowError; retryInMs?: number }): void => options.onState?.(s, detail)

    const clearTimers = (): void => {
      watchdog?.clear()
      retryTimer?.clear()
    }
    const retry = (error: BurrowError | undefined, gen: number, dropConnection: boolean): void => {
      if (stopped || gen !== generation) return
      generation++
      cancelStream?.()
      cancelStream = undefined
      clearTimers()
      if (dropConnection) this.#dropConnection()
      const delay = backoffDelay(attempt++, this.#random)
      state('reconnecting', { ...(error ? { error } : {}), retryInMs: delay })
      retryTimer = this.#clock.setTimer(this.#clock.now() + delay, () => void start())
    }
    const fatal = (error: BurrowError): void => {
      stopped = true
      generation++
      cancelStream?.()
      clearTimers()
      state('failed', { error })
    }
    const start = async (): Promise<void> => {
      if (stopped) return
      const gen = generation
      state('connecting')
      const reader = new MapMessageReader()
      let status = 0
      let errorBody = ''
      // Messages are handled strictly in order; a zstd one waits for the decoder to load.
      let queue: Promise<void> = Promise.resolve()
      const armWatchdog = (): void => {
        watchdog?.clear()
        watchdog = this.#clock.setTimer(this.#clock.now() + MAP_WATCHDOG_MS, () =>
          retry(new BurrowError('unreachable', `no map message for ${MAP_WATCHDOG_MS / 1000} s`), gen, true),
        )
      }
      const handle = (message: Uint8Array): void => {
        queue = queue.then(async () => {
          if (gen !== generation) return
          const decompress = isZstd(message) ? await loadZstd() : undefined
          if (gen !== generation) return
          let parsed: MapResponse
          try {
            parsed = decodeMapMessage(message, decompress)
          } catch (error) {
            return retry(new BurrowError('protocol', `garbled map message: ${(error as Error).message}`), gen, false)
          }
          attempt = 0
          if (parsed.KeepAlive && Object.keys(parsed).length === 1) options.onKeepAlive?.()
          else options.onMessage(parsed)
        })
      }
      try {
        const body = { Version: this.version, Compress: '', KeepAlive: true, ...options.request(), Stream: true }
        armWatchdog()
        const cancel = await this.stream('/machine/map', body, {
          onResponse: (s) => {
            status = s
            if (s === 200) state('streaming')
          },
          onData: (data) => {
            if (gen !== generation) return
            if (status !== 200) {
              errorBody += new TextDecoder().decode(data)
              return
            }
            armWatchdog()
            let messages: Uint8Array[]
            try {
              messages = reader.push(data)
            } catch (error) {
              return retry(new BurrowError('protocol', `garbled map stream: ${(error as MapStreamError).message}`), gen, false)
            }
            for (const m of messages) handle(m)
          },
          onEnd: () => {
            if (status !== 200) {
              const error = statusError('/machine/map', status, errorBody)
              if (status >= 400 && status < 500) return fatal(error)
              return retry(error, gen, false)
            }
            void queue.then(() => retry(undefined, gen, false))
          },
          onError: (error) => retry(error, gen, true),
        })
        if (gen !== generation || stopped) cancel()
        else cancelStream = cancel
      } catch (error) {
        const e = error instanceof BurrowError ? error : new BurrowError('unreachable', String(error))
        if (e.code === 'control-key' || e.code === 'unsupported-version' || e.code === 'bad-options') fatal(e)
        else retry(e, gen, true)
      }
    }
    void start()
    return {
      stop: () => {
        if (stopped) return
        stopped = true
        generation++
        cancelStream?.()
        clearTimers()
        state('stopped')
      },
      restart: () => {
        if (stopped) return
        generation++
        cancelStream?.()
        cancelStream = undefined
        clearTimers()
        attempt = 0
        void start()
      },
    }
  }

  #dropConnection(): void {
    this.#current?.close()
    this.#current = undefined
  }

  /** Closes the connection; the client cannot be used afterwards. */
  close(): void {
    this.#closedForGood = true
    this.#dropConnection()
  }
}

function statusError(path: string, status: number, text: string): BurrowError {
  const detail = text.trim().slice(0, 300)
  if (status === 400 && /unsupported client version/i.test(detail)) return new BurrowError('unsupported-version', `control refused ${path}: ${detail}`, status)
  const code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'coordination'
  return new BurrowError(code, `control answered ${status} to ${path}${detail ? `: ${detail}` : ''}`, status)
}
