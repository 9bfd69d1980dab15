// Big-endian field access and range checks shared by the codecs (internal to src/wire).
import { WireError } from './errors.ts'

export function readUint16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!
}

export function readUint32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0
}

export function writeUint16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 8
  bytes[offset + 1] = value & 0xff
}

export function writeUint32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24
  bytes[offset + 1] = (value >>> 16) & 0xff
  bytes[offset + 2] = (value >>> 8) & 0xff
  bytes[offset + 3] = value & 0xff
}

/** Rejects values that do not fit an unsigned field of `bits` bits, so a builder never silently truncates. */
export function checkUint(name: string, value: number, bits: 8 | 16 | 32): void {
  // Fast path for the per-packet case: masking keeps exactly the integers 0..2^bits-1 unchanged
  // (NaN, fractions, negatives and Infinity all come out different).
  if ((bits === 32 ? value >>> 0 : value & ((1 << bits) - 1)) === value) return
  if (!Number.isInteger(value) || value < 0 || value > 2 ** bits - 1) {
    throw new WireError('bad-length', `${name} ${value} does not fit in ${bits} unsigned bits`)
  }
}

/** Pseudo-header addresses must be one family: both 4 bytes or both 16 bytes. */
export function checkAddressPair(src: Uint8Array, dst: Uint8Array): void {
  if ((src.length !== 4 && src.length !== 16) || dst.length !== src.length) {
    throw new WireError('bad-address', `source (${src.length} bytes) and destination (${dst.length} bytes) must both be IPv4 or both IPv6`)
  }
}
