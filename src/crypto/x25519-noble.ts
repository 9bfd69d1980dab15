// X25519 (RFC 7748) on @noble/curves' Montgomery ladder, built from the curve's parameters here
// rather than imported from '@noble/curves/ed25519.js': that module's x25519 export pulls the
// whole Edwards curve into the bundle (about 7 KB gzip per worker), and Burrow needs only the ladder.
import { montgomery } from '@noble/curves/abstract/montgomery.js'
import { mod, pow2 } from '@noble/curves/abstract/modular.js'

/** The field prime 2^255 - 19 (RFC 7748 §4.1). */
const P = 2n ** 255n - 19n

/**
 * x^(p-2) mod p, the field inverse by Fermat, with the usual Curve25519 addition chain
 * (254 squarings, 11 multiplications; the chain of ref10's `fe_invert`).
 */
function invert(x: bigint): bigint {
  const sq = (v: bigint, times: bigint): bigint => pow2(v, times, P)
  const z2 = mod(x * x, P)
  const z9 = mod(sq(z2, 2n) * x, P)
  const z11 = mod(z9 * z2, P)
  const z2_5_0 = mod(mod(z11 * z11, P) * z9, P) // x^(2^5 - 1)
  const z2_10_0 = mod(sq(z2_5_0, 5n) * z2_5_0, P)
  const z2_20_0 = mod(sq(z2_10_0, 10n) * z2_10_0, P)
  const z2_40_0 = mod(sq(z2_20_0, 20n) * z2_20_0, P)
  const z2_50_0 = mod(sq(z2_40_0, 10n) * z2_10_0, P)
  const z2_100_0 = mod(sq(z2_50_0, 50n) * z2_50_0, P)
  const z2_200_0 = mod(sq(z2_100_0, 100n) * z2_100_0, P)
  const z2_250_0 = mod(sq(z2_200_0, 50n) * z2_50_0, P)
  return mod(sq(z2_250_0, 5n) * z11, P) // x^(2^255 - 32 + 11) = x^(p - 2)
}

const x25519 = montgomery({
  P,
  type: 'x25519',
  // RFC 7748 §5 decodeScalar25519: clear the three low bits and the top bit, set bit 254.
  adjustScalarBytes(bytes: Uint8Array) {
    bytes[0]! &= 248
    bytes[31]! &= 127
    bytes[31]! |= 64
    return bytes
  },
  powPminus2: invert,
})

export function scalarMult(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return x25519.getSharedSecret(privateKey, publicKey)
}

export function scalarMultBase(privateKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(privateKey)
}
