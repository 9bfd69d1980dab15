import { describe, expect, it } from 'vitest'
import { formatNodeKey, generateKeyPair } from '../../crypto/index.ts'
import { WorkerHost } from '../../worker/host.ts'
import type { ResultMessage, WorkerMessage } from '../../worker/protocol.ts'
import { registerWebRtcUnderlayKind } from './register.ts'
import type { WebRtcUnderlay } from './webrtc-underlay.ts'

describe('the "webrtc" underlay kind', () => {
  it('is added through the worker host with the control port and our node key, and rejects specs without them', () => {
    const created: WebRtcUnderlay[] = []
    registerWebRtcUnderlayKind((underlay) => created.push(underlay))
    const messages: WorkerMessage[] = []
    const host = new WorkerHost((message) => messages.push(message))
    const keys = generateKeyPair()
    host.handle({ id: 1, request: { op: 'start', config: { privateKey: keys.privateKey } } })
    const control = new MessageChannel()
    host.handle({ id: 2, request: { op: 'add-underlay', spec: { kind: 'webrtc', port: control.port2, options: { nodeKey: formatNodeKey(keys.publicKey) } } } })
    const noKey = new MessageChannel()
    host.handle({ id: 3, request: { op: 'add-underlay', spec: { kind: 'webrtc', port: noKey.port2 } } })
    host.handle({ id: 4, request: { op: 'add-underlay', spec: { kind: 'webrtc', options: { nodeKey: keys.publicKey } } } })
    const results = messages as ResultMessage[]
    expect(results.map((r) => r.ok)).toEqual([true, true, false, false])
    expect(created).toHaveLength(1)
    expect(created[0]!.offersTo(new Uint8Array(32).fill(0xff))).toBe(!keys.publicKey.every((b) => b === 0xff))
    expect(results[2]!.ok === false && results[2]!.error.message).toMatch(/nodeKey/)
    expect(results[3]!.ok === false && results[3]!.error.message).toMatch(/MessagePort/)
    host.handle({ id: 5, request: { op: 'stop' } })
    for (const port of [control.port1, noKey.port1]) port.close()
  })
})
