// RFC 1071 Internet checksum. Sums are kept unfolded in a plain number: adding 16-bit words to
// a 32-bit start cannot overflow 2^53 for any packet size we will ever see.

/** Adds `data` as big-endian 16-bit words (odd trailing byte padded with zero) to `initial`. */
export function onesComplementSum(data: Uint8Array, initial = 0): number {
  return onesComplementSumOf(data, 0, data.length, initial)
}

/** `onesComplementSum` of `data[start..end)`, so builders can sum part of a packet without a view. */
export function onesComplementSumOf(data: Uint8Array, start: number, end: number, initial: number): number {
  let sum = initial
  const evenEnd = start + ((end - start) & ~1)
  for (let i = start; i < evenEnd; i += 2) sum += (data[i]! << 8) | data[i + 1]!
  if (evenEnd !== end) sum += data[evenEnd]! << 8
  return sum
}

/**
 * A sum of `data[start..end)` congruent to `onesComplementSumOf` modulo 0xffff, and zero only
 * when that is, so `finishChecksum` gives the same result for both (2^16 ≡ 1 mod 0xffff, so a
 * 32-bit big-endian word counts as its two 16-bit halves). Reading 32-bit words through a
 * DataView with two accumulators is what makes per-packet checksums cheap; 2^32 per word over
 * at most 16 Ki words per accumulator stays far below 2^53. Internal to src/wire.
 */
export function checksumWordSum(data: Uint8Array, start: number, end: number, initial: number): number {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  let even = 0
  let odd = 0
  let i = start
  const end8 = start + ((end - start) & ~7)
  for (; i < end8; i += 8) {
    even += view.getUint32(i)
    odd += view.getUint32(i + 4)
  }
  let sum = initial + even + odd
  if (i + 4 <= end) {
    sum += view.getUint32(i)
    i += 4
  }
  if (i + 2 <= end) {
    sum += view.getUint16(i)
    i += 2
  }
  if (i < end) sum += data[i]! << 8
  return sum
}

/** Folds carries into 16 bits and complements: the value that goes in the checksum field. */
export function finishChecksum(sum: number): number {
  let folded = sum
  while (folded > 0xffff) folded = (folded & 0xffff) + Math.floor(folded / 0x10000)
  return ~folded & 0xffff
}

export function internetChecksum(data: Uint8Array): number {
  return finishChecksum(checksumWordSum(data, 0, data.length, 0))
}

/** Sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793 / RFC 8200 §8.1), IPv4 or IPv6 by address length. */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, protocol: number, upperLength: number): number {
  let sum = onesComplementSum(src)
  sum = onesComplementSum(dst, sum)
  // IPv4: zero/protocol + 16-bit length; IPv6: 32-bit length + 24 zero bits + next header. Same sum either way.
  return sum + protocol + (upperLength & 0xffff) + Math.floor(upperLength / 0x10000)
}

/** Checksum of a TCP/UDP/ICMPv6 message (checksum field zeroed or included) under its pseudo-header; 0 when a received message verifies. */
export function transportChecksum(message: Uint8Array, src: Uint8Array, dst: Uint8Array, protocol: number): number {
  return finishChecksum(checksumWordSum(message, 0, message.length, pseudoHeaderSum(src, dst, protocol, message.length)))
}
