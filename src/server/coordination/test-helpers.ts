// Builders for tests of the coordination service: a node's hello with a real proof.
import { boxKey, boxSeal, fromBase64, randomBytes, toBase64, type KeyPair } from '../../crypto/index.ts'
import { discoKeyText, nodeKeyText, type HelloMessage, type HomeRelay, type Proof } from '../../control/protocol.ts'
import type { Output } from './service.ts'

export function proofFor(privateKey: Uint8Array, serverKey: Uint8Array, challenge: Uint8Array): Proof {
  const nonce = randomBytes(24)
  return { nonce: toBase64(nonce), box: toBase64(boxSeal(boxKey(privateKey, serverKey), nonce, challenge)) }
}

export interface HelloOptions {
  authKey?: string | undefined
  hostname?: string
  discoKey?: Uint8Array
  homeRelay?: HomeRelay | null
  previous?: KeyPair
}

/** A hello answering the challenge in `challengeOutput` (the service's first output for a connection). */
export function helloFor(pair: KeyPair, challengeOutput: Output, options: HelloOptions = {}): HelloMessage {
  if (challengeOutput.kind !== 'send' || challengeOutput.message.type !== 'challenge') throw new Error('expected a challenge output')
  const serverKey = fromBase64(challengeOutput.message.serverKey)
  const challenge = fromBase64(challengeOutput.message.challenge)
  const hello: HelloMessage = {
    type: 'hello',
    version: 1,
    nodeKey: nodeKeyText(pair.publicKey),
    discoKey: discoKeyText(options.discoKey ?? new Uint8Array(32).fill(7)),
    hostname: options.hostname ?? 'node',
    proof: proofFor(pair.privateKey, serverKey, challenge),
  }
  if (options.authKey !== undefined) hello.authKey = options.authKey
  if (options.homeRelay !== undefined) hello.homeRelay = options.homeRelay
  if (options.previous !== undefined) {
    hello.previousNodeKey = nodeKeyText(options.previous.publicKey)
    hello.previousProof = proofFor(options.previous.privateKey, serverKey, challenge)
  }
  return hello
}
