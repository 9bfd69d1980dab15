/** A compact string for a 32-byte key, for use as a Map key on hot paths. */
export function keyIdOf(key: Uint8Array): string {
  return String.fromCharCode.apply(null, key as unknown as number[])
}
