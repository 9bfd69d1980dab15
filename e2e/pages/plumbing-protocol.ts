// Messages and packet layout of the relay-path plumbing bench (plumbing-page.ts ⇄ plumbing-worker.ts).

/** Packet kinds (byte 0). Data packets carry their payload length in bytes 1..4 (u32 LE), so padding is not counted. */
export const DATA = 1
export const CREDIT = 2
/** Then float64 LE fields at 8, 16, 24 — data: t0 page write, t1 worker send, bufferedAmount at send; credit: bytes, t5 page, t6 worker send. */
export const HEADER_BYTES = 8 + 3 * 8

export type ToWorker =
  | { type: 'start'; url: string; packetBytes: number; payloadBytes: number }
  | { type: 'peer'; key: string }
  | { type: 'data'; buffer: ArrayBuffer; t0: number }
  | { type: 'credit'; bytes: number; t5: number }

export type FromWorker =
  | { type: 'ready'; publicKey: string }
  | { type: 'packets'; buffer: ArrayBuffer; lengths: number[]; t3: number }
  | { type: 'credit'; bytes: number; t5: number; t6: number; t7: number }
  | { type: 'error'; message: string }
