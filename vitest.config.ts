import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['src/**/*.test.ts', 'scripts/**/*.test.ts'], testTimeout: 20_000 } },
      {
        // Real processes, namespaces and sockets: one file at a time so they never fight over the machine.
        test: { name: 'integration', include: ['test/**/*.test.ts'], fileParallelism: false, testTimeout: 120_000, hookTimeout: 300_000 },
      },
      { test: { name: 'e2e', include: ['e2e/**/*.test.ts'], fileParallelism: false, testTimeout: 120_000, hookTimeout: 300_000 } },
    ],
  },
})
