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
 * when that is, so `finishChecksum` gives the same result for both. Internal to src/wire.
 *
 * The word-aligned bulk is read as native 32-bit words (`Uint32Array`, little-endian on every
 * platform JavaScript runs on) into four accumulators: 2^16 ≡ 1 mod 0xffff, so a 32-bit word
 * counts as its two 16-bit halves, and RFC 1071 §2(B) (byte-order independence) lets the
 * little-endian sum stand for the big-endian one once its folded 16 bits are byte-swapped.
 * Each accumulator adds < 2^32 per word and stays exact in a double far past 64 KiB. An odd
 * byte alignment falls back to big-endian DataView reads.
 */
export function checksumWordSum(data: Uint8Array, start: number, end: number, initial: number): number {
  let i = start
  let sum = initial
  let absolute = data.byteOffset + i
  if ((absolute & 1) === 0 && end - i >= 16) {
    if ((absolute & 2) !== 0) {
      sum += (data[i]! << 8) | data[i + 1]!
      i += 2
      absolute += 2
    }
    const words = (end - i) >>> 2
    const u32 = new Uint32Array(data.buffer, absolute, words)
    let a = 0
    let b = 0
    let c = 0
    let d = 0
    const words4 = words & ~3
    let w = 0
    for (; w < words4; w += 4) {
      a += u32[w]!
      b += u32[w + 1]!
      c += u32[w + 2]!
      d += u32[w + 3]!
    }
    for (; w < words; w++) a += u32[w]!
    let little = a + b + c + d
    while (little > 0xffff) little = (little % 0x10000) + Math.floor(little / 0x10000)
    sum += ((little & 0xff) << 8) | (little >>> 8)
    i += words << 2
  } else if (end - i >= 8) {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
    let even = 0
    let odd = 0
    const end8 = i + ((end - i) & ~7)
    for (; i < end8; i += 8) {
      even += view.getUint32(i)
      odd += view.getUint32(i + 4)
    }
    sum += even + odd
  }
  for (; i + 2 <= end; i += 2) sum += (data[i]! << 8) | data[i + 1]!
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
