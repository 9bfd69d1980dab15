// Small zeroed byte arrays carved out of shared 64 KiB slabs, as Node's Buffer pool does for
// small Buffers. A typed array of its own costs a zeroed off-heap allocation plus GC
// bookkeeping of external memory, which at one or two per packet was the largest single cost
// of the 1420-byte paths (TCP segments built and received, WireGuard messages sealed). Each
// region is handed out once and slabs start zeroed, so builders may rely on zero bytes.
// Arrays above SLAB_MAX_BYTES get their own buffer; an array kept long keeps at most its one
// slab alive. Views must not be transferred whole: `.buffer` is shared (the worker protocol's
// `transferable` copies partial views for exactly this reason).

const SLAB_BYTES = 64 * 1024
export const SLAB_MAX_BYTES = 4096
let slab = new ArrayBuffer(SLAB_BYTES)
let used = 0

/** `new Uint8Array(length)`, from a shared slab when small. */
export function allocateBytes(length: number): Uint8Array {
  if (length > SLAB_MAX_BYTES) return new Uint8Array(length)
  if (used + length > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES)
    used = 0
  }
  const bytes = new Uint8Array(slab, used, length)
  // 8-byte alignment keeps word-aligned fields (and the checksum's 32-bit reads) aligned.
  used += (length + 7) & ~7
  return bytes
}
