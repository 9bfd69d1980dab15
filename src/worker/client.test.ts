// The request/response layer both page⇄worker ports use (the dataplane's, the node agent's).
import { describe, expect, it } from 'vitest'
import { RequestTable } from './client.ts'

const toError = (error: string, op: string): Error => new Error(`${op}: ${error}`)

describe('RequestTable', () => {
  it('matches answers to requests by id, in any order, and says when an id is unknown', async () => {
    const table = new RequestTable()
    const posted: number[] = []
    const a = table.send<string>('status', (id) => posted.push(id))
    const b = table.send<string>('stop', (id) => posted.push(id))
    expect(posted).toEqual([1, 2])
    expect(table.settle(2, { ok: false, error: 'not started' }, toError)).toBe(true)
    expect(table.settle(1, { ok: true, value: 'fine' }, toError)).toBe(true)
    await expect(a).resolves.toBe('fine')
    await expect(b).rejects.toThrow('stop: not started')
    expect(table.settle(1, { ok: true, value: 'again' }, toError)).toBe(false)
    expect(table.settle(99, { ok: true, value: null }, toError)).toBe(false)
  })

  it('rejects a request whose post throws, and after fail() every pending and later one', async () => {
    const table = new RequestTable()
    await expect(
      table.send('start', () => {
        throw new TypeError('could not clone')
      }),
    ).rejects.toThrow('could not clone')
    const pending = table.send('status', () => {})
    expect(table.fail(new Error('worker gone'))).toBe(true)
    expect(table.fail(new Error('twice'))).toBe(false)
    await expect(pending).rejects.toThrow('worker gone')
    let posted = false
    await expect(table.send('status', () => (posted = true))).rejects.toThrow('worker gone')
    expect(posted).toBe(false)
    expect(table.failed?.message).toBe('worker gone')
  })
})
