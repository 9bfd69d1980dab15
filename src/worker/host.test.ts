// Worker extensions, passed to the host's constructor: code living next to the dataplane (path
// selection, the node agent) sees disco and can answer it.
import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '../crypto/index.ts'
import { DISCO_MAGIC } from '../dataplane/core.ts'
import { WorkerHost, type WorkerContext, type WorkerExtension } from './host.ts'
import type { ResultMessage, WorkerMessage } from './protocol.ts'

describe('WorkerHost extensions', () => {
  it('start the extension with the dataplane and hand it disco datagrams it can answer directly', async () => {
    const seen: Uint8Array[] = []
    let started: WorkerContext | undefined
    const extension: WorkerExtension = {
      onStart: (context) => (started = context),
      onDisco: (disco, context) => {
        seen.push(disco.datagram)
        context.driver.sendDirect(disco.underlay, disco.endpoint, [Uint8Array.of(...DISCO_MAGIC, 0x02)])
      },
    }
    const messages: WorkerMessage[] = []
    const host = new WorkerHost((message) => messages.push(message), { extensions: [extension] })
    host.handle({ id: 1, request: { op: 'start', config: { privateKey: generateKeyPair().privateKey } } })
    expect(started).toBeDefined()
    expect(host.context).toBe(started)

    const link = new MessageChannel()
    host.handle({ id: 2, request: { op: 'add-underlay', spec: { kind: 'port', port: link.port1 } } })
    expect(messages.map((m) => (m as ResultMessage).ok)).toEqual([true, true])

    const ping = Uint8Array.of(...DISCO_MAGIC, 0x01, 9, 9, 9)
    const answer = new Promise<Uint8Array>((resolve) => {
      link.port2.onmessage = (event) => resolve(new Uint8Array((event.data as { buffers: ArrayBuffer[] }).buffers[0]!))
    })
    link.port2.postMessage({ type: 'datagrams', buffers: [ping.slice().buffer] })
    expect(await answer).toEqual(Uint8Array.of(...DISCO_MAGIC, 0x02))
    expect(seen).toEqual([ping])
    host.handle({ id: 3, request: { op: 'stop' } })
    expect(host.context).toBeUndefined()
    link.port2.close()
  })

  it('answers a malformed envelope with an error message instead of silence', () => {
    const messages: WorkerMessage[] = []
    const host = new WorkerHost((message) => messages.push(message))
    host.handle('garbage')
    host.handle({ id: 7, request: { op: 'fly' } })
    expect(messages[0]).toMatchObject({ type: 'error', error: { message: expect.stringMatching(/malformed request/) } })
    expect(messages[1]).toMatchObject({ type: 'result', id: 7, ok: false, error: { message: expect.stringMatching(/unknown operation "fly"/) } })
  })
})

describe('WorkerHost.request (same-thread callers such as the node agent)', () => {
  it('answers synchronously with the same values and errors the message path gives', () => {
    const host = new WorkerHost(() => {
      throw new Error('request() must not post anything')
    })
    expect(() => host.request({ op: 'remove-underlay', underlay: 1 })).toThrow(/not started/)
    const { publicKey } = host.request({ op: 'start', config: { privateKey: generateKeyPair().privateKey } })
    expect(host.request({ op: 'status' })).toMatchObject({ started: true, publicKey })
    expect(() => host.request({ op: 'add-underlay', spec: { kind: 'derp' } })).toThrow('unknown underlay kind "derp" (known: port)')
    host.request({ op: 'stop' })
    expect(host.request({ op: 'status' }).started).toBe(false)
  })
})
