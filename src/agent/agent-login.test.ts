// The agent's side of an interactive login and of a control client loaded lazily: a control
// plane (scripted here, the agent's view of any ControlPlane) that asks for a login hands the
// AuthURL to the page, the join deadline stops counting while a person approves, and a factory
// that answers with a promise (the browser worker's tailnet chunk) joins like a synchronous one.
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../clock/clock.ts'
import { ControlPlaneError, type ControlPlane, type ControlPlaneEvents, type ControlPlaneState, type Netmap } from '../control/control-plane.ts'
import { MemoryKeyStore } from '../control/key-store.ts'
import type { DerpDialer } from '../underlay/derp/dialer.ts'
import { NodeAgent, type ControlPlaneFor } from './agent.ts'
import type { NodeWorkerMessage } from './protocol.ts'

/** A control plane whose events the test fires by hand. */
class ScriptedControlPlane implements ControlPlane {
  readonly kind = 'scripted'
  state: ControlPlaneState = 'idle'
  netmap: Netmap | undefined
  stopped = false
  private readonly listeners = new Map<string, Set<(...args: unknown[]) => void>>()
  private resolveReady!: (netmap: Netmap) => void
  private rejectReady!: (error: unknown) => void
  private readonly readyPromise = new Promise<Netmap>((resolve, reject) => {
    this.resolveReady = resolve
    this.rejectReady = reject
  })
  on<K extends keyof ControlPlaneEvents>(event: K, listener: ControlPlaneEvents[K]): () => void {
    const set = this.listeners.get(event) ?? new Set()
    this.listeners.set(event, set)
    set.add(listener as (...args: unknown[]) => void)
    return () => set.delete(listener as (...args: unknown[]) => void)
  }
  fire(event: keyof ControlPlaneEvents, ...args: unknown[]): void {
    for (const listener of this.listeners.get(event) ?? []) listener(...args)
  }
  start(): void {
    this.state = 'connecting'
  }
  ready(): Promise<Netmap> {
    return this.readyPromise
  }
  askForLogin(url: string): void {
    this.state = 'needs-login'
    this.fire('state', 'needs-login')
    this.fire('auth-url', url)
  }
  approve(netmap: Netmap): void {
    this.netmap = netmap
    this.state = 'connected'
    this.resolveReady(netmap)
    this.fire('state', 'connected')
    this.fire('netmap', netmap, { upsert: [], remove: [], other: true })
  }
  setHomeRelay(): void {}
  async logout(): Promise<void> {}
  stop(): void {
    this.stopped = true
    this.state = 'stopped'
    this.rejectReady(new ControlPlaneError(0, 'stopped', true))
  }
}

const NETMAP: Netmap = {
  self: { nodeKey: 'nodekey:' + '11'.repeat(32), name: 'tab', addresses: ['100.64.0.9', 'fd7a:115c:a1e0::9'], homeRelay: null },
  peers: [],
  relayMap: { regions: new Map([[900, { id: 900, code: 'lab', name: 'Lab', nodes: [{ name: '900a', url: 'ws://derp.test:3340/derp' }] }]]) },
}

/** Runs every timer due in the next `ms`, then moves the clock there. */
function advance(clock: ManualClock, ms: number): void {
  const to = clock.now() + ms
  while (clock.fireNext(to));
  clock.set(to)
}

/** Waits for `condition`; with a clock, moves it 10 ms per turn (the relay login wait is 10 ms). */
async function until(what: string, condition: () => boolean, clock?: ManualClock): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (condition()) return
    if (clock) advance(clock, 10)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`timed out waiting for ${what}`)
}

const agents: NodeAgent[] = []
afterEach(() => {
  for (const agent of agents.splice(0)) agent.dispose()
})

function start(controlPlane: ControlPlaneFor, clock: ManualClock) {
  const events: NodeWorkerMessage[] = []
  const dial: DerpDialer = () => ({ send() {}, bufferedAmount: 0, close() {} })
  const agent = new NodeAgent(() => {}, { dial, keyStore: () => new MemoryKeyStore(), controlPlane, clock, joinTimeoutMs: 20_000, relayLoginWaitMs: 10, statsIntervalMs: 60_000 })
  agents.push(agent)
  const channel = new MessageChannel()
  agent.attachControl(channel.port2)
  channel.port1.onmessage = (event: MessageEvent) => events.push(event.data as NodeWorkerMessage)
  channel.port1.postMessage({
    type: 'call',
    id: 1,
    call: { op: 'join', options: { controlURL: 'http://control.test', control: 'tailnet', hostname: 'tab', storage: 'memory', keyName: 'node' } },
  })
  const result = () => events.find((e): e is Extract<NodeWorkerMessage, { type: 'result' }> => e.type === 'result' && e.id === 1)
  return { events, result }
}

describe('NodeAgent interactive login', () => {
  it('hands the AuthURL to the page and waits past the join deadline until the login is approved', async () => {
    const clock = new ManualClock(0)
    const control = new ScriptedControlPlane()
    const { events, result } = start(() => control, clock)
    await until('the control plane to start', () => control.state === 'connecting')
    control.askForLogin('http://control.test/register/abc123')
    await until('the auth-url message', () => events.some((e) => e.type === 'auth-url'))
    expect(events.filter((e) => e.type === 'auth-url')).toEqual([{ type: 'auth-url', url: 'http://control.test/register/abc123' }])
    // A person takes ten minutes: the 20 s join deadline must not end the join.
    advance(clock, 600_000)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(result()).toBeUndefined()
    control.approve(NETMAP)
    await until('the join result', () => result() !== undefined, clock)
    expect(result()).toMatchObject({ ok: true, value: { hostname: 'tab', addresses: ['100.64.0.9', 'fd7a:115c:a1e0::9'] } })
  })

  it('still fails a join at the deadline when control never asked for a login', async () => {
    const clock = new ManualClock(0)
    const control = new ScriptedControlPlane()
    const { result } = start(() => control, clock)
    await until('the control plane to start', () => control.state === 'connecting')
    advance(clock, 20_001)
    await until('the join result', () => result() !== undefined)
    expect(result()).toMatchObject({ ok: false, error: { message: expect.stringContaining('within 20 s') } })
    expect(control.stopped).toBe(true)
  })

  it('joins through a factory that answers with a promise (a lazily loaded control client)', async () => {
    const clock = new ManualClock(0)
    const control = new ScriptedControlPlane()
    let made = 0
    const { result } = start(async () => {
      await Promise.resolve()
      made++
      return control
    }, clock)
    await until('the control plane to start', () => control.state === 'connecting')
    control.approve(NETMAP)
    await until('the join result', () => result() !== undefined, clock)
    expect(made).toBe(1)
    expect(result()).toMatchObject({ ok: true, value: { hostname: 'tab' } })
  })

  it('a factory promise that rejects (a chunk that did not load) fails the join with its message', async () => {
    const clock = new ManualClock(0)
    const { result } = start(() => Promise.reject(new Error('the tailnet client (a lazily loaded chunk) did not load: offline')), clock)
    await until('the join result', () => result() !== undefined)
    expect(result()).toMatchObject({ ok: false, error: { message: expect.stringContaining('did not load: offline') } })
  })
})
