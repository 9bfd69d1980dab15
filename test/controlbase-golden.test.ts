// Burrow's controlbase (ts2021 Noise) against Tailscale's own Go controlbase package, live in
// both roles (test/go/controlbase-golden). controlbase takes its ephemerals from crypto/rand, so
// there is no fixed transcript to compare; both sides print the Noise handshake hash instead,
// which mixes in every handshake byte, and then exchange multi-frame records.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createServer, connect, type Socket } from 'node:net'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { fromHex, publicKeyOf, toHex } from '../src/crypto/index.ts'
import { ControlbaseInitiator, acceptInitiation, INITIATION_LENGTH, type ControlbaseStream } from '../src/control/tailnet/controlbase.ts'

const TAILSCALE_VERSION = 'v1.102.5'
const GO_DIR = join(import.meta.dirname, 'go', 'controlbase-golden')
const BIN_DIR = join(homedir(), '.cache', 'burrow', 'go-bin', TAILSCALE_VERSION)
const hasGo = spawnSync('go', ['version']).status === 0
const filled = (start: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => start + i)
const controlPrivate = filled(0x11)
const machinePrivate = filled(0x21)
const VERSION = 130

function ensureGolden(): string {
  const goMod = readFileSync(join(GO_DIR, 'go.mod'), 'utf8')
  if (!goMod.includes(`tailscale.com ${TAILSCALE_VERSION}`)) throw new Error(`test/go/controlbase-golden/go.mod must pin tailscale.com ${TAILSCALE_VERSION}`)
  const digest = createHash('sha256')
  for (const f of ['main.go', 'go.mod', 'go.sum']) digest.update(readFileSync(join(GO_DIR, f)))
  const binary = join(BIN_DIR, `controlbase-golden-${digest.digest('hex').slice(0, 16)}`)
  if (!existsSync(binary)) {
    mkdirSync(BIN_DIR, { recursive: true })
    execFileSync('go', ['build', '-o', binary, '.'], { cwd: GO_DIR, env: { ...process.env, GOTOOLCHAIN: 'local' }, stdio: 'inherit', timeout: 280_000 })
  }
  return binary
}

const children: ChildProcess[] = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
})

/** Runs the Go program; yields its stdout lines as "key value" pairs as they come. */
function run(binary: string, args: string[]): { next(key: string): Promise<string>; exited: Promise<number | null> } {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  const seen: Array<[string, string]> = []
  const waiters: Array<() => void> = []
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const space = text.indexOf(' ')
    seen.push([text.slice(0, space), text.slice(space + 1)])
    for (const w of waiters.splice(0)) w()
  })
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      resolve(code)
      for (const w of waiters.splice(0)) w()
    }),
  )
  return {
    exited,
    async next(key) {
      for (;;) {
        const error = seen.find(([k]) => k === 'error')
        if (error && key !== 'error') throw new Error(`Go controlbase: ${error[1]}`)
        const index = seen.findIndex(([k]) => k === key)
        if (index >= 0) return seen.splice(index, 1)[0]![1]
        if (child.exitCode !== null) throw new Error(`Go program exited (${child.exitCode}) before printing ${key}`)
        await new Promise<void>((resolve) => waiters.push(resolve))
      }
    },
  }
}

/** Collects plaintext from `stream` fed by `socket` until `length` bytes arrived. */
function readPlain(socket: Socket, stream: ControlbaseStream, length: number, pending: Uint8Array[] = []): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks = [...pending]
    const check = (): void => {
      const total = chunks.reduce((n, c) => n + c.length, 0)
      if (total < length) return
      socket.off('data', onData)
      resolve(Buffer.concat(chunks).subarray(0, length))
    }
    const onData = (data: Buffer): void => {
      try {
        chunks.push(...stream.receive(new Uint8Array(data)))
        check()
      } catch (error) {
        reject(error)
      }
    }
    socket.on('data', onData)
    check()
  })
}

const pattern = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff)

describe.skipIf(!hasGo)('controlbase against Tailscale Go controlbase v1.102.5', () => {
  it('our initiator completes a handshake with Go Server: same handshake hash, records both ways across frames', async () => {
    const go = run(ensureGolden(), ['server'])
    const [host, port] = (await go.next('listen')).split(':') as [string, string]
    const socket = connect(Number(port), host)
    await new Promise((resolve) => socket.once('connect', resolve))
    const initiator = new ControlbaseInitiator({ machinePrivate, controlPublic: publicKeyOf(controlPrivate), version: VERSION })
    expect(initiator.initiation.length).toBe(INITIATION_LENGTH)
    socket.write(initiator.initiation)
    const { stream, rest } = await new Promise<{ stream: ControlbaseStream; rest: Uint8Array }>((resolve, reject) => {
      socket.on('data', function onData(data) {
        try {
          const done = initiator.receive(new Uint8Array(data))
          if (done) {
            socket.off('data', onData)
            resolve(done)
          }
        } catch (error) {
          reject(error)
        }
      })
    })
    expect(await go.next('peer')).toBe(`mkey:${toHex(publicKeyOf(machinePrivate))}`)
    expect(Number(await go.next('version'))).toBe(VERSION)
    expect(toHex(stream.handshakeHash)).toBe(await go.next('hash'))
    // 9000 bytes: our seal splits it into three ≤4096-byte frames; Go echoes it as it read it.
    const message = pattern(9000)
    socket.write(stream.seal(message))
    const echoed = await readPlain(socket, stream, message.length, stream.receive(rest))
    expect(Buffer.from(echoed).equals(Buffer.from(message))).toBe(true)
    socket.write(stream.seal(new TextEncoder().encode('bye')))
    expect(await go.exited).toBe(0)
    socket.destroy()
  })

  it('Go Client completes a handshake with our responder: same hash, it reads our multi-frame echo', async () => {
    const binary = ensureGolden()
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    const accepted = new Promise<{ hash: string; peer: string; version: number }>((resolve, reject) => {
      server.once('connection', (socket) => {
        let buffer = Buffer.alloc(0)
        let stream: ControlbaseStream | undefined
        const received: Uint8Array[] = []
        socket.on('data', (data) => {
          try {
            if (!stream) {
              buffer = Buffer.concat([buffer, data])
              if (buffer.length < INITIATION_LENGTH) return
              const accepted = acceptInitiation(controlPrivate, new Uint8Array(buffer.subarray(0, INITIATION_LENGTH)))
              stream = accepted.stream
              socket.write(accepted.response)
              resolve({ hash: toHex(stream.handshakeHash), peer: toHex(accepted.machinePublic), version: accepted.version })
              data = buffer.subarray(INITIATION_LENGTH)
            }
            received.push(...stream.receive(new Uint8Array(data)))
            const total = received.reduce((n, c) => n + c.length, 0)
            if (total === 10000) socket.write(stream.seal(Buffer.concat(received)))
          } catch (error) {
            reject(error)
          }
        })
      })
    })
    const go = run(binary, ['client', `127.0.0.1:${port}`, String(VERSION)])
    const ours = await accepted
    expect(ours.peer).toBe(toHex(publicKeyOf(machinePrivate)))
    expect(ours.version).toBe(VERSION)
    expect(await go.next('hash')).toBe(ours.hash)
    expect(await go.next('echo')).toBe(toHex(pattern(16)))
    expect(await go.next('echo-ok')).toBe('true')
    expect(await go.exited).toBe(0)
    server.close()
  })

  it('a control server holding a different key than we pinned fails the handshake with decrypt-failed, not a session', async () => {
    const go = run(ensureGolden(), ['server'])
    const [host, port] = (await go.next('listen')).split(':') as [string, string]
    const socket = connect(Number(port), host)
    await new Promise((resolve) => socket.once('connect', resolve))
    const initiator = new ControlbaseInitiator({ machinePrivate, controlPublic: publicKeyOf(fromHex('33'.repeat(32))), version: VERSION })
    socket.write(initiator.initiation)
    // Go's Server cannot decrypt our machine key and drops the connection without a response.
    expect(await go.next('error')).toMatch(/decrypting machine key/)
    socket.destroy()
  })
})
