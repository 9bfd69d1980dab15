// Baseline for bench/e2e.bench.ts: how fast this browser's worker seals 1420-byte packets with
// @noble's ChaCha20-Poly1305 (the cipher every relayed packet goes through once per side).
import { nobleAead } from '../../src/crypto/aead-noble.ts'

self.onmessage = (event: MessageEvent<{ durationMs: number }>) => {
  const key = new Uint8Array(32).fill(7)
  const nonce = new Uint8Array(12)
  const packet = new Uint8Array(1420).fill(1)
  const out = new Uint8Array(1420 + 16)
  const view = new DataView(nonce.buffer)
  for (let i = 0; i < 200; i++) nobleAead.sealInto(key, nonce, packet, undefined, out) // warm-up
  let sealed = 0
  const started = performance.now()
  let elapsed = 0
  while (elapsed < event.data.durationMs) {
    for (let i = 0; i < 64; i++) {
      view.setUint32(4, sealed++, true)
      nobleAead.sealInto(key, nonce, packet, undefined, out)
    }
    elapsed = performance.now() - started
  }
  postMessage({ bytesPerSecond: (sealed * 1420 * 1000) / elapsed })
}
