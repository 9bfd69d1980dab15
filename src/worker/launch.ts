// Starts the plain dataplane worker (src/worker/worker.ts) for `BurrowWorker`. A module of its own
// so that only code which calls it makes a bundler emit that worker: `Burrow.start` runs the node
// agent's worker (src/agent/worker.ts) instead, and its bundle must not carry a second one.
export function createDataplaneWorker(): Worker {
  // Written out literally so Vite (and other bundlers) recognise and bundle the worker.
  return new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'burrow-dataplane' })
}
