export interface BenchResult {
  name: string
  value: number
  unit: string
  /** The same work done by a reference implementation in the same run. */
  baseline?: number
  /** value / baseline, or the stated comparison. */
  ratio?: number
  note?: string
}

export type Bench = () => Promise<BenchResult[]>

/** Runs `work` repeatedly for at least `minMs` and returns operations per second. */
export async function measure(work: () => void | Promise<void>, minMs = 1000): Promise<number> {
  for (let i = 0; i < 3; i++) await work() // warm-up
  let ops = 0
  const start = performance.now()
  let elapsed = 0
  while (elapsed < minMs) {
    await work()
    ops++
    elapsed = performance.now() - start
  }
  return (ops * 1000) / elapsed
}
